-- A task can be awaited any number of times, by any number of tasks.
-- Its body runs exactly once; every await gets the same results.

local corio = require "corio"

local runs = 0

local function compute()
  runs = runs + 1
  print("  compute: working (run number " .. runs .. ")")
  corio.sleep(0.2)  -- pretend this is slow
  return 42, "the answer"
end

local task = corio.spawn(compute)

-- Two other tasks wait for the same task at the same time...
local function waiter(name)
  local number, text = task:await()
  print(("  %s got: %d, %s"):format(name, number, text))
  return number
end
local a = corio.spawn(waiter, "waiter A")
local b = corio.spawn(waiter, "waiter B")
a:await()
b:await()

-- ...and awaiting it again once it is done returns the stored results at
-- once, without running the body again.
print("  main, awaiting again:", task:await())
print("  main, result() (no wait, the task is done):", task:result())

print(("body ran %d time(s); task done: %s"):format(runs, tostring(task:done())))
