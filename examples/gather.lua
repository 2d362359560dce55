-- corio.gather runs several things concurrently and returns their results
-- in the order you gave them, however the work happens to finish.
-- corio.settle does the same but hands back errors as values.

local corio = require "corio"

local t0 = corio.now()
local finished = {}  -- the order in which fetches complete

-- A pretend network fetch: waits, then returns two values.
local function fetch(name, delay)
  corio.sleep(delay)
  finished[#finished + 1] = name
  return name:upper(), delay
end

local function failing_fetch(name, delay)
  corio.sleep(delay)
  -- level 0: the error message is just the text, without "file:line:"
  error("could not fetch " .. name, 0)
end

-- 1. Varargs form. Each argument is a function (run as a child task) or an
--    awaitable such as a task. One result per argument, in argument order;
--    gather keeps the first value each one returned.
local a, b, c = corio.gather(
  function() return fetch("a", 0.3) end,
  function() return fetch("b", 0.1) end,
  corio.spawn(fetch, "c", 0.2)           -- an already-spawned task works too
)
print(("varargs: %s %s %s  (finished in order: %s) after %.2f s"):format(
  a, b, c, table.concat(finished, " "), corio.now() - t0))

-- 2. List form: pass a list, get a list. Use this for many tasks.
finished = {}
local jobs = {}
for i = 1, 5 do
  local delay = (6 - i) * 0.03  -- later jobs are quicker
  jobs[i] = function() return fetch("job" .. i, delay) end
end
local results = corio.gather(jobs)
print(("list:    %s  (finished in order: %s)"):format(
  table.concat(results, " "), table.concat(finished, " ")))

-- 3. The first error: gather cancels whatever is still running, waits for
--    it to stop, and raises that error.
local slow_cancelled = false
local ok, err = pcall(corio.gather,
  function() return fetch("fine", 0.05) end,
  function() return failing_fetch("broken", 0.1) end,
  function()
    local ok_, e = pcall(corio.sleep, 5)
    if not ok_ then slow_cancelled = corio.is_cancelled(e); error(e) end
  end
)
print("gather raised:", ok, err, "| slow one cancelled:", slow_cancelled)

-- 4. settle never raises for a child: each entry says how that child ended.
local outcomes = corio.settle({
  function() return fetch("x", 0.05) end,
  function() return failing_fetch("y", 0.02) end,
  function() return fetch("z", 0.01) end,
})
for i, r in ipairs(outcomes) do
  if r.ok then
    print(("settle %d: ok    %s"):format(i, tostring(r[1])))
  else
    print(("settle %d: error %s"):format(i, tostring(r.error)))
  end
end
