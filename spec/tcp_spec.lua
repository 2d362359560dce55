-- TCP streams and servers (DESIGN.md "I/O"): loopback only, port 0.
local corio = require "corio"
local helper = require "helper"

-- a server on an ephemeral port: returns it, its host and port
local function serve(handler, opts)
  local srv = assert(corio.serve("127.0.0.1", 0, handler, opts))
  local host, port = srv:address()
  return srv, host, port
end

local checksum = helper.checksum

describe("corio.connect", function()
  it("returns nil, message, code when the connection is refused", function()
    helper.run(function()
      -- a port nobody listens on: take an ephemeral one and close it
      local srv, host, port = serve(function() end)
      srv:close()
      srv:wait_closed()
      local s, msg, code = corio.connect(host, port)
      assert.is_nil(s)
      assert.equals("ECONNREFUSED", code)
      assert.equals("ECONNREFUSED: connection refused", msg)
    end)
  end)

  it("resolves names and fails cleanly on unknown ones", function()
    helper.run(function()
      local srv, _, port = serve(function(s) s:write("hi") end)
      local s = assert(corio.connect("localhost", port))
      assert.equals("hi", s:read_all())
      s:close()
      -- (a name that fails to resolve is not tried: the lookup would leave
      -- this machine for a DNS server, and tests stay on loopback)
      srv:close()
    end)
  end)

  it("raises on misuse and outside a task", function()
    assert.has_error(function() corio.connect("127.0.0.1", 80) end)
    helper.run(function()
      assert.has_error(function() corio.connect("127.0.0.1", 0) end)
      assert.has_error(function() corio.connect("127.0.0.1", "x") end)
    end)
  end)

  it("is cancelled cleanly while it resolves, and by an enclosing timeout", function()
    helper.run(function()
      local srv, _, port = serve(function() end)
      local t = corio.spawn(corio.connect, "localhost", port)
      corio.sleep(0)  -- t runs up to its wait on getaddrinfo
      assert.matches("waiting: connect", tostring(t))
      t:cancel()
      local ok, err = pcall(t.await, t)
      assert.is_false(ok)
      assert.is_true(corio.is_cancelled(err))
      -- an enclosing timeout already due stops the connect at its checkpoint
      local res = table.pack(pcall(function()
        local _t <close> = corio.timeout(0)
        return corio.connect("localhost", port)
      end))
      assert.is_false(res[1])
      assert.is_true(corio.TimeoutError.is(res[2]), tostring(res[2]))
      -- a connect with a timeout that is not needed succeeds (tests reach
      -- loopback only, so a connect that hangs cannot be staged here)
      local s = assert(corio.connect("127.0.0.1", port, { timeout = 5 }))
      s:close()
      srv:close()
    end)
  end)
end)

describe("a stream", function()
  it("echoes a round trip, with addresses and tostring", function()
    helper.run(function()
      local srv, host, port = serve(function(s)
        local data = s:read()
        s:write(data)
      end)
      local c = assert(corio.connect(host, port))
      assert.equals("127.0.0.1", (c:address()))
      local ph, pp = c:peer()
      assert.equals(host, ph)
      assert.equals(port, pp)
      assert.matches("^tcp stream 127.0.0.1:%d+ %-> 127.0.0.1:" .. port .. " %(open%)$", tostring(c))
      assert.is_true(c:set_nodelay(true))
      assert.is_true(c:set_keepalive(true, 30))
      assert.is_true(c:write("ping ", 42))
      assert.equals("ping 42", c:read_exactly(7))
      assert.is_nil(c:read())
      assert.is_true(c:close())
      assert.equals("tcp stream (closed)", tostring(c))
      assert.is_true(c:close())  -- a second close is a no-op
      assert.same({ nil, "closed" }, { c:read() })  -- closed: a failure, not misuse
      assert.same({ nil, "closed" }, { c:write("x") })
      assert.same({ nil, "closed" }, { c:peer() })
      srv:close()
    end)
  end)

  it("reads: read(n), read_exactly, read_line, read_until, lines, read_all, EOF", function()
    helper.run(function()
      local srv, host, port = serve(function(s)
        s:write("abcdef", "line one\r\n", "line two\n\n", "k=v;;x=y;;tail", "\n",
                "l1\nl2\nlast")
        s:shutdown()
        s:read()  -- until the client closes
      end)
      local c = assert(corio.connect(host, port))
      assert.equals("ab", c:read(2))
      assert.equals("cdef", c:read_exactly(4))
      assert.equals("line one", c:read_line())
      assert.equals("line two\n", c:read_line(true))
      assert.equals("", c:read_line())
      assert.equals("k=v", c:read_until(";;"))
      assert.equals("x=y;;", c:read_until(";;", true))
      assert.equals("tail", c:read_line())
      local lines = {}
      for line in c:lines() do lines[#lines + 1] = line end
      assert.same({ "l1", "l2", "last" }, lines)  -- the unterminated last line, then nil
      assert.is_nil(c:read_line())
      assert.is_nil(c:read())
      assert.is_nil(c:read_all() and nil)
      c:close()

      local c2 = assert(corio.connect(host, port))
      assert.equals("abcdef", c2:read_exactly(6))
      local all = c2:read_all()
      assert.equals("line one\r\nline two\n\nk=v;;x=y;;tail\nl1\nl2\nlast", all)
      assert.equals("", c2:read_all())
      c2:close()

      local c3 = assert(corio.connect(host, port))
      c3:read_until("tail\n")
      local none, eof, partial = c3:read_exactly(100)
      assert.is_nil(none)
      assert.equals("eof", eof)
      assert.equals("l1\nl2\nlast", partial)
      c3:close()

      local c4 = assert(corio.connect(host, port))
      c4:read_until("l2\n")
      local n2, e2, p2 = c4:read_until("\n\n")
      assert.same({ nil, "eof", "last" }, { n2, e2, p2 })
      assert.is_nil(c4:read_until("x"))
      c4:close()
      srv:close()
    end)
  end)

  it("fails line and delimiter reads past the limit, keeping the data", function()
    helper.run(function()
      local srv, host, port = serve(function(s)
        s:write(string.rep("a", 100), "\n", string.rep("b", 50), "|")
        s:read()
      end, { limit = 64 })
      local c = assert(corio.connect(host, port, { limit = 64 }))
      local none, msg = c:read_line()
      assert.is_nil(none)
      assert.equals("limit exceeded", msg)
      assert.same({ nil, "limit exceeded" }, { c:read_until("|") })
      assert.equals(string.rep("a", 100), c:read_exactly(100))  -- still buffered
      assert.equals("", c:read_line())
      assert.equals(string.rep("b", 50), c:read_until("|"))
      c:close()
      srv:close()
    end)
  end)

  it("checks for cancellation at every read, even one the buffer answers", function()
    helper.run(function()
      local srv, host, port = serve(function(s)
        s:write("one\ntwo\nthree\n")
        s:read()
      end)
      local c = assert(corio.connect(host, port))
      assert.equals("one", c:read_line())  -- "two\nthree\n" is buffered now
      local t = corio.spawn(function()
        corio.current_task():cancel()
        return c:read_line()
      end)
      local ok, err = pcall(t.await, t)
      assert.is_false(ok)
      assert.is_true(corio.Cancelled.is(err))
      assert.is_true(t:cancelled())
      -- and a read that cannot suspend raises, though its line is there
      assert.has_error(function()
        table.sort({ 1, 2 }, function(a, b) c:read_line(); return a < b end)
      end)
      assert.equals("two", c:read_line())  -- no byte was taken
      assert.equals("three\n", c:read_line(true))
      c:close()
      srv:close()
    end)
  end)

  it("stream methods raise on a value that is not a stream, before and after streams were used", function()
    helper.run(function()
      local srv, host, port = serve(function(s) s:read() end)
      local c = assert(corio.connect(host, port))
      local read_line, write = c.read_line, c.write
      assert.has_error(function() read_line(srv) end)
      c:write("x")
      for _, v in ipairs({ srv, corio.current_task(), corio.future(), io.stdout, {}, "s" }) do
        local ok, msg = pcall(read_line, v)
        assert.is_false(ok)
        assert.matches("Stream expected", msg)
        ok, msg = pcall(write, v, "x")
        assert.is_false(ok)
        assert.matches("Stream expected", msg)
      end
      c:close()
      assert.same({ nil, "closed" }, { c:read_line() })
      assert.has_error(function() read_line(42) end,
        "bad self to 'stream:read_line' (Stream expected, got number): use stream:read_line(...)")
      srv:close()
    end)
  end)

  it("lets one task read at a time", function()
    helper.run(function()
      local srv, host, port = serve(function(s) s:read() end)
      local c = assert(corio.connect(host, port))
      local t = corio.spawn(function() return c:read() end)
      corio.sleep(0.01)
      assert.has_error(function() c:read() end, "stream:read: another task is already reading")
      assert.has_error(function() c:read_line() end, "stream:read_line: another task is already reading")
      c:write("x")
      c:close()  -- the waiting reader wakes with nil, "closed"
      assert.same({ nil, "closed" }, { t:await() })
      srv:close()
    end)
  end)

  it("wakes a waiting reader with nil, 'closed' when another task closes or aborts it", function()
    helper.run(function()
      local srv, host, port = serve(function(s) s:read() end)
      local c = assert(corio.connect(host, port))
      local t = corio.spawn(function() return c:read_line() end)
      corio.sleep(0.01)
      assert.matches("waiting: stream", tostring(t))
      c:abort()
      assert.same({ nil, "closed" }, { t:await() })
      assert.is_true(c:abort())
      srv:close()
    end)
  end)

  it("loses no bytes when a read_line is cancelled", function()
    helper.run(function()
      local srv, host, port = serve(function(s)
        s:write("partial ")
        corio.sleep(0.1)
        s:write("line\nnext\n")
        s:read()
      end)
      local c = assert(corio.connect(host, port))
      local ok, err = pcall(function()
        local _t <close> = corio.timeout(0.03)
        return c:read_line()
      end)
      assert.is_false(ok)
      assert.is_true(corio.TimeoutError.is(err))
      assert.equals("partial line", c:read_line())
      -- a cancelled task: the stream stays usable for the next reader
      local t = corio.spawn(function() return c:read_exactly(1000) end)
      corio.sleep(0.01)
      t:cancel()
      assert.is_true(pcall(t.await, t) == false)
      assert.equals("next", c:read_line())
      c:close()
      srv:close()
    end)
  end)

  it("suspends a writer while the peer does not read, resuming when it does", function()
    helper.run(function()
      local go = corio.event()
      local got = 0
      local srv, host, port = serve(function(s)
        go:wait()
        while true do
          local d = s:read()
          if not d then break end
          got = got + #d
        end
      end)
      local c = assert(corio.connect(host, port, { high_water = 16384 }))
      local chunk = string.rep("x", 65536)
      local sent = 0
      local writer = corio.spawn(function()
        for _ = 1, 200 do  -- 12.5 MiB: more than the kernel buffers hold
          assert(c:write(chunk))
          sent = sent + #chunk
        end
      end)
      corio.sleep(0.2)
      assert.is_false(writer:done())
      assert.matches("waiting: stream", tostring(writer))
      local stalled = sent
      assert.is_true(stalled < 200 * #chunk)
      go:set()
      writer:await()
      assert.is_true(c:drain())
      assert.is_true(c:close())
      srv:close()
      srv:wait_closed()
      assert.equals(200 * #chunk, got)
    end)
  end)

  it("close flushes: the peer gets every byte of a large write", function()
    helper.run(function()
      local result = corio.future()
      local srv, host, port = serve(function(s)
        corio.sleep(0.05)  -- let the writer queue up and close first
        local all = s:read_all()
        result:set_result(#all, checksum(all))
      end)
      local c = assert(corio.connect(host, port))
      local data = string.rep("0123456789abcdef", 262144)  -- 4 MiB
      c:write(data)
      assert.is_true(c:close())
      local n, sum = result:await()
      assert.equals(#data, n)
      assert.equals(checksum(data), sum)
      srv:close()
    end)
  end)

  it("a handler that returns with a large write queued still delivers it", function()
    helper.run(function()
      local data = string.rep("handler!", 524288)  -- 4 MiB
      local srv, host, port = serve(function(s) s:write(data) end)
      local c = assert(corio.connect(host, port))
      corio.sleep(0.05)  -- the handler has returned; its stream is flushing
      collectgarbage()   -- and nothing holds it any more
      collectgarbage()
      local got = c:read_all()
      assert.equals(#data, #got)
      assert.equals(checksum(data), checksum(got))
      c:close()
      srv:close()
    end)
  end)

  it("half-closes with shutdown: the peer reads EOF and can still answer", function()
    helper.run(function()
      local srv, host, port = serve(function(s)
        local req = s:read_all()
        s:write("got " .. #req)
      end)
      local c = assert(corio.connect(host, port))
      c:write("request body")
      assert.is_true(c:shutdown())
      assert.has_error(function() c:write("more") end, "stream:write: the stream is shut down")
      assert.equals("got 12", c:read_all())
      c:close()
      srv:close()
    end)
  end)

  it("abort drops queued data and resets the connection", function()
    helper.run(function()
      local result = corio.future()
      local srv, host, port = serve(function(s)
        corio.sleep(0.05)
        local n = 0
        while true do
          local d, _, code = s:read()
          if not d then result:set_result(n, code) return end
          n = n + #d
        end
      end)
      local c = assert(corio.connect(host, port))
      c:write(string.rep("z", 8 * 1024 * 1024))
      assert.is_true(c:abort())
      assert.same({ nil, "closed" }, { c:write("x") })
      local n, code = result:await()
      assert.is_true(n < 8 * 1024 * 1024)  -- what was still queued is gone
      assert.is_true(code == nil or code == "ECONNRESET")
      srv:close()
    end)
  end)

  it("gathers small writes until the batch ends, in call order, and flushes them for drain, shutdown and close", function()
    helper.run(function()
      local got = corio.future()
      local srv, host, port = serve(function(s) got:set_result(s:read_all()) end)
      local c = assert(corio.connect(host, port))
      local other = corio.spawn(function()
        for i = 1, 50 do assert.is_true(c:write("b", i, ";")) end
      end)
      for i = 1, 50 do assert.is_true(c:write("a", i, ";")) end
      assert.is_true(c:drain())   -- gathered bytes go out first, then drain waits
      other:await()
      c:write("tail")
      assert.is_true(c:shutdown())   -- flushes, then the half-close
      local expect = {}
      for i = 1, 50 do expect[#expect + 1] = "a" .. i .. ";" end
      for i = 1, 50 do expect[#expect + 1] = "b" .. i .. ";" end
      expect[#expect + 1] = "tail"
      assert.equals(table.concat(expect), got:await())
      c:close()
      -- close flushes what was gathered
      local got2 = corio.future()
      srv:close()
      local srv2, _, port2 = serve(function(s) got2:set_result(s:read_all()) end)
      local c2 = assert(corio.connect(host, port2))
      c2:write("last words")
      c2:close()
      assert.equals("last words", got2:await())
      srv:wait_closed()
      srv2:close()
    end)
  end)

  it("sends gathered bytes before a write too big to gather, in the same order", function()
    helper.run(function()
      local got = corio.future()
      local srv, host, port = serve(function(s) got:set_result(s:read_all()) end)
      local c = assert(corio.connect(host, port))
      local big = string.rep("0123456789abcdef", 2048)  -- 32 KiB: past the gather limit
      assert.is_true(c:write("head;", 1, ";"))
      assert.is_true(c:write(big, "|", big))
      assert.is_true(c:write("tail"))
      c:close()
      assert.equals("head;1;" .. big .. "|" .. big .. "tail", got:await())
      srv:close()
    end)
  end)

  it("abort drops small writes still gathered", function()
    helper.run(function()
      local got = corio.future()
      local srv, host, port = serve(function(s)
        local d, _, code = s:read_all()
        got:set_result(d, code)
      end)
      local c = assert(corio.connect(host, port))
      c:write("never sent")
      c:abort()
      local d, code = got:await()
      assert.is_true(d == nil or d == "", tostring(d))
      assert.is_true(code == nil or code == "ECONNRESET")
      srv:close()
    end)
  end)

  it("returns EPIPE (or ECONNRESET) writing to a peer that has gone", function()
    helper.run(function()
      local srv, host, port = serve(function(s) s:abort() end)
      local c = assert(corio.connect(host, port))
      assert.is_nil(c:read())
      local ok, msg, code
      for _ = 1, 100 do
        ok, msg, code = c:write(string.rep("y", 65536))
        if not ok then break end
        corio.sleep(0.001)
      end
      assert.is_nil(ok)
      assert.is_true(code == "EPIPE" or code == "ECONNRESET", msg)
      assert.matches("^" .. code .. ": ", msg)
      c:close()
      srv:close()
    end)
  end)

  it("exchanges 16 MiB both ways with matching checksums", function()
    helper.run(function()
      local srv, host, port = serve(function(s)
        while true do  -- echo
          local d = s:read()
          if not d then break end
          assert(s:write(d))
        end
      end)
      local c = assert(corio.connect(host, port))
      local chunk = {}
      for i = 1, 65536 do chunk[i] = string.char((i * 7) % 251) end
      chunk = table.concat(chunk)
      local want = 0
      local reader = corio.spawn(function()
        local n, sum = 0, 0
        while true do
          local d = c:read()
          if not d then break end
          n, sum = n + #d, checksum(d, sum)
        end
        return n, sum
      end)
      for _ = 1, 256 do
        assert(c:write(chunk))
        want = checksum(chunk, want)
      end
      c:shutdown()
      local n, sum = reader:await()
      assert.equals(16 * 1024 * 1024, n)
      assert.equals(want, sum)
      c:close()
      srv:close()
    end)
  end)
end)

describe("a server", function()
  it("serves 200 concurrent connections", function()
    helper.run(function()
      local live, peak = 0, 0
      local srv, host, port = serve(function(s)
        live = live + 1
        peak = math.max(peak, live)
        local line = s:read_line()
        corio.sleep(0.05)
        s:write(line, "!\n")
        live = live - 1
      end)
      local results = corio.gather((function()
        local fns = {}
        for i = 1, 200 do
          fns[i] = function()
            local c = assert(corio.connect(host, port))
            c:write("client ", i, "\n")
            local r = c:read_line()
            c:close()
            return r
          end
        end
        return fns
      end)())
      for i = 1, 200 do assert.equals("client " .. i .. "!", results[i]) end
      assert.is_true(peak > 100)
      srv:close()
      srv:wait_closed()
    end)
  end)

  it("close stops accepting; wait_closed waits for the handlers", function()
    helper.run(function()
      local finished = 0
      local srv, host, port = serve(function(s)
        s:read_line()
        corio.sleep(0.05)
        finished = finished + 1
        s:write("bye\n")
      end)
      local c = assert(corio.connect(host, port))
      c:write("hi\n")
      corio.sleep(0.01)
      assert.is_true(srv:close())
      assert.is_true(srv:close())
      assert.equals("tcp server (closed)", tostring(srv))
      assert.has_error(function() srv:address() end)
      local none, _, code = corio.connect(host, port)
      assert.is_nil(none)
      assert.equals("ECONNREFUSED", code)
      assert.equals(0, finished)
      assert.is_true(srv:wait_closed())
      assert.equals(1, finished)
      assert.equals("bye", c:read_line())  -- the handler's stream was flushed
      assert.is_nil(c:read_line())         -- and closed when the handler ended
      c:close()
    end)
  end)

  it("close{cancel = true} cancels live handlers", function()
    helper.run(function()
      local cancelled = 0
      local srv, host, port = serve(function(s)
        local ok, err = pcall(s.read, s)
        if not ok and corio.is_cancelled(err) then cancelled = cancelled + 1 end
        error(err, 0)
      end)
      local clients = {}
      for i = 1, 3 do clients[i] = assert(corio.connect(host, port)) end
      corio.sleep(0.02)
      srv:close { cancel = true }
      srv:wait_closed()
      assert.equals(3, cancelled)
      for i = 1, 3 do
        assert.is_nil(clients[i]:read())
        clients[i]:close()
      end
    end)
  end)

  it("reports handler errors as unhandled task errors and keeps serving", function()
    local seen = helper.capture_errors()
    helper.run(function()
      local srv, host, port = serve(function(s)
        local line = s:read_line()
        if line == "boom" then error("handler failed") end
        s:write("ok\n")
      end)
      local c1 = assert(corio.connect(host, port))
      c1:write("boom\n")
      assert.is_nil(c1:read_line())
      c1:close()
      local c2 = assert(corio.connect(host, port))
      c2:write("fine\n")
      assert.equals("ok", c2:read_line())
      c2:close()
      srv:close()
      srv:wait_closed()
    end)
    helper.restore_errors()
    collectgarbage()
    assert.equals(1, #seen)
    assert.matches("handler failed", tostring(seen[1].err))
  end)

  it("is closed, with its streams, when the run ends", function()
    helper.run(function()
      local _, host, port = serve(function(s)
        s:write("hello\n")
        s:read()  -- until the run ends
      end)
      local c = assert(corio.connect(host, port))
      assert.equals("hello", c:read_line())
      -- neither the server nor the stream is closed here
    end)
  end)

  it("does not hide a deadlock while nobody reads its streams", function()
    local err = helper.run_error(function()
      -- (a task waiting to read would not deadlock: the peer may write)
      local srv, host, port = serve(function(s) s:write("x") end)
      local c = assert(corio.connect(host, port))
      srv:close()
      srv:wait_closed()
      corio.event():wait()
      c:close()
    end)
    assert.matches("deadlock", tostring(err):lower())
  end)
end)

describe("server:close", function()
  it("close{cancel = true} after a plain close() still cancels the running handlers", function()
    helper.run(function()
      local started, cancelled = 0, 0
      local srv, host, port = serve(function(s)
        started = started + 1
        local ok, err = pcall(corio.sleep, 30)
        if not ok and corio.is_cancelled(err) then cancelled = cancelled + 1 end
        s:close()
        if not ok then error(err, 0) end
      end)
      local a = assert(corio.connect(host, port))
      local b = assert(corio.connect(host, port))
      while started < 2 do corio.sleep(0.01) end
      assert.is_true(srv:close())  -- stops accepting; the handlers go on
      assert.is_nil(corio.connect(host, port))
      corio.sleep(0.05)
      assert.equals(0, cancelled)
      assert.is_true(srv:close({ cancel = true }))  -- now they are cancelled
      srv:wait_closed()
      assert.equals(2, cancelled)
      a:close()
      b:close()
    end)
  end)
end)

describe("separator reads after a limit", function()
  -- a search that ended in "limit exceeded" looked at the buffer for its
  -- own separator: a read for another one searches those bytes again
  it("finds a separator another read had scanned past", function()
    helper.run(function()
      local srv, host, port = serve(function(s) s:write("ab\ncdefgh;ij\n"); s:close() end)
      local s = assert(corio.connect(host, port, { limit = 4 }))
      local data, err = s:read_until("#")
      assert.is_nil(data)
      assert.equals("limit exceeded", err)
      assert.equals("ab", s:read_line())
      assert.equals("cd", s:read_exactly(2))
      assert.equals("efgh", s:read_until(";"))   -- scanned by the line search
      s:close()
      srv:close()
    end)
  end)
end)
