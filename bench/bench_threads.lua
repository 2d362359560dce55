-- corio side of W7 (worker threads, DESIGN.md section 5), same output as the peers in
-- ../shared/bench-peers: one line "RESULT workload=.. n=.. secs=.. ...".
--
-- usage: lua5.4 bench/bench_threads.lua WORKLOAD [N]    (bench/run.sh sets LUA_PATH/LUA_CPATH)
--   w7cpu  primes below N (4,000,000) by trial division in 8 ranges: one after the other in
--          the loop's thread, then as 8 corio.to_thread jobs on a pool of 2, awaited together;
--          secs = the pool's wall time, seq_secs, speedup = seq_secs / secs, primes
--   w7rtt  N (100,000) jobs x -> x + 1 on a pool of 2, 64 tasks each with one job in flight;
--          rate = jobs/s
-- Both size the pool to 2 and give each worker one trivial job before the clock starts,
-- as the peers do; each checks its result and fails (non-zero exit) if it is wrong.
local corio = require "corio"

local function result(t)
  local parts = {}
  for _, k in ipairs(t) do parts[#parts + 1] = k .. "=" .. tostring(t[k]) end
  io.write("RESULT ", table.concat(parts, " "), "\n")
  io.flush()
end

-- primes in [lo, hi) by trial division with odd divisors (the peers' loop)
local function count_primes(lo, hi)
  local count = (lo <= 2 and 2 < hi) and 1 or 0
  for n = math.max(lo, 3) | 1, hi - 1, 2 do
    local r, d = math.floor(math.sqrt(n)), 3
    while d <= r and n % d ~= 0 do d = d + 2 end
    if d > r then count = count + 1 end
  end
  return count
end
local PRIMES_BELOW = { [4000000] = 283146 }

local function inc(x) return x + 1 end

local function warm_up()  -- start both threads (and their Lua states)
  corio.gather { function() return corio.to_thread(inc, 0) end,
                 function() return corio.to_thread(inc, 0) end }
end

local function w7cpu(n)
  warm_up()
  local t0 = corio.now()
  local seq = 0
  for k = 0, 7 do seq = seq + count_primes(n * k // 8, n * (k + 1) // 8) end
  local t1 = corio.now()
  local jobs = {}
  for k = 0, 7 do
    jobs[k + 1] = corio.spawn(corio.to_thread, count_primes, n * k // 8, n * (k + 1) // 8)
  end
  local total = 0
  for k = 1, 8 do total = total + jobs[k]:await() end
  local t2 = corio.now()
  assert(total == seq and seq == (PRIMES_BELOW[n] or seq), "bad count")
  result { "workload", "n", "secs", "seq_secs", "speedup", "primes", workload = "w7cpu", n = n,
           secs = string.format("%.4f", t2 - t1), seq_secs = string.format("%.4f", t1 - t0),
           speedup = string.format("%.2f", (t1 - t0) / (t2 - t1)), primes = seq }
end

local function w7rtt(n)
  warm_up()
  local nextx, total = 0, 0
  local function lane()
    while nextx < n do
      local x = nextx
      nextx = x + 1
      local y = corio.to_thread(inc, x)
      total = total + y
    end
  end
  local t0 = corio.now()
  local lanes = {}
  for i = 1, 64 do lanes[i] = corio.spawn(lane) end
  for i = 1, 64 do lanes[i]:await() end
  local t1 = corio.now()
  assert(total == n * (n + 1) // 2, "bad total")
  result { "workload", "n", "secs", "rate", workload = "w7rtt", n = n,
           secs = string.format("%.4f", t1 - t0), rate = string.format("%.0f", n / (t1 - t0)) }
end

local workloads = { w7cpu = { w7cpu, 4000000 }, w7rtt = { w7rtt, 100000 } }
local wl = workloads[arg[1]]
if not wl then error("usage: lua5.4 bench/bench_threads.lua w7cpu|w7rtt [N]") end
corio.workers(2)
corio.run(wl[1], math.tointeger(tonumber(arg[2])) or wl[2])
