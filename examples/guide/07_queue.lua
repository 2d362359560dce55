-- examples/guide/07_queue.lua: producers and consumers joined by a queue
local corio = require "corio"

local q = corio.queue(4)              -- at most 4 items waiting: backpressure
local total = 0

local function producer(first)
  for n = first, first + 4 do
    corio.sleep(0.005)                -- the work that makes an item
    q:put(n)                          -- waits while the queue is full
  end
end

local function consumer()
  while true do
    local n = q:get()
    corio.sleep(0.01)                 -- the work that uses it
    total = total + n
    q:task_done()
  end
end

local tg <close> = corio.task_group()
local consumers = {}
for i = 1, 3 do consumers[i] = tg:spawn(consumer) end
corio.gather(tg:spawn(producer, 1), tg:spawn(producer, 101))
q:join()                              -- every item put has been handled
for _, c in ipairs(consumers) do c:cancel() end
print("total:", total)
-- expect: total:	530
