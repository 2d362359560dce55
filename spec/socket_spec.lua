-- corio.socket where it goes beyond one thread: timeouts against a peer in
-- another task, accept loops, select, cancellation, install/uninstall, the
-- behaviour outside a loop. (The cases shared with real LuaSocket are in
-- socket_compat_spec.lua.)
local corio = require "corio"
local helper = require "helper"
local socket = corio.socket

local function pair()
  local srv = assert(socket.bind("127.0.0.1", 0))
  local _, port = srv:getsockname()
  local c = assert(socket.connect("127.0.0.1", port))
  local a = assert(srv:accept())
  return srv, c, a, port
end

describe("corio.socket", function()
  it("accepts 'l' and 'a' without the star, as LuaSocket 3.1 does", function()
    helper.run(function()
      local srv, c, a = pair()
      c:send("x\r\ny")
      c:close()
      assert.equals("x", a:receive("l"))
      assert.equals("y", a:receive("a"))
      a:close()
      srv:close()
    end)
  end)

  it("'b' bounds each wait, 't' the whole call, against a peer sending a byte at a time", function()
    helper.run(function()
      local srv, c, a = pair()
      local feeder = corio.spawn(function()
        for i = 1, 10 do
          corio.sleep(0.03)
          c:send(tostring(i % 10))
        end
      end)
      a:settimeout(1)  -- each byte comes well within a second
      assert.equals("1234567890", a:receive(10))
      feeder:await()
      c:send("1")  -- there at once: the partial result is never empty
      feeder = corio.spawn(function()
        for i = 2, 10 do
          corio.sleep(0.03)
          c:send(tostring(i % 10))
        end
      end)
      a:settimeout(nil)
      a:settimeout(0.15, "t")  -- the whole receive: a few bytes, then the deadline
      local r, e, partial = a:receive(10)
      assert.is_nil(r)
      assert.equals("timeout", e)
      assert.is_true(#partial >= 1 and #partial < 10, "partial: " .. partial)
      feeder:await()
      a:settimeout(nil, "t")
      assert.equals(("1234567890"):sub(#partial + 1), a:receive(10 - #partial))
      c:close()
      a:close()
      srv:close()
    end)
  end)

  it("serves concurrent clients from an accept loop", function()
    helper.run(function()
      local srv = assert(socket.bind("127.0.0.1", 0))
      local _, port = srv:getsockname()
      local served = 0
      local server = corio.spawn(function()
        local tg <close> = corio.task_group()
        for _ = 1, 20 do
          local conn = assert(srv:accept())
          tg:spawn(function()
            while true do
              local line = conn:receive()
              if not line then break end
              conn:send(line:upper() .. "\n")
            end
            conn:close()
            served = served + 1
          end)
        end
      end)
      local answers = corio.gather((function()
        local list = {}
        for i = 1, 20 do
          list[i] = function()
            local c = assert(socket.connect("127.0.0.1", port))
            c:send("hello " .. i .. "\nbye\n")
            local one, two = c:receive(), c:receive()
            c:close()
            return one .. "," .. two
          end
        end
        return list
      end)())
      server:await()
      for i = 1, 20 do assert.equals("HELLO " .. i .. ",BYE", answers[i]) end
      assert.equals(20, served)
      srv:close()
    end)
  end)

  it("select waits for data from another task; a select that times out takes nothing", function()
    helper.run(function()
      local srv, c, a = pair()
      local r, _, e = socket.select({ a }, nil, 0.05)
      assert.same({ 0, "timeout" }, { #r, e })
      corio.spawn(function()
        corio.sleep(0.02)
        c:send("late\n")
      end)
      r = socket.select({ a, srv }, {}, 5)
      assert.same({ a }, { r[1] })
      assert.equals("late", a:receive())
      -- writable: connected clients at once
      local _, w = socket.select(nil, { c }, 0)
      assert.equals(c, w[1])
      assert.error_matches(function() socket.select({ {} }) end, "not a corio.socket object")
      c:close()
      a:close()
      srv:close()
    end)
  end)

  it("select on UDP keeps the datagram for the next receive", function()
    helper.run(function()
      local u, v = socket.udp(), socket.udp()
      assert(u:setsockname("127.0.0.1", 0))
      local _, port = u:getsockname()
      corio.spawn(function()
        corio.sleep(0.02)
        v:sendto("dgram", "127.0.0.1", port)
      end)
      local r = socket.select({ u }, nil, 5)
      assert.equals(u, r[1])
      assert.equals("dgram", u:receive())
      u:close()
      v:close()
    end)
  end)

  it("a cancelled receive closes the socket: the peer reads the end", function()
    helper.run(function()
      local srv, c, a = pair()
      local t = corio.spawn(function() return c:receive() end)
      helper.settle()
      t:cancel()
      helper.cancelled_await(t)
      local r1, e1 = c:receive(1)
      assert.same({ nil, "closed" }, { r1, e1 })
      a:settimeout(5)
      local r, e = a:receive("*a")
      assert.is_nil(r)
      assert.equals("closed", e)
      a:close()
      srv:close()
    end)
  end)

  it("an enclosing corio.timeout raises TimeoutError and closes the socket", function()
    helper.run(function()
      local srv, c, a = pair()
      local ok, err = pcall(corio.timeout, 0.05, c.receive, c, "*l")
      assert.is_false(ok)
      assert.is_true(corio.TimeoutError.is(err))
      local r, e = c:send("x")
      assert.same({ nil, "closed" }, { r, e })
      a:close()
      srv:close()
    end)
  end)

  it("send times out against a peer that does not read, having queued the bytes", function()
    helper.run(function()
      local srv, c, a = pair()
      c:settimeout(0.05)
      local chunk = ("x"):rep(256 * 1024)
      local r, e, last
      for _ = 1, 400 do
        r, e, last = c:send(chunk)
        if not r then break end
      end
      assert.is_nil(r)
      assert.equals("timeout", e)
      assert.equals(#chunk, last)
      c:close()
      a:close()
      srv:close()
    end)
  end)

  it("unix sockets: bind, listen, accept, connect", function()
    local path = os.tmpname()
    os.remove(path)
    helper.run(function()
      local unix = socket.unix
      local srv = unix()
      assert.equals(1, srv:bind(path))
      assert.equals(1, srv:listen())
      assert.matches("^unix{server}: ", tostring(srv))
      local c = unix.stream()
      assert.equals(1, c:connect(path))
      local a = assert(srv:accept())
      c:send("over unix\n")
      assert.equals("over unix", a:receive())
      assert.equals(path, srv:getsockname())
      assert.same({ nil, "corio.socket: Unix datagram sockets are not supported" }, { unix.dgram() })
      c:close()
      a:close()
      srv:close()
    end)
    assert.is_false(helper.exists(path))
  end)

  it("linger on with timeout 0 resets the connection on close", function()
    helper.run(function()
      local srv, c, a = pair()
      assert.equals(1, c:setoption("linger", { on = true, timeout = 0 }))
      c:send("dropped maybe")
      c:close()
      a:settimeout(5)
      local _, e = a:receive("*a")
      assert.equals("closed", e)
      assert.error_matches(function() c:setoption("no-such-option", 1) end, "unsupported option")
      a:close()
      srv:close()
    end)
  end)

  it("checks self in every method, naming the method", function()
    assert.error_matches(function() socket.tcp().connect({}, "h", 1) end,
      "bad self to 'tcp:connect' %(tcp{master} expected, got table%)")
    assert.error_matches(function() socket.tcp().close(nil) end, "bad self to 'tcp:close'")
    assert.error_matches(function() socket.udp().sendto(socket.tcp(), "x", "h", 1) end,
      "bad self to 'udp:sendto' %(udp{unconnected} expected, got tcp{master}%)")
  end)

  it("outside a loop: I/O raises a clear error; sleep, gettime and dns work", function()
    local s = socket.tcp()
    assert.error_matches(function() s:connect("127.0.0.1", 1) end,
      "corio.socket: tcp:connect needs a running loop: call it inside corio.run")
    assert.error_matches(function() socket.udp():setsockname("127.0.0.1", 0) end, "needs a running loop")
    -- the error points at the caller, not at corio's files
    local ok, err = pcall(socket.connect, "127.0.0.1", 1)
    assert.is_false(ok)
    assert.matches("socket.connect needs a running loop", err)
    local _, err2 = pcall(function() socket.connect("127.0.0.1", 1) end)
    assert.matches("^spec/socket_spec.lua:%d+: ", err2)
    local _, err3 = pcall(function() socket.tcp():connect("127.0.0.1", 1) end)
    assert.matches("^spec/socket_spec.lua:%d+: ", err3)
    local _, err4 = pcall(function() socket.tcp():receive({}) end)
    assert.matches("^spec/socket_spec.lua:%d+: bad self", err4)
    assert.equals("localhost", (socket.dns.tohostname("127.0.0.1")))
    assert.equals(1, s:close())
    local t0 = socket.gettime()
    socket.sleep(0.02)
    assert.is_true(socket.gettime() - t0 >= 0.015)
    assert.is_true(math.abs(socket.gettime() - os.time()) < 2)
    assert.equals("127.0.0.1", socket.dns.toip("127.0.0.1"))
    local ip = socket.dns.toip("localhost")
    assert.equals("127.0.0.1", ip)
    assert.equals("string", type(socket.dns.gethostname()))
  end)

  it("try and protect: a try failure becomes nil, message; a cancellation passes through", function()
    local f = socket.protect(function(x)
      local v = socket.try(x, "no value")
      return v * 2
    end)
    assert.same({ 4 }, { f(2) })
    assert.same({ nil, "no value" }, { f(nil) })
    local finalized = false
    local try = socket.newtry(function() finalized = true end)
    assert.same({ nil, "boom" }, { socket.protect(function() try(nil, "boom") end)() })
    assert.is_true(finalized)
    assert.error_matches(function() socket.protect(function() error("plain") end)() end, "plain")
    helper.run(function()
      local t = corio.spawn(socket.protect(function() corio.sleep(10) end))
      helper.settle()
      t:cancel()
      helper.cancelled_await(t)
    end)
  end)
end)

describe("corio.socket.install", function()
  after_each(function() socket.uninstall() end)

  it("makes require 'socket', 'socket.core' and 'socket.unix' return corio's, until uninstall", function()
    local before = package.loaded.socket
    local http_before = package.loaded["socket.http"]
    assert.equals(socket, socket.install())
    assert.is_true(socket.installed())
    assert.equals(socket, require "socket")
    assert.equals(socket, require "socket.core")
    assert.equals(socket.unix, require "socket.unix")
    assert.is_nil(package.loaded["socket.http"])  -- loads again, over corio
    assert.is_true(socket.uninstall())
    assert.is_false(socket.uninstall())
    assert.equals(before, package.loaded.socket)
    assert.equals(http_before, package.loaded["socket.http"])
  end)
end)
