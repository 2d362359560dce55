-- Why concurrency helps I/O-bound work.
--
-- Each "request" below waits a random time, the way a real program waits on
-- the network or a disk. Done one after another, the waits add up; done
-- concurrently, the whole batch takes about as long as the slowest wait.
--
--   corio examples/io_latency.lua         -- delays of 0..1 s
--   corio examples/io_latency.lua 0.1     -- every delay scaled by 0.1

local corio = require "corio"

local scale = tonumber(arg[1]) or 1
math.randomseed(2024)  -- fixed seed: the same "random" delays on every run

-- One fake request: wait `delay` seconds (the sleep stands in for real I/O).
-- `t0` is when the batch began, so start and finish are shown relative to it.
-- `finished` collects the task numbers in the order they complete.
local function fake_io(n, delay, t0, finished, verbose)
  local start = corio.now()
  if verbose then print(("  task %3d starts  at %6.3f s"):format(n, start - t0)) end
  corio.sleep(delay)  -- suspends this task; the loop runs the others meanwhile
  local stop = corio.now()
  if verbose then
    print(("  task %3d finishes at %6.3f s, took %.3f s"):format(n, stop - t0, stop - start))
  end
  finished[#finished + 1] = n
end

-- One after another: each call runs to the end before the next one begins.
local function sequential(delays, verbose)
  local t0, finished = corio.now(), {}
  for n, delay in ipairs(delays) do
    fake_io(n, delay, t0, finished, verbose)
  end
  return corio.now() - t0, finished
end

-- Concurrently: spawn a task per request, then wait for all of them.
-- corio.spawn schedules a task and returns at once; the tasks start running
-- as soon as this one suspends (here, in its first await).
local function concurrent(delays, verbose)
  local t0, finished = corio.now(), {}
  local tasks = {}
  for n, delay in ipairs(delays) do
    tasks[n] = corio.spawn(fake_io, n, delay, t0, finished, verbose)
  end
  for _, task in ipairs(tasks) do
    task:await()
  end
  return corio.now() - t0, finished
end

-- Timers tick in milliseconds, so two delays closer than that may finish in
-- either order; the check allows for it.
local function follows_delays(delays, finished)
  for i = 2, #finished do
    if delays[finished[i]] < delays[finished[i - 1]] - 0.002 then return false end
  end
  return true
end

local function compare(count, max_delay, verbose)
  local delays = {}
  for n = 1, count do
    delays[n] = math.random() * max_delay * scale
  end
  local longest = math.max(table.unpack(delays))

  print(("%d tasks, each waiting 0..%g s"):format(count, max_delay * scale))
  if verbose then print(" sequential:") end
  local seq = sequential(delays, verbose)
  if verbose then print(" concurrent:") end
  local conc, finished = concurrent(delays, verbose)

  print(("  sequential total: %.3f s (the sum of the delays)"):format(seq))
  print(("  concurrent total: %.3f s (the longest delay is %.3f s)"):format(conc, longest))
  print(("  speedup: %.1fx"):format(seq / conc))
  print(("  completion order follows the delays: %s"):format(
    follows_delays(delays, finished) and "yes" or "no"))
  if verbose then print("  completion order: " .. table.concat(finished, " ")) end
  print()
end

compare(10, 1.0, true)     -- every start and finish shown
compare(100, 0.1, false)   -- a hundred tasks, a tenth of the delay: totals only
