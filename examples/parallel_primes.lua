-- Why worker threads help CPU-bound work.
--
-- Counting primes keeps a core busy: in the loop's own thread it would
-- stop every other task. corio.to_thread runs a function in a Lua state of
-- its own on corio's pool of worker threads, so several jobs run at the
-- same time, one per core, while the loop stays free.
--
--   corio examples/parallel_primes.lua             -- primes below 4,000,000
--   corio examples/parallel_primes.lua 200000      -- a smaller N
--   corio examples/parallel_primes.lua 200000 4    -- 4 worker threads

local corio = require "corio"

local N = math.tointeger(tonumber(arg[1])) or 4000000
local JOBS = 8
if arg[2] then corio.workers(math.tointeger(tonumber(arg[2]))) end

-- Primes in [lo, hi), by trial division with odd divisors. It travels to
-- the worker as its bytecode (string.dump), so it may use globals (math)
-- and its arguments, but no local variables from outside (upvalues).
local function count_primes(lo, hi)
  local count = (lo <= 2 and 2 < hi) and 1 or 0
  for n = math.max(lo, 3) | 1, hi - 1, 2 do
    local r, d = math.floor(math.sqrt(n)), 3
    while d <= r and n % d ~= 0 do d = d + 2 end
    if d > r then count = count + 1 end
  end
  return count
end

-- the JOBS ranges that cover [0, N)
local function ranges()
  local list = {}
  for k = 0, JOBS - 1 do list[#list + 1] = { N * k // JOBS, N * (k + 1) // JOBS } end
  return list
end

print(("counting the primes below %d in %d ranges, %d worker threads"):format(N, JOBS, corio.workers()))

-- 1. One range after the other, in this thread.
local t0 = corio.now()
local seq = 0
for _, r in ipairs(ranges()) do seq = seq + count_primes(r[1], r[2]) end
local seq_time = corio.now() - t0
print(("sequential:  %d primes in %.3f s"):format(seq, seq_time))

-- 2. Every range as a job on the pool, awaited together; the loop keeps
--    running meanwhile (a ticker task shows it).
local ticks = 0
local ticker = corio.spawn(function()
  while true do corio.sleep(0.01); ticks = ticks + 1 end
end)
t0 = corio.now()
local jobs = {}
for i, r in ipairs(ranges()) do
  jobs[i] = function() return corio.to_thread(count_primes, r[1], r[2]) end
end
local counts = corio.gather(jobs)
local par_time = corio.now() - t0
ticker:cancel()
local par = 0
for _, c in ipairs(counts) do par = par + c end
print(("on the pool: %d primes in %.3f s"):format(par, par_time))
print(("same count: %s"):format(par == seq and "yes" or "NO"))
print(("speedup: %.2fx"):format(seq_time / par_time))
print(("the loop stayed free: a 10 ms ticker ticked %d times meanwhile"):format(ticks))
