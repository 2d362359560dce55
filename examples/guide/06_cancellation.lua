-- examples/guide/06_cancellation.lua: timeouts, and the level-triggered rule
local corio = require "corio"

-- A timeout scope cancels what runs inside it and raises TimeoutError.
local ok, err = pcall(function()
  local _ <close> = corio.timeout(0.05)
  corio.sleep(10)
end)
print("timed out:", not ok and corio.TimeoutError.is(err))

-- move_on_after gives up quietly instead.
print("finished in time:", corio.move_on_after(0.05, corio.sleep, 10))

-- Level-triggered: once cancelled, every checkpoint raises again, so
-- catching the cancellation once cannot keep a task alive by accident.
local t = corio.spawn(function()
  local caught = pcall(corio.sleep, 10)          -- cancelled here...
  print("caught the first cancellation:", not caught)
  local again = pcall(corio.sleep, 0)            -- ...and again here
  print("the next checkpoint raises too:", not again)
  corio.shield(function()                        -- cleanup that must wait
    corio.sleep(0.01)
    print("cleanup ran inside shield")
  end)
  corio.sleep(1)                                 -- raises: the task ends
  print("never printed")
end)
corio.sleep(0.01)
t:cancel("shutting down")
print("task cancelled:", pcall(t.await, t) == false and t:cancelled())
-- expect: timed out:	true
-- expect: finished in time:	false
-- expect: caught the first cancellation:	true
-- expect: the next checkpoint raises too:	true
-- expect: cleanup ran inside shield
-- expect: task cancelled:	true
