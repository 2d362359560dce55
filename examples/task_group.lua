-- Task groups: structured concurrency. Every task spawned in a group is
-- finished by the time the group's block ends, so no task is left running
-- behind your back. If a child fails, the group cancels the other children
-- and raises every error together as one corio.ErrorGroup.

local corio = require "corio"

local t0 = corio.now()
local function log(fmt, ...)
  print(("[%4.2f s] " .. fmt):format(corio.now() - t0, ...))
end

local function worker(name, delay)
  corio.sleep(delay)
  log("%s done", name)
  return name
end

-- 1. As a to-be-closed variable: the group waits for its children when the
--    variable goes out of scope, at the `end` of the block.
do
  local tg <close> = corio.task_group()
  tg:spawn(worker, "one", 0.2)
  tg:spawn(worker, "two", 0.1)
  log("both spawned; the block now waits at its end")
end
log("block 1 left: every child has finished")

-- 2. The function form: the group lives as long as the function call.
corio.task_group(function(tg)
  for i = 1, 3 do
    tg:spawn(worker, "child " .. i, 0.05 * i)
  end
end)
log("block 2 left")

-- 3. A failing child. Its error cancels the siblings (they can clean up:
--    cancellation arrives as an error at the point where they wait), and the
--    group raises an ErrorGroup holding every child error, here two: the
--    parser's, and one from a sibling whose clean-up failed too.
local function download(name)
  local ok, err = pcall(corio.sleep, 10)
  if not ok then
    log("%s: stopped early (%s), cleaning up", name, tostring(err))
    error(err)  -- always pass a cancellation on
  end
end

local function upload(name)
  local ok = pcall(corio.sleep, 10)
  if not ok then
    log("%s: stopped early, but its clean-up fails", name)
    error(name .. " could not remove its temporary file", 0)
  end
end

local function parse(name)
  corio.sleep(0.1)
  error(name .. " hit a bad record", 0)  -- level 0: just the message
end

local ok, eg = pcall(function()
  local tg <close> = corio.task_group()
  tg:spawn(download, "downloader")
  tg:spawn(upload, "uploader")
  tg:spawn(parse, "parser")
end)

log("the group raised: ok=%s, an ErrorGroup: %s, holding %d errors",
  tostring(ok), tostring(corio.ErrorGroup.is(eg)), #eg.errors)
for i, e in ipairs(eg.errors) do
  print(("  error %d: %s"):format(i, tostring(e)))
end
print("tostring of the group, with tracebacks:")
print(tostring(eg))
