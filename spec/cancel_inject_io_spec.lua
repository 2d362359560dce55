-- Cancellation injection over I/O (TCP, Unix streams, UDP, DNS, files,
-- processes, worker threads, signals, TLS): each scenario is swept by
-- spec/cancel_inject.lua, cancelled at each of its checkpoints in turn, and
-- must leave no fd, handle, task or child process behind. Loopback only,
-- port 0. The servers' handler tasks are the loop's, not the scenario's:
-- their checkpoints are not counted, and they must end once their client
-- has gone.
local corio = require "corio"
local helper = require "helper"
local inject = require "cancel_inject"

local testing = corio.testing
local closer = inject.closer
local fs = corio.fs

-- an echo server: each line comes back with a "!" added; a line "size"
-- answers the byte count of everything read until the client's end
local function echo(s)
  while true do
    local line = s:read_line()
    if line == nil then break end
    if line == "size" then
      local all = s:read_all() or ""
      s:write(#all, "\n")
    else
      s:write(line, "!\n")
    end
  end
  s:close()
end

-- echo as a handler whose checkpoints count too (testing.track): when it
-- is the one cancelled, st.peer_gone says so, and the client's failure
-- that follows (an end of stream, a closed stream) is the scenario's to
-- accept
local function tracked_echo(st)
  return function(s)
    testing.track()
    local _c <close> = closer(st, "handler", function(err)
      if err then st.peer_gone = true end
      s:close()
    end)
    echo(s)
  end
end
local function peer_gone(_, st) return st.peer_gone end

-- server closed, and its handlers finished, when the value is closed
local function server_closer(st, srv)
  return closer(st, "server", function()
    corio.shield(function()
      srv:close { cancel = true }
      srv:wait_closed()
    end)
  end)
end

-- a stream closed when the value is closed (close does not wait in a
-- cancelled task)
local function stream_closer(st, s, name)
  return closer(st, name or "stream", function() s:close() end)
end

-- a TCP scenario's body: a server on 127.0.0.1 (o.handler, default
-- tracked_echo; o.serve, its options), a client stream connected to it
-- (from o.host, default 127.0.0.1; o.connect, its options), both closed by
-- <close>; then fn(s, st) with the client stream
local function tcp_body(fn, o)
  o = o or {}
  return function(st)
    local srv = assert(corio.serve("127.0.0.1", 0, o.handler or tracked_echo(st), o.serve))
    local _srv <close> = server_closer(st, srv)
    local _, port = srv:address()
    local s = assert(corio.connect(o.host or "127.0.0.1", port, o.connect))
    local _s <close> = stream_closer(st, s)
    fn(s, st)
  end
end

local function echo_rounds(s, n)
  for i = 1, n do
    assert(s:write("line " .. i, "\n"))
    assert(s:read_line() == "line " .. i .. "!")
  end
end

-- fresh directory per run, removed after it
local function dir_setup(st)
  st.dir = assert(fs.mkdtemp("/tmp/corio-inject-XXXXXX"))
end
local function dir_teardown(st)
  os.execute("rm -rf " .. helper.quote(st.dir))
end

local certs = helper.tls_certs()
local has_tls = certs and corio.tls.available()

local scenarios = {
  {
    name = "TCP connect, write, read_line, close",
    accept = peer_gone,
    body = tcp_body(function(s)
      echo_rounds(s, 3)
      assert(s:close())
    end),
  },
  {
    name = "TCP connect by name (localhost)",
    accept = peer_gone,
    body = tcp_body(function(s)
      echo_rounds(s, 1)
    end, { host = "localhost" }),
  },
  {
    name = "TCP connect refused",
    body = function(st)
      local srv = assert(corio.serve("127.0.0.1", 0, echo))
      local _, port = srv:address()
      srv:close()
      srv:wait_closed()
      local _c <close> = closer(st, "after")
      local s, _, code = corio.connect("127.0.0.1", port)
      assert(s == nil and code == "ECONNREFUSED", tostring(code))
    end,
  },
  {
    name = "TCP large write under backpressure, shutdown, read_all",
    accept = peer_gone,
    body = tcp_body(function(s)
      assert(s:write("size\n"))
      local chunk = ("x"):rep(65536)
      for _ = 1, 16 do assert(s:write(chunk)) end
      assert(s:drain())
      assert(s:shutdown())
      assert(s:read_line() == tostring(16 * 65536))
      assert(s:read_all() == "")
    end),
  },
  {
    name = "Unix stream echo",
    setup = dir_setup,
    teardown = dir_teardown,
    accept = peer_gone,
    body = function(st)
      local path = st.dir .. "/echo.sock"
      local srv = assert(corio.serve_unix(path, tracked_echo(st)))
      local _srv <close> = server_closer(st, srv)
      local s = assert(corio.connect_unix(path))
      local _s <close> = stream_closer(st, s)
      echo_rounds(s, 2)
    end,
  },
  {
    name = "UDP send and receive",
    body = function(st)
      local a = corio.udp()
      local _a <close> = closer(st, "a", function() a:close() end)
      local b = corio.udp()
      local _b <close> = closer(st, "b", function() b:close() end)
      assert(a:bind("127.0.0.1", 0))
      assert(b:bind("127.0.0.1", 0))
      local bhost, bport = b:address()
      local ahost, aport = a:address()
      for i = 1, 2 do
        assert(a:send("ping" .. i, bhost, bport))
        assert(b:recv() == "ping" .. i)
        assert(b:send("pong" .. i, ahost, aport))
        assert(a:recv() == "pong" .. i)
      end
    end,
  },
  {
    name = "DNS lookup of localhost",
    body = function(st)
      local _c <close> = closer(st, "dns")
      local list = assert(corio.getaddrinfo("localhost"))
      assert(#list > 0)
      assert(corio.getaddrinfo("127.0.0.1", 80))
    end,
  },
  {
    name = "files: write_file, append_file, read_file, stat",
    setup = dir_setup,
    teardown = dir_teardown,
    body = function(st)
      local p = st.dir .. "/data.txt"
      assert(fs.write_file(p, "hello\n"))
      assert(fs.append_file(p, "world\n"))
      assert(fs.read_file(p) == "hello\nworld\n")
      assert(fs.stat(p).size == 12)
      assert(fs.unlink(p))
    end,
  },
  {
    name = "files: open, write, seek, read_line, lines, close",
    setup = dir_setup,
    teardown = dir_teardown,
    body = function(st)
      local p = st.dir .. "/lines.txt"
      do
        local f <close> = assert(fs.open(p, "w"))
        local _c <close> = closer(st, "writer")
        assert(f:write("a\n", "b\n", "c\n"))
        assert(f:close())
      end
      local f <close> = assert(fs.open(p, "r+"))
      assert(f:read_line() == "a")
      local rest = {}
      for line in f:lines() do rest[#rest + 1] = line end
      assert(#rest == 2)
      assert(f:seek("set", 0) == 0)
      assert(f:read_all() == "a\nb\nc\n")
    end,
  },
  {
    name = "files: scandir, mkdir, rename, rmdir",
    setup = dir_setup,
    teardown = dir_teardown,
    body = function(st)
      local d = st.dir .. "/sub"
      assert(fs.mkdir(d))
      assert(fs.write_file(d .. "/f", "x"))
      assert(fs.rename(d .. "/f", d .. "/g"))
      local names = {}
      for name in fs.scandir(d) do names[#names + 1] = name end
      assert(#names == 1 and names[1] == "g")
      assert(fs.unlink(d .. "/g"))
      assert(fs.rmdir(d))
    end,
  },
  {
    name = "process: exec with pipes, write, read, wait",
    no_children = true,
    body = function(st)
      local p <close> = assert(corio.exec({ "cat" }, { stdin = "pipe", stdout = "pipe" }))
      local _c <close> = closer(st, "proc")
      assert(p.stdin:write("one\ntwo\n"))
      assert(p.stdout:read_line() == "one")
      assert(p.stdin:close())
      assert(p.stdout:read_line() == "two")
      assert(p.stdout:read_line() == nil)
      assert(p:wait() == 0)
    end,
  },
  {
    name = "process: a waited process is killed on cancellation",
    no_children = true,
    body = function(st)
      local p <close> = assert(corio.exec({ "sleep", "0.2" }))
      local _c <close> = closer(st, "proc")
      assert(p:wait() == 0)
    end,
  },
  {
    name = "process: run_process with input",
    no_children = true,
    body = function(st)
      local _c <close> = closer(st, "run")
      local code, out = corio.run_process({ "tr", "a-z", "A-Z" }, { input = "shout\n" })
      assert(code == 0 and out == "SHOUT\n", tostring(out))
      code, out = corio.run_process({ "sh", "-c", "echo done" })
      assert(code == 0 and out == "done\n")
    end,
  },
  {
    name = "to_thread: results, then a long job",
    body = function(st)
      local _c <close> = closer(st, "thread")
      assert(corio.to_thread(function(a, b) return a + b end, 2, 3) == 5)
      local sum = corio.to_thread(function(n)
        local x = 0
        for i = 1, n do x = x + i end
        return x
      end, 2000000)
      assert(sum == 2000000 * 2000001 // 2)
    end,
  },
  {
    name = "to_thread: several jobs in a task group",
    body = function(st)
      local tg <close> = corio.task_group()
      for i = 1, 3 do
        tg:spawn(function()
          local _c <close> = closer(st, "job" .. i)
          assert(corio.to_thread(function(x) return x * 2 end, i) == i * 2)
        end)
      end
    end,
  },
  {
    name = "signal receiver",
    no_children = true,
    body = function(st)
      local r <close> = assert(corio.signal("SIGUSR1"))
      local _c <close> = closer(st, "receiver")
      assert(corio.run_process({ "kill", "-USR1", inject.pid() }) == 0)
      assert(r:wait() == "SIGUSR1")
    end,
  },
  {
    name = "TCP close with a large write still queued",
    accept = peer_gone,
    body = tcp_body(function(s)
      assert(s:write("size\n", ("z"):rep(4 << 20)))
      assert(s:close())  -- flushes first
    end),
  },
  {
    name = "process output read line by line, then wait",
    no_children = true,
    body = function(st)
      local p <close> = assert(corio.exec({ "sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.01; done" },
                                          { stdout = "pipe" }))
      local _c <close> = closer(st, "reader")
      local n = 0
      for line in p.stdout:lines() do n = n + tonumber(line) end
      assert(n == 6)
      assert(p:wait() == 0)
    end,
  },
  {
    name = "a file shared by two tasks, taking turns",
    setup = dir_setup,
    teardown = dir_teardown,
    body = function(st)
      local p = st.dir .. "/shared"
      assert(fs.write_file(p, ("line\n"):rep(100)))
      local f <close> = assert(fs.open(p))
      local tg <close> = corio.task_group()
      for i = 1, 2 do
        tg:spawn(function()
          local _c <close> = closer(st, "reader" .. i)
          for _ = 1, 3 do assert(f:read_line() == "line") end
        end)
      end
    end,
  },
  {
    name = "a timeout around TCP reads that expires",
    body = tcp_body(function(s, st)
      local ok, err = pcall(corio.timeout, 0.05, function()
        local _c <close> = closer(st, "in")
        s:read_line()
      end)
      assert(not ok)
      if corio.is_cancelled(err) then error(err, 0) end
      assert(corio.TimeoutError.is(err), tostring(err))
    end, {
      handler = function(s)
        s:read_line()  -- never answers; ends when the client goes
        s:close()
      end,
    }),
  },
}

if has_tls then
  scenarios[#scenarios + 1] = {
    name = "TLS handshake and echo",
    accept = peer_gone,
    body = tcp_body(function(s)
      echo_rounds(s, 2)
      assert(s:close())
    end, {
      serve = { tls = { server = true, cert = certs.server, key = certs.server_key } },
      connect = { tls = { ca_file = certs.ca } },
    }),
  }
end

describe("cancellation injected at every checkpoint of I/O", function()
  teardown(helper.tls_cleanup)
  for _, sc in ipairs(scenarios) do it(sc.name, inject.test(sc)) end
end)
