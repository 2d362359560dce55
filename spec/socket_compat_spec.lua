-- corio.socket and LuaSocket side by side: one table of cases, each using
-- only LuaSocket's documented API and no concurrency (a server, a client
-- and the accepted end in one thread: the kernel's backlog holds the
-- connection until accept), run against real LuaSocket (when it is
-- installed) and against corio.socket inside corio.run. Both must pass the
-- same assertions. (Ports are compared through tonumber: Debian's LuaSocket
-- returns some as strings, corio.socket always as numbers.)
local corio = require "corio"
local helper = require "helper"

local real_ok, real = pcall(require, "socket")
if real_ok and real == corio.socket then real_ok = false end  -- installed by someone: not the real one

-- pair(socket) -> server, client, accepted end, port
local function pair(socket)
  local srv = assert(socket.bind("127.0.0.1", 0))
  local _, port = srv:getsockname()
  port = tonumber(port)
  local c = assert(socket.connect("127.0.0.1", port))
  local a = assert(srv:accept())
  return srv, c, a, port
end

local function close_all(...)
  for i = 1, select("#", ...) do
    local s = select(i, ...)
    if s then s:close() end
  end
end

-- elapsed(socket, fn, ...) -> seconds fn took, then its results (as a table)
local function timed(socket, fn, ...)
  local t0 = socket.gettime()
  local res = table.pack(fn(...))
  return socket.gettime() - t0, res
end

local cases = {}
local function case(name, fn) cases[#cases + 1] = { name = name, fn = fn } end

case("receive a line: LF or CRLF, every CR dropped, with a prefix", function(socket)
  local srv, c, a = pair(socket)
  assert.equals(16, c:send("one\r\ntw\ro\nthree\n"))
  assert.equals("one", a:receive("*l"))
  assert.equals("P:two", a:receive("*l", "P:"))
  assert.equals("three", a:receive())  -- the default pattern is a line
  close_all(c, a, srv)
end)

case("a line cut by the end: nil, 'closed', the partial line with the prefix", function(socket)
  local srv, c, a = pair(socket)
  c:send("last\r\nno newline\r")
  c:close()
  assert.equals("last", a:receive("*l"))
  local r, e, partial = a:receive("*l", ">")
  assert.is_nil(r)
  assert.equals("closed", e)
  assert.equals(">no newline", partial)
  r, e, partial = a:receive("*l")
  assert.same({ nil, "closed", "" }, { r, e, partial })
  close_all(a, srv)
end)

case("receive a byte count; with a prefix the count includes it; a count cut by the end", function(socket)
  local srv, c, a = pair(socket)
  c:send("abcdefgh")
  assert.equals("abc", a:receive(3))
  assert.equals("xd", a:receive(2, "x"))     -- one byte read: the prefix counts
  assert.equals("", a:receive(0))
  assert.equals("pre", a:receive(2, "pre"))  -- the prefix is longer: nothing read
  c:close()
  local r, e, partial = a:receive(10, "<")
  assert.same({ nil, "closed", "<efgh" }, { r, e, partial })
  close_all(a, srv)
end)

case("receive '*a': all until the end; at the end with nothing, 'closed'", function(socket)
  local srv, c, a = pair(socket)
  c:send("line one\nrest")
  c:close()
  assert.equals("line one", a:receive("*l"))
  assert.equals("P:rest", a:receive("*a", "P:"))
  local r, e, partial = a:receive("*a")
  assert.same({ nil, "closed", "" }, { r, e, partial })
  close_all(a, srv)
end)

case("a bad receive pattern raises", function(socket)
  local srv, c, a = pair(socket)
  assert.error_matches(function() a:receive("*x") end, "invalid receive pattern")
  assert.error_matches(function() a:receive(-1) end, "invalid receive pattern")
  assert.has_error(function() a:receive({}) end)
  close_all(c, a, srv)
end)

case("timeouts in 'b' mode: nil, 'timeout', the partial bytes, which are taken", function(socket)
  local srv, c, a = pair(socket)
  c:send("part")
  a:settimeout(0.05)
  local secs, res = timed(socket, a.receive, a, 10, "P:")
  assert.same({ nil, "timeout", "P:part" }, { res[1], res[2], res[3] })
  assert.is_true(secs >= 0.04 and secs < 5, "waited " .. secs)
  c:send("ial line\nmore")
  assert.equals("ial line", a:receive("*l"))
  local r, e, partial = a:receive("*l")
  assert.same({ nil, "timeout", "more" }, { r, e, partial })
  r, e, partial = a:receive("*a")
  assert.same({ nil, "timeout", "" }, { r, e, partial })
  close_all(c, a, srv)
end)

case("timeout 0 polls: what is there is returned, nothing waits", function(socket)
  local srv, c, a = pair(socket)
  a:settimeout(0)
  local r, e = a:receive(1)
  assert.same({ nil, "timeout" }, { r, e })
  c:send("xy\n")
  socket.sleep(0.05)
  assert.equals("xy", a:receive("*l"))
  close_all(c, a, srv)
end)

case("timeouts in 't' mode bound the whole call; settimeout returns 1; nil or negative: none", function(socket)
  local srv, c, a = pair(socket)
  assert.equals(1, a:settimeout(0.05, "t"))
  c:send("abc")
  local secs, res = timed(socket, a.receive, a, "*a")
  assert.same({ nil, "timeout", "abc" }, { res[1], res[2], res[3] })
  assert.is_true(secs >= 0.04 and secs < 5, "waited " .. secs)
  assert.equals(1, a:settimeout(nil, "t"))
  assert.equals(1, a:settimeout(-1))
  c:close()
  assert.same({ nil, "closed", "" }, { a:receive("*a") })
  assert.error_matches(function() a:settimeout(1, "x") end, "invalid timeout mode")
  close_all(a, srv)
end)

case("send's index arguments: the last byte index sent", function(socket)
  local srv, c, a = pair(socket)
  assert.equals(4, c:send("abcdef", 2, 4))    -- bcd
  assert.equals(3, c:send("abc", -2))         -- bc
  assert.equals(3, c:send("abc", 0, 10))      -- abc
  assert.equals(2, c:send("abc", 3, 2))       -- nothing
  assert.equals(0, c:send("abc", -10, -10))   -- nothing
  assert.equals(2, c:send("xyz", 1, -2))      -- xy
  assert.equals(2, c:send(42))                -- a number is sent as a string
  c:close()
  assert.equals("bcdbcabcxy42", a:receive("*a"))
  close_all(a, srv)
end)

case("after close: receive and send say 'closed'; close again returns 1", function(socket)
  local srv, c, a = pair(socket)
  c:close()
  assert.equals(1, c:close())
  local r1, e1 = c:receive(1)
  assert.same({ nil, "closed" }, { r1, e1 })
  local r, e = c:send("x")
  assert.is_nil(r)
  assert.equals("closed", e)
  close_all(a, srv)
end)

case("addresses, stats and dirty", function(socket)
  local srv, c, a, port = pair(socket)
  local host, p, family = c:getpeername()
  assert.same({ "127.0.0.1", port, "inet" }, { host, tonumber(p), family })
  local lhost, lport = a:getpeername()
  local chost, cport = c:getsockname()
  assert.same({ lhost, tonumber(lport) }, { chost, tonumber(cport) })
  local shost, sport, sfamily = srv:getsockname()
  assert.same({ "127.0.0.1", port, "inet" }, { shost, tonumber(sport), sfamily })
  c:send("hello\nworld\n")
  assert.equals("hello", a:receive())
  assert.is_true(a:dirty())  -- "world\n" is buffered
  assert.equals("world", a:receive())
  assert.is_false(a:dirty())
  local received, sent, age = a:getstats()
  assert.equals(12, received)
  assert.equals(0, sent)
  assert.is_true(age >= 0 and age < 60)
  assert.equals(12, (select(2, c:getstats())))
  assert.equals(1, c:setoption("tcp-nodelay", true))
  assert.equals(1, c:setoption("keepalive", true))
  assert.equals(1, c:setoption("linger", { on = false, timeout = 0 }))
  close_all(c, a, srv)
end)

case("tostring names the class; methods belong to their class", function(socket)
  local m = socket.tcp()
  assert.matches("^tcp{master}: ", tostring(m))
  assert.has_error(function() m:receive() end)
  assert.has_error(function() m:accept() end)
  local srv, c, a = pair(socket)
  assert.matches("^tcp{server}: ", tostring(srv))
  assert.matches("^tcp{client}: ", tostring(c))
  assert.has_error(function() c:accept() end)
  assert.has_error(function() srv:receive() end)
  assert.has_error(function() srv.accept(c) end)
  close_all(m, c, a, srv)
end)

case("errors: connection refused; accept timeout", function(socket)
  local srv = assert(socket.bind("127.0.0.1", 0))
  local _, port = srv:getsockname()
  srv:settimeout(0.05)
  assert.same({ nil, "timeout" }, { srv:accept() })
  srv:close()
  local c, e = socket.connect("127.0.0.1", port)
  assert.is_nil(c)
  assert.equals("connection refused", e)
  local m = socket.tcp()
  assert.same({ nil, "connection refused" }, { m:connect("127.0.0.1", port) })
  m:close()
end)

case("select: a listening server is readable once a client connects", function(socket)
  local srv = assert(socket.bind("127.0.0.1", 0))
  local _, port = srv:getsockname()
  local r, w, e = socket.select({ srv }, nil, 0)
  assert.same({ 0, 0, "timeout" }, { #r, #w, e })
  local c = assert(socket.connect("127.0.0.1", port))
  r = socket.select({ srv }, nil, 5)
  assert.equals(1, #r)
  assert.equals(srv, r[1])
  assert.equals(1, r[srv])
  local a = assert(srv:accept())
  c:send("ping\n")
  r = socket.select({ a }, nil, 5)
  assert.equals(a, r[1])
  assert.equals("ping", a:receive())
  close_all(c, a, srv)
end)

case("UDP: sendto, receivefrom, receive's size, connected send", function(socket)
  local a, b = socket.udp(), socket.udp()
  assert.matches("^udp{unconnected}: ", tostring(a))
  assert.equals(1, a:setsockname("127.0.0.1", 0))
  assert.equals(1, b:setsockname("127.0.0.1", 0))
  local ahost, aport = a:getsockname()
  local _, bport = b:getsockname()
  aport, bport = tonumber(aport), tonumber(bport)
  assert.equals("127.0.0.1", ahost)
  a:settimeout(5)
  b:settimeout(5)
  assert.equals(5, a:sendto("hello", "127.0.0.1", bport))
  local data, host, port = b:receivefrom()
  assert.same({ "hello", "127.0.0.1", aport }, { data, host, tonumber(port) })
  assert.equals(10, b:sendto("0123456789", "127.0.0.1", aport))
  assert.equals("0123", a:receive(4))   -- the rest of the datagram is dropped
  assert.equals(1, a:setpeername("127.0.0.1", bport))
  assert.matches("^udp{connected}: ", tostring(a))
  local phost, pport, pfamily = a:getpeername()
  assert.same({ "127.0.0.1", bport, "inet" }, { phost, tonumber(pport), pfamily })
  assert.equals(3, a:send("abc"))
  assert.equals("abc", b:receive())
  a:settimeout(0.05)
  assert.same({ nil, "timeout" }, { a:receive() })
  assert.equals(1, a:setpeername("*"))
  assert.matches("^udp{unconnected}: ", tostring(a))
  a:close()
  b:close()
end)

-- the runs ---------------------------------------------------------------------

describe("LuaSocket's behaviours", function()
  for _, c in ipairs(cases) do
    describe(c.name, function()
      if real_ok then
        it("real LuaSocket", function() c.fn(real) end)
      end
      it("corio.socket", function() helper.run(c.fn, corio.socket) end)
    end)
  end
end)
