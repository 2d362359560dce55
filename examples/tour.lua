-- A quick tour of corio: tasks, gather, task groups with a timeout, and
-- cancellation. Run it with `make run` or `corio examples/tour.lua`.

local corio = require "corio"

local t0 = corio.now()
local function say(fmt, ...)
  print(("[%4.2f s] " .. fmt):format(corio.now() - t0, ...))
end

-- Any function that calls a suspending function (corio.sleep here, network
-- reads later) can run as a task. No async/await keywords needed.
local function fetch(name, delay)
  corio.sleep(delay)      -- suspends this task only; others keep running
  return name .. " ok"
end

print("1. spawn and await")
local a = corio.spawn(fetch, "alpha", 0.3)   -- scheduled, starts soon
local b = corio.spawn(fetch, "beta", 0.2)
a:set_name("fetch alpha")
b:set_name("fetch beta")
say("spawned %s and %s", tostring(a), tostring(b))  -- not started yet
say("awaited: %s, %s", a:await(), b:await())  -- together: 0.3 s, not 0.5 s

print("2. gather: run many, get results in order")
local results = corio.gather({
  function() return fetch("one", 0.2) end,
  function() return fetch("two", 0.1) end,
  function() return fetch("three", 0.15) end,
})
say("gathered: %s", table.concat(results, ", "))

print("3. a task group under a timeout")
local _, err = pcall(function()
  local _deadline <close> = corio.timeout(0.5)  -- the whole block gets 0.5 s
  local tg <close> = corio.task_group()
  tg:spawn(function() say("quick child: %s", fetch("quick", 0.1)) end)
  tg:spawn(function() say("slow child: %s", fetch("slow", 5)) end)  -- too slow
end)  -- the group waits for its children here; the deadline cancels them
say("block raised a TimeoutError: %s (%s)", tostring(corio.TimeoutError.is(err)), tostring(err))

print("4. cancellation")
local worker = corio.spawn(function()
  local _, e = pcall(corio.sleep, 10)   -- cancellation arrives here, as an error
  say("worker: caught %q; it tries to carry on", tostring(e))
  -- The task is still cancelled, so its next checkpoint raises again: a pcall
  -- that swallows a cancellation cannot keep a task alive by accident.
  corio.sleep(1)
  say("worker: never printed")
end)
corio.sleep(0.1)
say("cancel requested: %s", tostring(worker:cancel("time to stop")))
local ok2, err2 = pcall(worker.await, worker)
say("worker cancelled: %s, await raised a cancellation: %s",
  tostring(worker:cancelled()), tostring(not ok2 and corio.is_cancelled(err2)))

say("tour done")
