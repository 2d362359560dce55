-- Cancellation injection, strict probes: each scenario is one task that
-- waits at one kind of checkpoint after another, catches nothing and
-- spawns nothing (what it waits for is made by the test's main task, in
-- setup). Cancelled while it waits there, it must end cancelled: a
-- checkpoint that lets the task go on as if nothing had come loses the
-- cancellation (see "strict" in spec/cancel_inject.lua). The sweep's other
-- checks hold as everywhere: <close> handlers once, nothing left behind.
local corio = require "corio"
local helper = require "helper"
local inject = require "cancel_inject"

local closer = inject.closer
local fs = corio.fs

-- bg(st, fn, ...): a task of the test's own (not counted), cancelled and
-- awaited by teardown
local function bg(st, fn, ...)
  st.bg = st.bg or {}
  st.bg[#st.bg + 1] = corio.spawn(fn, ...)
end

local function teardown_bg(st)
  for _, t in ipairs(st.bg or {}) do
    t:cancel()
    pcall(t.await, t)
  end
  if st.srv then
    st.srv:close { cancel = true }
    st.srv:wait_closed()
  end
  if st.dir then os.execute("rm -rf " .. helper.quote(st.dir)) end
end

-- a server whose handler answers each line after `delay` seconds
local function slow_server(st, delay, opts)
  st.srv = assert(corio.serve("127.0.0.1", 0, function(s)
    while true do
      local line = s:read_line()
      if not line then break end
      corio.sleep(delay)
      s:write(line, "\n")
    end
    s:close()
  end, opts))
  st.port = select(2, st.srv:address())
end

local certs = helper.tls_certs()

local probes = {
  {
    name = "sleep(0) and sleep",
    body = function(st)
      local _c <close> = closer(st, "c")
      corio.sleep(0)
      corio.sleep(1)
      corio.sleep(0)
    end,
  },
  {
    name = "await of a future and of a task",
    setup = function(st)
      st.f = corio.future()
      bg(st, function() corio.sleep(1); st.f:set_result(1) end)
      st.t = corio.spawn(function() corio.sleep(2); return 2 end)
      st.bg[#st.bg + 1] = st.t
    end,
    body = function(st)
      local _c <close> = closer(st, "c")
      assert(st.f:await() == 1)
      assert(st.t:await() == 2)
    end,
    teardown = teardown_bg,
  },
  {
    name = "lock, semaphore, event, condition, barrier",
    setup = function(st)
      st.lock, st.sem, st.ev = corio.lock(), corio.semaphore(1), corio.event()
      st.cond, st.barrier = corio.condition(), corio.barrier(2)
      bg(st, function()
        local _l <close> = st.lock:acquire()
        local _s <close> = st.sem:acquire()
        corio.sleep(1)
      end)
      bg(st, function()
        corio.sleep(2)
        st.ev:set()
        corio.sleep(1)
        local _l <close> = st.cond:acquire()
        st.cond:notify()
      end)
      bg(st, function() corio.sleep(4); st.barrier:wait() end)
    end,
    body = function(st)
      do
        local _l <close> = st.lock:acquire()
        local _c <close> = closer(st, "lock")
      end
      do
        local _s <close> = st.sem:acquire()
      end
      st.ev:wait()
      do
        local _l <close> = st.cond:acquire()
        st.cond:wait()
      end
      st.barrier:wait()
    end,
    check = function(st)
      assert(not st.lock:locked(), "the lock is still held")
      assert(not st.cond:locked(), "the condition's lock is still held")
    end,
    teardown = teardown_bg,
  },
  {
    name = "queue get on empty, put on full, channel receive",
    setup = function(st)
      st.q, st.full = corio.queue(), corio.queue(1)
      st.full:put_nowait("first")
      st.send, st.recv = corio.channel()
      bg(st, function()
        corio.sleep(1)
        st.q:put("item")
        st.item_put = true
        corio.sleep(1)
        st.taken = st.full:get()
        corio.sleep(1)
        st.send:send("message")
      end)
    end,
    body = function(st)
      st.got = st.q:get()
      st.full:put("second")
      st.put = true
      st.received = st.recv:receive()
    end,
    check = function(st)
      -- "item", once put, is got or still queued, never both, never neither
      local n = (st.got == "item" and 1 or 0) + st.q:qsize()
      assert(n == (st.item_put and 1 or 0), "item lost or duplicated")
      assert(st.full:qsize() == (st.put and 1 or 0) + (st.taken and 0 or 1),
             "a cancelled put inserted, or a put was lost")
    end,
    teardown = teardown_bg,
  },
  {
    name = "TCP connect, write, read",
    setup = function(st) slow_server(st, 0.05) end,
    body = function(st)
      local s <close> = assert(corio.connect("127.0.0.1", st.port))
      assert(s:write("a\n"))
      assert(s:read_line() == "a")
      assert(s:write("b\n"))
      assert(s:read_exactly(2) == "b\n")
    end,
    teardown = teardown_bg,
  },
  {
    name = "TCP write under backpressure",
    setup = function(st)
      st.srv = assert(corio.serve("127.0.0.1", 0, function(s)
        corio.sleep(0.05)
        s:read_all()
        s:close()
      end))
      st.port = select(2, st.srv:address())
    end,
    body = function(st)
      local s <close> = assert(corio.connect("127.0.0.1", st.port))
      local chunk = ("y"):rep(1 << 20)
      for _ = 1, 8 do assert(s:write(chunk)) end
      assert(s:drain())
    end,
    teardown = teardown_bg,
  },
  {
    name = "Unix connect and read",
    setup = function(st)
      st.dir = assert(fs.mkdtemp("/tmp/corio-probe-XXXXXX"))
      st.srv = assert(corio.serve_unix(st.dir .. "/s", function(s)
        corio.sleep(0.05)
        s:write("hi\n")
        s:close()
      end))
    end,
    body = function(st)
      local s <close> = assert(corio.connect_unix(st.dir .. "/s"))
      assert(s:read_line() == "hi")
    end,
    teardown = teardown_bg,
  },
  {
    name = "UDP recv",
    setup = function(st)
      st.peer = corio.udp()
      assert(st.peer:bind("127.0.0.1", 0))
      st.sock = corio.udp()
      assert(st.sock:bind("127.0.0.1", 0))
      local host, port = st.sock:address()
      bg(st, function() corio.sleep(0.05); st.peer:send("x", host, port) end)
    end,
    body = function(st) assert(st.sock:recv() == "x") end,
    teardown = function(st)
      teardown_bg(st)
      st.peer:close()
      st.sock:close()
    end,
  },
  {
    name = "DNS",
    body = function()
      assert(corio.getaddrinfo("localhost"))
      assert(corio.getnameinfo("127.0.0.1"))
    end,
  },
  {
    name = "files",
    setup = function(st) st.dir = assert(fs.mkdtemp("/tmp/corio-probe-XXXXXX")) end,
    body = function(st)
      local p = st.dir .. "/f"
      assert(fs.write_file(p, "one\ntwo\n"))
      assert(fs.read_file(p))
      local f <close> = assert(fs.open(p))
      assert(f:read_line() == "one")
      assert(f:stat())
    end,
    teardown = teardown_bg,
  },
  {
    name = "process wait and run_process",
    no_children = true,
    body = function()
      local p <close> = assert(corio.exec({ "sleep", "0.1" }))
      assert(p:wait() == 0)
      assert(corio.run_process({ "true" }) == 0)
    end,
  },
  {
    name = "to_thread",
    body = function()
      assert(corio.to_thread(function(n)
        local x = 0
        for i = 1, n do x = x + i end
        return x
      end, 1000000))
    end,
  },
  {
    name = "signal wait",
    setup = function(st)
      bg(st, function()
        corio.sleep(0.05)
        corio.run_process({ "kill", "-USR2", inject.pid() })
      end)
    end,
    body = function()
      local r <close> = assert(corio.signal("SIGUSR2"))
      assert(r:wait() == "SIGUSR2")
    end,
    teardown = teardown_bg,
    no_children = true,
  },
  {
    name = "timeout and move_on_after around waits",
    body = function()
      local _t <close> = corio.timeout(10)
      corio.move_on_after(0.5, corio.sleep, 1)
      corio.sleep(1)
    end,
  },
}

if certs and corio.tls.available() then
  probes[#probes + 1] = {
    name = "TLS handshake and read",
    setup = function(st)
      slow_server(st, 0, { tls = { server = true, cert = certs.server, key = certs.server_key } })
    end,
    body = function(st)
      local s <close> = assert(corio.connect("127.0.0.1", st.port, { tls = { ca_file = certs.ca } }))
      assert(s:write("z\n"))
      assert(s:read_line() == "z")
    end,
    teardown = teardown_bg,
  }
end

describe("a cancellation at any checkpoint ends a task that does not catch it", function()
  teardown(helper.tls_cleanup)
  for _, sc in ipairs(probes) do
    sc.strict = true
    it(sc.name, inject.test(sc))
  end
end)
