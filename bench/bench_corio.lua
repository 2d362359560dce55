-- corio side of the benchmark workloads (DESIGN.md section 5), same output as the peers
-- in ../shared/bench-peers: one line "RESULT workload=.. n=.. secs=.. [rate=..]".
--
-- usage: lua5.4 bench/bench_corio.lua WORKLOAD [N]     (bench/run.sh sets LUA_PATH/LUA_CPATH)
--   empty  run one trivial main task, exit (RSS baseline)
--   w1     spawn N (1,000,000) tasks returning their index, corio.gather(list), check sum
--   w2     spawn N (1,000,000) tasks each corio.sleep(1.0), gather, check count
--   w3     1000 tasks x N/1000 corio.sleep(0); rate = switches/s
--   w4     producer -> corio.queue(100) -> consumer, N items; check sum and count; rate = items/s
-- "secs" runs from just before the first spawn to just after the gather returns,
-- as in the peers (interpreter start-up and teardown excluded).
local corio = require "corio"
local spawn, gather, sleep = corio.spawn, corio.gather, corio.sleep

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

local function empty()
  corio.run(triv, 0)
  result { "workload", "n", "secs", workload = "empty", n = 0, secs = 0 }
end

local workloads = { w1 = w1, w2 = w2, w3 = w3, w4 = w4 }
local wl, n = arg[1], math.tointeger(tonumber(arg[2]) or 1000000)
if wl == "empty" then
  empty()
elseif workloads[wl] then
  corio.run(workloads[wl], n)
else
  error("usage: lua5.4 bench/bench_corio.lua empty|w1|w2|w3|w4 [N]")
end
