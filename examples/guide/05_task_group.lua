-- examples/guide/05_task_group.lua: nothing outlives its block
local corio = require "corio"

local function worker(name, delay, fail)
  corio.sleep(delay)
  if fail then error(name .. ": disk full", 0) end
  print(name, "done")
end

do
  local tg <close> = corio.task_group()
  tg:spawn(worker, "one", 0.02)
  tg:spawn(worker, "two", 0.01)
end                                   -- waits here for both children
print("both finished before the block ended")

-- The first failure cancels the siblings; the group raises an ErrorGroup.
local ok, eg = pcall(corio.task_group, function(tg)
  tg:spawn(worker, "three", 10)       -- cancelled, never prints
  tg:spawn(worker, "four", 0.01, true)
end)
print(ok, corio.ErrorGroup.is(eg), #eg.errors, eg.errors[1])
-- expect: both finished before the block ended
-- expect: false	true	1	four: disk full
