-- Streams closed by someone else, and methods called with a bad self: an
-- operation on a closed stream is an operational failure (nil, "closed" or
-- the error that ended it); misuse (a bad self, a bad argument) raises.
-- Loopback only, port 0.
local corio = require "corio"
local helper = require "helper"

local function serve(handler, opts)
  local srv = assert(corio.serve("127.0.0.1", 0, handler, opts))
  local host, port = srv:address()
  return srv, host, port
end

-- every method in a metatable's __index, called with a number for self,
-- raises "bad self to '<prefix>:<name>' (<tname> expected, got number)"
local function check_methods(obj, prefix, tname)
  local methods = getmetatable(obj).__index
  local n = 0
  for name, fn in pairs(methods) do
    local ok, msg = pcall(fn, 42, "x")
    assert.is_false(ok, name)
    local want = ("bad self to '%s:%s' (%s expected, got number): use %s:%s(...)")
      :format(prefix, name, tname, prefix, name)
    assert.equals(want, msg:sub(-#want), name)
    assert.is_nil(msg:find("%.c:"), msg)  -- never one of corio's files
    n = n + 1
  end
  return n
end

describe("network methods check their self", function()
  it("every method of Stream, Server and UDP socket names itself and the type", function()
    helper.run(function()
      local srv, host, port = serve(function(s) s:read_all() end)
      local c = assert(corio.connect(host, port))
      assert.is_true(check_methods(c, "stream", "Stream") >= 16)
      assert.equals(3, check_methods(srv, "server", "Server"))
      local u <close> = corio.udp()
      assert.is_true(check_methods(u, "udp", "UDP socket") >= 10)
      -- a dot for a colon
      local ok, msg = pcall(c.write, "hello")
      assert.is_false(ok)
      assert.matches("bad self to 'stream:write' %(Stream expected, got string%)", msg)
      ok, msg = pcall(c.read, srv)
      assert.is_false(ok)
      assert.matches("bad self to 'stream:read' %(Stream expected, got corio.Server%)", msg)
      -- the stream's fast path still works after a bad call
      assert.is_true(c:write("x"))
      c:close()
      srv:close()
    end)
  end)
end)

describe("a stream closed by someone else", function()
  it("reads, writes and drains return nil, 'closed' instead of raising; is_closed says so", function()
    helper.run(function()
      local srv, host, port = serve(function(s) s:read_all() end)
      local c = assert(corio.connect(host, port))
      assert.is_false(c:is_closed())
      local other = corio.spawn(function() c:close() end)
      other:await()
      assert.is_true(c:is_closed())
      assert.same({ nil, "closed" }, { c:read() })
      assert.same({ nil, "closed" }, { c:read_line() })
      assert.same({ nil, "closed" }, { c:read_exactly(3) })
      assert.same({ nil, "closed" }, { c:read_until("\n") })
      assert.same({ nil, "closed" }, { c:read_all() })
      assert.same({ nil, "closed" }, { c:write("x") })
      assert.same({ nil, "closed" }, { c:drain() })
      assert.same({ nil, "closed" }, { c:shutdown() })
      assert.same({ nil, "closed" }, { c:address() })
      assert.same({ nil, "closed" }, { c:set_nodelay(true) })
      -- misuse still raises on a closed stream
      assert.has_error(function() c:read(-1) end)
      assert.has_error(function() c:write({}) end)
      srv:close()
    end)
  end)

  it("a broadcast survives a client whose handler closed its stream on a reset", function()
    helper.run(function()
      local clients, gone = {}, corio.event()
      local srv, host, port = serve(function(s)
        clients[#clients + 1] = s
        if not s:read() then
          s:close()  -- the reset (or the end): this handler closes its stream
          gone:set()
        end
      end)
      local a = assert(corio.connect(host, port))
      local b = assert(corio.connect(host, port))
      while #clients < 2 do corio.sleep(0.01) end
      b:abort()  -- a reset
      gone:wait()
      local results = {}
      for i, s in ipairs(clients) do  -- another task writes to every stream
        results[i] = table.pack(s:write("news\n"))
      end
      local closed = 0
      for _, r in ipairs(results) do
        if r[1] == nil then
          closed = closed + 1
          assert.truthy(r[2] == "closed" or r[3] == "ECONNRESET", tostring(r[2]))
        end
      end
      assert.equals(1, closed)
      assert.equals("news", a:read_line())
      a:close()
      srv:close()
    end)
  end)

  it("a write, read or drain waiting when another task aborts wakes with nil, 'closed'", function()
    helper.run(function()
      local srv, host, port = serve(function(s)
        corio.sleep(10)
        s:close()
      end)
      local c = assert(corio.connect(host, port), { high_water = 1024 })
      local reader = corio.spawn(function() return table.pack(c:read()) end)
      local drainer = corio.spawn(function()
        c:write(string.rep("z", 8 * 1024 * 1024))
        return table.pack(c:drain())
      end)
      helper.settle()
      c:abort()
      local r, d = reader:await(), drainer:await()
      assert.same({ nil, "closed", n = 2 }, r)
      assert.is_nil(d[1])
      srv:close({ cancel = true })
    end)
  end)

  it("drain during another task's close waits for the flush", function()
    helper.run(function()
      local got, go = corio.future(), corio.event()
      local srv, host, port = serve(function(s)
        go:wait()  -- the flush cannot end before the drain has begun
        got:set_result(#s:read_all())
      end)
      local c = assert(corio.connect(host, port, { high_water = 1 << 30 }))
      local big = string.rep("y", 32 * 1024 * 1024)  -- more than the kernel buffers
      assert.is_true(c:write(big))
      local closer = corio.spawn(function() return c:close() end)
      corio.sleep(0)  -- the close has begun: the stream is closing
      assert.is_true(c:is_closed())
      go:set()
      assert.is_true(c:drain())  -- waits for the flush, does not raise
      assert.is_true(closer:await())
      assert.equals(#big, got:await())
      srv:close()
    end)
  end)
end)

describe("a write that fails with a reset", function()
  it("makes read and read_all return the reset, not a clean end", function()
    helper.run(function()
      local peer_gone = corio.event()
      local result = corio.future()
      local srv, host, port = serve(function(s)
        peer_gone:wait()  -- not reading while the reset arrives
        corio.sleep(0.05)
        local w = table.pack(s:write("x"))
        for _ = 1, 50 do  -- the first write may still go out; a later one fails
          if w[1] == nil then break end
          corio.sleep(0.01)
          w = table.pack(s:write(string.rep("x", 65536)))
        end
        local r = table.pack(s:read())
        local a = table.pack(s:read_all())
        result:set_result(w, r, a)
      end)
      local c = assert(corio.connect(host, port))
      corio.sleep(0.05)
      c:abort()
      peer_gone:set()
      local w, r, a = result:await()
      assert.equals("ECONNRESET", w[3])
      assert.same({ nil, "ECONNRESET: connection reset by peer", "ECONNRESET", n = 3 }, r)
      assert.same({ nil, "ECONNRESET: connection reset by peer", "ECONNRESET", n = 3 }, a)
      srv:close()
    end)
  end)
end)

describe("network arguments", function()
  it("connect's timeout: infinity means never, NaN and negatives raise", function()
    helper.run(function()
      local srv, host, port = serve(function(s) s:write("hi") end)
      local c = assert(corio.connect(host, port, { timeout = math.huge }))
      assert.equals("hi", c:read_all())
      c:close()
      c = assert(corio.connect(host, port, { timeout = 1e300 }))
      c:close()
      for _, bad in ipairs({ 0 / 0, -1, 0, "1" }) do
        local ok, msg = pcall(corio.connect, host, port, { timeout = bad })
        assert.is_false(ok)
        assert.matches("option 'timeout'", msg)
      end
      local ok, msg = pcall(corio.connect_unix, "/nonexistent", { timeout = 0 / 0 })
      assert.is_false(ok)
      assert.matches("NaN", msg)
      srv:close()
    end)
  end)

  it("sizes must be positive integers: limit = 1.5 is rejected, 1024.0 taken", function()
    helper.run(function()
      local srv, host, port = serve(function(s) s:write("hi") end)
      for _, bad in ipairs({ 1.5, 0, -3, "10", 0 / 0, math.huge }) do
        local ok, msg = pcall(corio.connect, host, port, { limit = bad })
        assert.is_false(ok, tostring(bad))
        assert.matches("bad argument #3 to .*option 'limit': a positive integer expected", msg)
      end
      assert.has_error(function() corio.udp({ queue = 2.5 }) end)
      local c = assert(corio.connect(host, port, { limit = 1024.0 }))
      c:close()
      srv:close()
    end)
  end)

  it("host names with a zero byte are rejected, not cut short", function()
    helper.run(function()
      local function err(f, ...)
        local ok, msg = pcall(f, ...)
        assert.is_false(ok)
        return msg
      end
      assert.matches("bad argument #1 .*host contains a zero byte",
        err(corio.connect, "127.0.0.1\0.evil", 80))
      assert.matches("host contains a zero byte", err(corio.serve, "127.0.0.1\0x", 0, function() end))
      assert.matches("host contains a zero byte", err(corio.getaddrinfo, "localhost\0x"))
      assert.matches("service contains a zero byte", err(corio.getaddrinfo, "localhost", "http\0x"))
      assert.matches("host contains a zero byte", err(corio.getnameinfo, "127.0.0.1\0x", 80))
      local u <close> = corio.udp()
      assert.matches("host contains a zero byte", err(u.bind, u, "127.0.0.1\0x", 0))
      assert.matches("host contains a zero byte", err(u.send, u, "x", "127.0.0.1\0x", 9))
    end)
  end)

  it("getnameinfo blames the argument that is wrong", function()
    helper.run(function()
      local ok, msg = pcall(corio.getnameinfo, "127.0.0.1", -1)
      assert.is_false(ok)
      assert.matches("bad argument #2 .*port out of range", msg)
      ok, msg = pcall(corio.getnameinfo, { address = "127.0.0.1", port = 70000 })
      assert.is_false(ok)
      assert.matches("bad argument #1 .*port out of range", msg)
    end)
  end)
end)
