-- corio side of the benchmark workloads (DESIGN.md section 5), same output as the peers
-- in ../shared/bench-peers: one line "RESULT workload=.. n=.. secs=.. [rate=..]".
--
-- usage: lua5.4 bench/bench_corio.lua WORKLOAD [N]     (bench/run.sh sets LUA_PATH/LUA_CPATH)
--   empty  run one trivial main task, exit (RSS baseline)
--   w1     spawn N (1,000,000) tasks returning their index, corio.gather(list), check sum
--   w2     spawn N (1,000,000) tasks each corio.sleep(1.0), gather, check count
--   w3     1000 tasks x N/1000 corio.sleep(0); rate = switches/s
--   w4     producer -> corio.queue(100) -> consumer, N items; check sum and count; rate = items/s
--   w5     Redis inline PING server, plain sequential code: read_line, one write per reply
--   w5buf  the same server buffer-based: read() a chunk, answer all its lines in one write
--   w6     minimal HTTP/1.1 keep-alive server: read_line for the request line and headers
--   w6until the same with read_until("\r\n\r\n") for the whole header block
-- The servers take --port P (default 6400), listen on 127.0.0.1, print "READY P" and
-- run until killed; bench/run.sh loads them as the peers' run.sh does. With
-- --workers K, K worker processes serve the port (reuse_port) and this one waits;
-- SIGTERM stops them all.
-- "secs" runs from just before the first spawn to just after the gather returns,
-- as in the peers (interpreter start-up and teardown excluded).
local corio = require "corio"
local spawn, gather, sleep = corio.spawn, corio.gather, corio.sleep

-- CORIO_BENCH_GC: corio.run's collector setting for every run here, written as the
-- corio command's --gc: generational, incremental, keep or incremental,pause=N,stepmul=M
-- (unset: corio.run's default)
local run_options = {}
do
  local s = os.getenv("CORIO_BENCH_GC")
  if s and s ~= "" then
    if s:find("=") then
      local t = {}
      for k, v in s:gsub("^incremental,", ""):gmatch("([^,=]+)=([^,]*)") do t[k] = math.tointeger(tonumber(v)) or v end
      run_options.gc = t
    else
      run_options.gc = s
    end
  end
end
local function run(...) return corio.run(run_options, ...) end

-- corio.now() reads the clock afresh. One thread's CPU time cannot exceed
-- wall time, so a clock that says otherwise is stale: say so loudly.
local now = corio.now
local function start() return now(), os.clock() end
local function stop(t0, c0)
  local secs, cpu = now() - t0, os.clock() - c0
  if secs < 0.9 * cpu then
    io.stderr:write(("bench_corio: clock looks stale: %.3f s wall < %.3f s CPU\n"):format(secs, cpu))
  end
  return secs
end

local function result(t)
  local parts = {}
  for _, k in ipairs(t) do parts[#parts + 1] = k .. "=" .. tostring(t[k]) end
  io.write("RESULT ", table.concat(parts, " "), "\n")
  io.flush()
end

local function triv(i) return i end

local function w1(n)
  local t0, c0 = start()
  local tasks = {}
  for i = 1, n do tasks[i] = spawn(triv, i) end
  local res = gather(tasks)
  local secs = stop(t0, c0)
  local s = 0
  for i = 1, n do s = s + res[i] end
  assert(s == n * (n + 1) // 2, "bad sum")
  result { "workload", "n", "secs", "rate", workload = "w1", n = n,
           secs = string.format("%.4f", secs), rate = string.format("%.0f", n / secs) }
end

local function sleeper() sleep(1.0); return 1 end

local function w2(n)
  local t0, c0 = start()
  local tasks = {}
  for i = 1, n do tasks[i] = spawn(sleeper) end
  local res = gather(tasks)
  local secs = stop(t0, c0)
  local s = 0
  for i = 1, n do s = s + res[i] end
  assert(s == n, "not every sleeper finished")
  result { "workload", "n", "secs", workload = "w2", n = n, secs = string.format("%.4f", secs) }
end

local function yielder(k)
  for _ = 1, k do sleep(0) end
  return k
end

local function w3(n)
  local ntasks = 1000
  local k = n // ntasks
  local t0, c0 = start()
  local tasks = {}
  for i = 1, ntasks do tasks[i] = spawn(yielder, k) end
  local res = gather(tasks)
  local secs = stop(t0, c0)
  local total = 0
  for i = 1, ntasks do total = total + res[i] end
  assert(total == ntasks * k, "bad switch count")
  result { "workload", "n", "secs", "rate", workload = "w3", n = total,
           secs = string.format("%.4f", secs), rate = string.format("%.0f", total / secs) }
end

local function producer(q, n)
  for i = 1, n do q:put(i) end
  q:put(false)
end

local function consumer(q)
  local s, cnt = 0, 0
  while true do
    local x = q:get()
    if not x then break end
    s = s + x
    cnt = cnt + 1
  end
  return s, cnt
end

local function w4(n)
  local t0, c0 = start()
  local q = corio.queue(100)
  local prod = spawn(producer, q, n)
  local cons = spawn(consumer, q)
  prod:await()
  local s, cnt = cons:await()
  local secs = stop(t0, c0)
  assert(cnt == n and s == n * (n + 1) // 2, "bad queue result")
  result { "workload", "n", "secs", "rate", workload = "w4", n = n,
           secs = string.format("%.4f", secs), rate = string.format("%.0f", n / secs) }
end

-- ---- network servers (W5, W6): code as a user would write it

local PONG, ERR = "+PONG\r\n", "-ERR unknown command\r\n"

local function w5_conn(stream)
  while true do
    local line = stream:read_line()
    if line == nil then return end
    if line == "PING" or line:upper() == "PING" then
      stream:write(PONG)
    elseif line ~= "" then
      stream:write(ERR)
    end
  end
end

local find, sub, upper = string.find, string.sub, string.upper

local function w5buf_conn(stream)
  local rest = ""
  while true do
    local data = stream:read()
    if data == nil then return end
    if rest ~= "" then data = rest .. data end
    local replies, n, pos = {}, 0, 1
    while true do
      local nl = find(data, "\n", pos, true)
      if nl == nil then break end
      local e = nl - 1
      if e >= pos and sub(data, e, e) == "\r" then e = e - 1 end
      if e >= pos then
        local line = sub(data, pos, e)
        n = n + 1
        replies[n] = (line == "PING" or upper(line) == "PING") and PONG or ERR
      end
      pos = nl + 1
    end
    rest = sub(data, pos)
    if n == 1 then stream:write(replies[1])
    elseif n > 1 then stream:write(table.concat(replies)) end
  end
end

local HTTP_OK = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world"
local HTTP_405 = "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"

local function w6_conn(stream)
  while true do
    local request = stream:read_line()
    if request == nil then return end
    repeat
      local header = stream:read_line()
      if header == nil then return end
    until header == ""
    if sub(request, 1, 4) ~= "GET " then
      stream:write(HTTP_405)
      return
    end
    stream:write(HTTP_OK)
  end
end

local function w6until_conn(stream)
  while true do
    local head = stream:read_until("\r\n\r\n")
    if head == nil then return end
    if sub(head, 1, 4) ~= "GET " then
      stream:write(HTTP_405)
      return
    end
    stream:write(HTTP_OK)
  end
end

local servers = { w5 = w5_conn, w5buf = w5buf_conn, w6 = w6_conn, w6until = w6until_conn }

-- workers: 1 serves here; K > 1 starts K worker processes (this script again, with
-- --worker), all accepting on the port with reuse_port, and waits. A worker ends
-- when its stdin (a pipe from here) does, so none outlives this process.
local function serve(handler, port, workers, worker)
  local server = assert(corio.serve("127.0.0.1", port, handler,
                                    { backlog = 1024, reuse_port = workers > 1 or worker }))
  if worker then
    local out = corio.stdout()
    out:write("READY ", port, "\n")
    out:drain()
    corio.stdin():read_all()
    server:close({ cancel = true })
    return
  end
  if workers > 1 then
    local interp, i = arg[-1], -1
    while arg[i - 1] do i = i - 1; interp = arg[i] end
    local procs = {}
    for k = 1, workers do
      local argv = { interp }
      for j = i + 1, #arg do argv[#argv + 1] = arg[j] end
      argv[#argv + 1] = "--worker"
      procs[k] = assert(corio.exec(argv, { stdin = "pipe", stdout = "pipe" }))
      assert(procs[k].stdout:read_line():match("^READY"), "a worker did not start")
    end
    server:close()  -- it held the port while the workers started
    local term = corio.signal("SIGTERM")
    io.write("READY ", port, "\n")
    io.flush()
    term:wait()
    for _, p in ipairs(procs) do p.stdin:close() end
    for _, p in ipairs(procs) do p:wait(); p:close() end
    term:close()
    return
  end
  io.write("READY ", port, "\n")
  io.flush()
  server:wait_closed()
end

local function empty()
  run(triv, 0)
  result { "workload", "n", "secs", workload = "empty", n = 0, secs = 0 }
end

local workloads = { w1 = w1, w2 = w2, w3 = w3, w4 = w4 }
local args, port, workers, worker = {}, 6400, 1, false
do
  local i = 1
  while arg[i] do
    if arg[i] == "--port" then
      port = math.tointeger(tonumber(arg[i + 1]))
      i = i + 1
    elseif arg[i] == "--workers" then
      workers = math.tointeger(tonumber(arg[i + 1])) or 1
      i = i + 1
    elseif arg[i] == "--worker" then
      worker = true
    else
      args[#args + 1] = arg[i]
    end
    i = i + 1
  end
end
local wl, n = args[1], math.tointeger(tonumber(args[2]) or 1000000)
if wl == "empty" then
  empty()
elseif workloads[wl] then
  run(workloads[wl], n)
elseif servers[wl] and port then
  run(serve, servers[wl], port, workers, worker)
else
  error("usage: lua5.4 bench/bench_corio.lua empty|w1|w2|w3|w4 [N] | w5|w5buf|w6|w6until [--port P] [--workers K]")
end
