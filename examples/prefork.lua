-- A server on every core: one worker process per core, all accepting on one
-- port (corio.serve with reuse_port: the kernel spreads the connections
-- among them). Each worker answers any HTTP request with
-- "hello from worker K".
--
--   corio examples/prefork.lua [PORT [WORKERS]]
--
-- PORT defaults to 8080 (0 picks a free port), WORKERS to the number of
-- cores. The parent starts the workers by running this script again with
-- corio.exec (the command's own path is arg's lowest index), prints
-- "listening on HOST PORT" once every worker listens, restarts a worker that
-- dies, and stops them all on SIGINT (Ctrl-C) or SIGTERM. A worker also
-- stops when its parent is gone (its stdin, a pipe from the parent, ends).
-- Try it with
--   curl -s http://127.0.0.1:8080/
--   wrk -t2 -c100 -d5s http://127.0.0.1:8080/
local corio = require "corio"

local HOST = "127.0.0.1"

local function say(fmt, ...)
  io.stdout:write(fmt:format(...), "\n")
  io.stdout:flush()
end

-- The corio command (or interpreter) running us, and this script.
local function self_command()
  local i = 0
  while arg[i - 1] ~= nil do i = i - 1 end
  return arg[i], arg[0]
end

-- ---- a worker: serve until SIGINT, SIGTERM or the parent's end --------------

local function respond(stream, id)
  local body = "hello from worker " .. id .. "\n"
  while true do
    local line = stream:read_line()
    if line == nil then return end
    local close = false
    repeat  -- the headers (a request body, if any, is not read: keep it simple)
      local header = stream:read_line()
      if header == nil then return end
      if header:lower():match("^connection:%s*close") then close = true end
    until header == ""
    stream:write("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ",
                 tostring(#body), close and "\r\nConnection: close" or "",
                 "\r\n\r\n", body)
    if close then return end
  end
end

local function worker(port, id)
  local server = assert(corio.serve(HOST, port, function(stream)
    respond(stream, id)
  end, { reuse_port = true, backlog = 1024 }))
  local out = corio.stdout()
  out:write("ready\n")  -- to the parent
  out:drain()
  -- stop on the first of: SIGINT, SIGTERM, end of stdin
  local stop = corio.event()
  local receivers = { corio.signal("SIGINT"), corio.signal("SIGTERM") }
  local watchers = {}
  for i, r in ipairs(receivers) do
    watchers[i] = corio.spawn(function() if r:wait() then stop:set() end end)
  end
  watchers[#watchers + 1] = corio.spawn(function()
    corio.stdin():read_all()
    stop:set()
  end)
  stop:wait()
  server:close({ cancel = true })
  server:wait_closed()
  for _, r in ipairs(receivers) do r:close() end
  for _, t in ipairs(watchers) do t:cancel() end
end

-- ---- the parent: start, watch and restart the workers ------------------------

local function cores()
  local ok, code, out = pcall(corio.run_process, { "nproc" })
  local n = ok and code == 0 and math.tointeger(tonumber(out))
  return n and n > 0 and n or 1
end

local function parent(port, nworkers)
  local command, script = self_command()
  -- Hold the port (and learn it, for port 0) with a listener of our own
  -- while the workers start; nobody knows the port yet, so it takes nothing.
  local probe = assert(corio.serve(HOST, port, function() end, { reuse_port = true }))
  local _, bound = probe:address()
  local started, ready = 0, corio.event()

  -- one slot: run worker `slot`, and again whenever it dies
  local function supervise(slot)
    while true do
      local p = assert(corio.exec({ command, script, "--worker", tostring(bound), tostring(slot) },
                                  { stdin = "pipe", stdout = "pipe" }))
      say("worker %d started (pid %d)", slot, p.pid)
      local up = p.stdout:read_line() == "ready"
      if up then
        started = started + 1
        if started == nworkers then ready:set() end
      end
      local code, sig = p:wait()  -- cancelled: the worker is terminated and reaped
      p:close()
      say("worker %d (pid %d) exited: %s; restarting", slot, p.pid, sig or ("code " .. code))
      -- a pause: a worker that dies while starting must not make us spin, and
      -- a Ctrl-C reaches the workers and us together (we stop meanwhile)
      corio.sleep(up and 0.1 or 1)
    end
  end

  local slots = {}
  for slot = 1, nworkers do slots[slot] = corio.spawn(supervise, slot) end
  ready:wait()
  probe:close()
  say("listening on %s %d", HOST, bound)

  local stop = corio.event()
  local stopsig
  local receivers = { corio.signal("SIGINT"), corio.signal("SIGTERM") }
  for _, r in ipairs(receivers) do
    corio.spawn(function()
      local sig = r:wait()
      if sig and not stopsig then stopsig = sig; stop:set() end
    end)
  end
  stop:wait()
  say("%s: stopping %d workers", stopsig, nworkers)
  for _, t in ipairs(slots) do t:cancel() end
  for _, t in ipairs(slots) do pcall(t.await, t) end
  for _, r in ipairs(receivers) do r:close() end
  say("stopped")
end

if arg[1] == "--worker" then
  worker(math.tointeger(tonumber(arg[2])), arg[3])
else
  parent(math.tointeger(tonumber(arg[1])) or 8080, math.tointeger(tonumber(arg[2])) or cores())
end
