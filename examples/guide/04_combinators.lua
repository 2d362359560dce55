-- examples/guide/04_combinators.lua: gather, settle, as_completed, race
local corio = require "corio"

local function job(name, delay, fail)
  corio.sleep(delay)
  if fail then error(name .. " failed", 0) end
  return name
end

-- gather: results in the order given, whatever order they finish in
print(corio.gather(corio.spawn(job, "a", 0.03), corio.spawn(job, "b", 0.01)))

-- settle: errors come back as values (asyncio's return_exceptions=True)
local results = corio.settle({ corio.spawn(job, "c", 0.01),
                               corio.spawn(job, "d", 0.02, true) })
for i, r in ipairs(results) do print(i, r.ok, r.ok and r[1] or r.error) end

-- as_completed: each task as it finishes, first finished first
local tasks = { corio.spawn(job, "slow", 0.06), corio.spawn(job, "fast", 0.02) }
for t in corio.as_completed(tasks) do print("finished:", t:await()) end

-- race: the first to finish wins; the others are cancelled
print("winner:", corio.race(corio.spawn(job, "tortoise", 1),
                            corio.spawn(job, "hare", 0.01)))
-- expect: a	b
-- expect: 2	false	d failed
-- expect: finished:	fast
-- expect: winner:	hare
