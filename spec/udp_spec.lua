-- UDP sockets (DESIGN.md "I/O"): loopback only, port 0.
local corio = require "corio"
local helper = require "helper"

-- a socket bound to an ephemeral loopback port: returns it, host, port
local function bound(opts, host)
  local s = corio.udp(opts)
  local ok, msg, code = s:bind(host or "127.0.0.1", 0)
  if not ok then
    s:close()
    return nil, msg, code
  end
  return s, s:address()
end

-- wait (on the loop, a bounded number of turns) until pred() holds
local function until_true(pred)
  for _ = 1, 2000 do
    if pred() then return true end
    corio.sleep(0.001)
  end
  return pred()
end

describe("corio.udp", function()
  it("sends and receives datagrams, with addresses and tostring", function()
    helper.run(function()
      local a, ahost, aport = bound()
      local b, bhost, bport = bound()
      assert.equals("127.0.0.1", ahost)
      assert.is_true(aport > 0)
      assert.equals("udp socket 127.0.0.1:" .. aport .. " (open)", tostring(a))
      assert.is_true(a:send("hello", bhost, bport))
      local data, host, port = b:recv()
      assert.equals("hello", data)
      assert.equals("127.0.0.1", host)
      assert.equals(aport, port)
      -- replies, an empty datagram and a number
      assert.is_true(b:send("", host, port))
      assert.is_true(b:send(42, host, port))
      assert.same({ "", bhost, bport }, { a:recv() })
      assert.same({ "42", bhost, bport }, { a:recv() })
      -- a large datagram arrives whole
      local big = string.rep("x", 60000)
      assert.is_true(a:send(big, bhost, bport))
      assert.equals(big, (b:recv()))
      assert.equals(0, a:dropped())
      assert.equals(0, b:pending())
      assert.is_true(a:set_broadcast(true))
      assert.is_true(a:set_broadcast(false))
      -- a socket never bound gets its address from its first send, and
      -- can then receive the reply
      local c = corio.udp()
      assert.is_true(c:send("from c", bhost, bport))
      local _, chost, cport = b:recv()
      assert.equals(cport, select(2, c:address()))  -- on 0.0.0.0, as the kernel does
      assert.is_true(b:send("to c", chost, cport))
      assert.same({ "to c", bhost, bport }, { c:recv() })
      c:close()
      assert.is_true(a:close())
      assert.is_true(a:close())  -- again: no effect
      assert.equals("udp socket (closed)", tostring(a))
      b:close()
    end)
  end)

  it("connects: send without an address, peer, and only the peer's datagrams", function()
    helper.run(function()
      local a, ahost, aport = bound()
      local b, bhost, bport = bound()
      local other = bound()
      assert.is_true(a:connect(bhost, bport))
      assert.same({ bhost, bport }, { a:peer() })
      assert.equals(("udp socket 127.0.0.1:%d -> 127.0.0.1:%d (open)"):format(aport, bport),
                    tostring(a))
      assert.is_true(a:send("to b"))
      assert.same({ "to b", ahost, aport }, { b:recv() })
      -- a connected socket ignores other senders
      assert.is_true(other:send("stranger", ahost, aport))
      assert.is_true(b:send("from b", ahost, aport))
      assert.same({ "from b", bhost, bport }, { a:recv() })
      assert.equals(0, a:pending())
      -- misuse: an address on a connected socket, none on another
      assert.has_error(function() a:send("x", bhost, bport) end,
        "udp:send: the socket is connected: send without an address")
      assert.has_error(function() b:send("x") end,
        "udp:send: host and port expected (the socket is not connected)")
      -- connect() with no address undoes it
      assert.is_true(a:connect())
      assert.is_nil((a:peer()))
      assert.is_true(a:send("again", bhost, bport))
      assert.equals("again", (b:recv()))
      a:close()
      b:close()
      other:close()
    end)
  end)

  it("returns nil, msg, code on operational failures", function()
    helper.run(function()
      -- ICMP port unreachable: a connected socket learns ECONNREFUSED
      local gone, host, port = bound()
      gone:close()
      local a = bound()
      assert.is_true(a:connect(host, port))
      assert.is_true(a:send("anyone?"))
      local none, msg, code = a:recv()
      assert.is_nil(none)
      assert.equals("ECONNREFUSED", code)
      assert.equals("ECONNREFUSED: connection refused", msg)
      a:close()
      -- a second bind, an address in use
      local b, bhost, bport = bound()
      local ok, m2, c2 = b:bind("127.0.0.1", 0)
      assert.is_nil(ok)
      assert.equals("EINVAL", c2)
      assert.matches("^EINVAL: ", m2)
      local c = corio.udp()
      -- not bound yet: no address
      assert.same({ nil, "EBADF: bad file descriptor", "EBADF" }, { c:address() })
      assert.equals("udp socket (unbound)", tostring(c))
      assert.same({ nil, "EADDRINUSE: address already in use", "EADDRINUSE" },
                  { c:bind(bhost, bport) })
      -- too large for a datagram
      assert.equals("EMSGSIZE", select(3, b:send(string.rep("x", 70000), bhost, bport)))
      -- a name that is not numeric is looked up ("localhost" only here)
      assert.is_true(c:bind("localhost", 0))
      assert.equals("127.0.0.1", (c:address()))
      b:close()
      c:close()
    end)
  end)

  it("raises on misuse", function()
    assert.has_error(function() corio.udp() end,
      "corio.udp: no running loop (start one with corio.run)")
    helper.run(function()
      assert.has_error(function() corio.udp({ queue = 0 }) end)
      assert.has_error(function() corio.udp(5) end)
      local s = corio.udp()
      assert.has_error(function() s:bind("127.0.0.1", -1) end)
      assert.has_error(function() s:bind("127.0.0.1", 70000) end)
      assert.has_error(function() s:bind(nil, 0) end)
      assert.has_error(function() s:recv() end,
        "udp:recv: the socket has no address yet (bind, connect or send first)")
      assert.has_error(function() s:send({}, "127.0.0.1", 9) end)
      assert.has_error(function() s:send("x", "127.0.0.1", 0) end)
      assert.has_error(function() s:connect("127.0.0.1", 0) end)
      s:close()
      assert.has_error(function() s:recv() end, "udp:recv: the socket is closed")
      assert.has_error(function() s:send("x", "127.0.0.1", 9) end, "udp:send: the socket is closed")
      assert.has_error(function() s:bind("127.0.0.1", 0) end, "udp:bind: the socket is closed")
      assert.has_error(function() s:address() end, "udp:address: the socket is closed")
      assert.equals(0, s:dropped())
    end)
  end)

  it("lets one task receive at a time; closing wakes the receiver", function()
    helper.run(function()
      local a = bound()
      local t = corio.spawn(function() return a:recv() end)
      corio.sleep(0)
      assert.matches("waiting: udp", tostring(t))
      assert.has_error(function() a:recv() end, "udp:recv: another task is already receiving")
      a:close()
      assert.same({ nil, "closed" }, { t:await() })
    end)
  end)

  it("is cancelled cleanly in recv, keeping every queued datagram", function()
    helper.run(function()
      local a, ahost, aport = bound()
      local b = bound()
      -- a timeout while nothing arrives
      local ok, err = pcall(corio.timeout, 0.01, a.recv, a)
      assert.is_false(ok)
      assert.is_true(corio.TimeoutError.is(err))
      -- a cancel while it waits
      local t = corio.spawn(a.recv, a)
      corio.sleep(0)
      t:cancel()
      assert.is_true(corio.is_cancelled(select(2, pcall(t.await, t))))
      -- datagrams queued meanwhile are all there, in order
      for i = 1, 3 do assert.is_true(b:send("d" .. i, ahost, aport)) end
      assert.is_true(until_true(function() return a:pending() == 3 end))
      -- a timeout already due stops recv at its checkpoint: nothing is taken
      ok, err = pcall(function()
        local _t <close> = corio.timeout(0)
        return a:recv()
      end)
      assert.is_false(ok)
      assert.is_true(corio.TimeoutError.is(err))
      assert.equals(3, a:pending())
      for i = 1, 3 do assert.equals("d" .. i, (a:recv())) end
      a:close()
      b:close()
    end)
  end)

  it("queues at most `queue` datagrams while nobody receives, dropping and counting the rest", function()
    helper.run(function()
      local a, ahost, aport = bound({ queue = 8 })
      local b = bound()
      for i = 1, 20 do assert.is_true(b:send("m" .. i, ahost, aport)) end
      assert.is_true(until_true(function() return a:pending() + a:dropped() == 20 end))
      assert.equals(8, a:pending())
      assert.equals(12, a:dropped())
      for i = 1, 8 do assert.equals("m" .. i, (a:recv())) end
      -- the dropped ones are gone: the next datagram is the next one sent
      assert.is_true(b:send("last", ahost, aport))
      assert.equals("last", (a:recv()))
      assert.equals(12, a:dropped())
      a:close()
      b:close()
    end)
  end)

  it("bounds the queue at 256 datagrams by default", function()
    helper.run(function()
      local a, ahost, aport = bound()
      local b = bound()
      local sent = 0
      for _ = 1, 15 do  -- in batches, so the kernel's own buffer never fills
        for _ = 1, 20 do
          sent = sent + 1
          assert.is_true(b:send(tostring(sent), ahost, aport))
        end
        local want = sent
        assert.is_true(until_true(function() return a:pending() + a:dropped() == want end))
      end
      assert.equals(256, a:pending())
      assert.equals(300 - 256, a:dropped())
      for i = 1, 256 do assert.equals(tostring(i), (a:recv())) end
      assert.equals(0, a:pending())
      a:close()
      b:close()
    end)
  end)

  it("waits for libuv when the kernel does not take a datagram at once", function()
    helper.run(function()
      local a, ahost, aport = bound()
      local b = bound()
      corio.core._udp_queue_sends(b, true)  -- every send takes the slow path
      assert.is_true(b:send("queued", ahost, aport))
      assert.equals("queued", (a:recv()))
      -- the send is a checkpoint there: cancelled, the datagram still goes
      local t = corio.spawn(b.send, b, "cancelled", ahost, aport)
      corio.sleep(0)
      assert.matches("waiting: udp", tostring(t))
      t:cancel()
      assert.is_true(corio.is_cancelled(select(2, pcall(t.await, t))))
      assert.equals("cancelled", (a:recv()))
      -- a timeout already due raises before anything is sent
      local ok, err = pcall(function()
        local _t <close> = corio.timeout(0)
        return b:send("never", ahost, aport)
      end)
      assert.is_false(ok)
      assert.is_true(corio.TimeoutError.is(err))
      -- the socket is still usable
      assert.is_true(b:send("after", ahost, aport))
      assert.equals("after", (a:recv()))
      assert.equals(0, a:pending())
      -- closing wakes a waiting sender: true when libuv had sent the
      -- datagram already (it tries at once), else nil, "closed"
      local t2 = corio.spawn(b.send, b, "last", ahost, aport)
      corio.sleep(0)
      assert.matches("waiting: udp", tostring(t2))
      b:close()
      local r = { t2:await() }
      assert.is_true(r[1] == true or (r[1] == nil and r[2] == "closed"))
      a:close()
    end)
  end)

  it("works on IPv6 loopback when ::1 is configured", function()
    helper.run(function()
      local a, host, port = bound(nil, "::1")
      if not a then return end  -- no IPv6 loopback on this machine
      local b, bhost, bport = assert(bound(nil, "::1"))
      assert.equals("::1", host)
      assert.equals("udp socket ::1:" .. port .. " (open)", tostring(a))
      assert.is_true(b:send("six", host, port))
      assert.same({ "six", bhost, bport }, { a:recv() })
      a:close()
      b:close()
    end)
  end)

  it("works as a to-be-closed variable, and the run closes forgotten sockets", function()
    helper.run(function()
      local a
      do
        local s <close> = corio.udp()
        a = s
        assert.is_true(s:bind("127.0.0.1", 0))
      end
      assert.equals("udp socket (closed)", tostring(a))
    end)
    -- never closed: one with a receiver waiting, one with datagrams queued
    helper.run(function()
      local s = bound()
      local other, host, port = bound()
      s:send("x", host, port)
      assert.is_true(until_true(function() return other:pending() == 1 end))
      corio.spawn(function() s:recv() end)
      corio.sleep(0)
    end)
    -- a socket that is only garbage is closed by its collector
    helper.run(function()
      bound()
      collectgarbage()
      collectgarbage()
    end)
  end)
end)
