-- Producers and consumers connected by a queue.
--
-- Two producers each make some numbers, one at a time, after random delays
-- (as if reading them off a network). Consumers take them from the queue and
-- spend a while on each one (as if storing them somewhere slow). With one
-- consumer the processing is the bottleneck; with three, their waits overlap
-- and the same work finishes much sooner.
--
--   corio examples/producer_consumer.lua        -- real timings
--   corio examples/producer_consumer.lua 0.2    -- every delay scaled by 0.2

local corio = require "corio"

local scale = tonumber(arg[1]) or 1
local ITEMS_PER_PRODUCER = 8

-- What each producer will make: a delay and a value per item, drawn once so
-- that both runs below handle exactly the same data.
math.randomseed(7)
local plan = {}
for id = 1, 2 do
  plan[id] = {}
  for i = 1, ITEMS_PER_PRODUCER do
    plan[id][i] = { delay = math.random() * 0.1 * scale, value = math.random(1, 100) }
  end
end

local function producer(id, queue, t0)
  for _, step in ipairs(plan[id]) do
    corio.sleep(step.delay)  -- waiting for data to arrive
    local item = { from = id, value = step.value }
    queue:put(item)  -- suspends while the queue is full: built-in backpressure
    print(("  [%5.2f] producer %d made %3d  (queue holds %d)"):format(
      corio.now() - t0, id, item.value, queue:qsize()))
  end
end

local function consumer(id, queue, t0, stats)
  while true do
    local item = queue:get()  -- suspends while the queue is empty
    corio.sleep(0.15 * scale)  -- processing takes a while
    stats.count = stats.count + 1
    stats.sum = stats.sum + item.value
    print(("  [%5.2f] consumer %d used %3d from producer %d"):format(
      corio.now() - t0, id, item.value, item.from))
    queue:task_done()  -- tell the queue this item is fully handled
  end
end

local function run(consumers)
  local producers = #plan
  print(("%d producers, %d consumer(s):"):format(producers, consumers))
  local t0 = corio.now()
  local queue = corio.queue(4)   -- at most 4 items waiting at a time
  local stats = { count = 0, sum = 0 }

  -- Consumers loop forever, so they run as plain tasks that we cancel later.
  local workers = {}
  for id = 1, consumers do
    workers[id] = corio.spawn(consumer, id, queue, t0, stats)
  end

  -- Run every producer to the end...
  local jobs = {}
  for id = 1, producers do
    jobs[id] = function() return producer(id, queue, t0) end
  end
  corio.gather(jobs)

  -- ...then wait until every item put in the queue has been task_done()'d.
  queue:join()

  -- The consumers are now idle, waiting in get(): cancel them and wait for
  -- them to stop. Awaiting a cancelled task raises its cancellation, which
  -- pcall catches here.
  for _, w in ipairs(workers) do w:cancel() end
  for _, w in ipairs(workers) do pcall(w.await, w) end

  local took = corio.now() - t0
  print(("%d producers, %d consumer(s): %d items (sum %d) in %.2f s"):format(
    producers, consumers, stats.count, stats.sum, took))
  print()
  return took
end

local one = run(1)
local three = run(3)
print(("three consumers were %.1fx faster than one"):format(one / three))
