-- corio.as_completed hands tasks back one by one as each finishes, so you
-- can start working on the first result while the rest are still running.

local corio = require "corio"

local t0 = corio.now()

local function fetch(url, delay)
  corio.sleep(delay)
  return url, #url * 100  -- pretend: the URL and a page size
end

local requests = {
  { "https://example.org/slow",   0.30 },
  { "https://example.org/fast",   0.05 },
  { "https://example.org/medium", 0.15 },
}

local tasks = {}
for i, r in ipairs(requests) do
  tasks[i] = corio.spawn(fetch, r[1], r[2])
end

-- The loop body runs once per task, in the order the tasks finish (not the
-- order of the list). Each task handed over is done, so await returns at once.
local n = 0
for task in corio.as_completed(tasks) do
  n = n + 1
  local url, size = task:await()
  print(("%d. after %.2f s: %s (%d bytes)"):format(n, corio.now() - t0, url, size))
end
print(("all %d results handled after %.2f s"):format(n, corio.now() - t0))
