-- wait, as_completed and race: built on done callbacks and a future, so
-- each finished input costs one callback, not a scan of the list.
local core = require "corio.core"

local M = {}

local function check_list(fname, list)
  if type(list) ~= "table" then
    error(fname .. ": expected a list of tasks or futures, got " .. type(list), 3)
  end
  local me = core.current_task()
  for i, x in ipairs(list) do
    local mt = getmetatable(x)
    if mt ~= core.Task and mt ~= core.Future then
      error(("%s: item %d is a %s, not a task or future"):format(fname, i, type(x)), 3)
    end
    if x == me then
      error(("%s: a task cannot await itself (item %d is the current task)"):format(fname, i), 3)
    end
  end
end

local function check_opts(fname, opts)
  if opts ~= nil and type(opts) ~= "table" then
    error(("bad argument #2 to '%s' (options table expected, got %s)"):format(fname, type(opts)), 3)
  end
  local t = opts and opts.timeout
  if t ~= nil and (type(t) ~= "number" or t ~= t) then
    error(("bad argument #2 to '%s' (timeout must be a number, got %s)")
      :format(fname, t ~= t and "NaN" or type(t)), 3)
  end
end

-- A notifier: objects are pushed as they finish; take() waits for one.
local function notifier(list)
  local done, head, waiting = {}, 1, nil
  local function on_done(x)
    done[#done + 1] = x
    if waiting and not waiting:done() then waiting:set_result() end
  end
  for _, x in ipairs(list) do x:add_done_callback(on_done) end
  local n = {}
  -- take(deadline): the next finished object, or nil at the deadline
  function n.take(deadline)
    while head > #done do
      waiting = core.future()
      if deadline then
        local s <close> = core.scope(deadline)
        local ok, err = pcall(waiting.await, waiting)
        if not ok then
          if core.is_cancelled(err) and s:expired() then
            waiting = nil
            return nil
          end
          error(err, 0)
        end
      else
        waiting:await()
      end
      waiting = nil
    end
    local x = done[head]
    head = head + 1
    return x
  end
  return n
end

local function deadline_of(opts)
  if opts and opts.timeout then return core.now() + opts.timeout end
end

-- true if x finished with an error or a cancellation (without marking a
-- task's error as retrieved: wait only looks)
local function failed(x)
  if getmetatable(x) == core.Task then
    local _, state = core.task_info(x)
    return state == "failed" or state == "cancelled"
  end
  return x:cancelled() or x:error() ~= nil
end

-- corio.wait(list, {timeout=, return_when=}) (suspends) -> done, pending
function M.wait(list, opts)
  check_list("corio.wait", list)
  check_opts("corio.wait", opts)
  local when = opts and opts.return_when or "all_completed"
  if when ~= "all_completed" and when ~= "first_completed" and when ~= "first_error" then
    error("corio.wait: return_when must be all_completed, first_completed or first_error", 2)
  end
  local deadline = deadline_of(opts)
  local n = notifier(list)      -- hands each input over once, as it finishes
  for _ = 1, #list do
    local x = n.take(deadline)
    if x == nil or when == "first_completed" or (when == "first_error" and failed(x)) then
      break
    end
  end
  local done, pending = {}, {}
  for _, x in ipairs(list) do
    if x:done() then done[#done + 1] = x else pending[#pending + 1] = x end
  end
  return done, pending
end

-- for x in corio.as_completed(list [, {timeout=}]) do ... end
function M.as_completed(list, opts)
  check_list("corio.as_completed", list)
  check_opts("corio.as_completed", opts)
  local deadline = deadline_of(opts)
  local n = notifier(list)
  local left = #list
  return function()
    if left == 0 then return nil end
    local x = n.take(deadline)
    if x == nil then
      error(require("corio.errors").timeout_error("as_completed: deadline exceeded"), 2)
    end
    left = left - 1
    return x
  end
end

-- corio.race(a, b, ...) (suspends): the first to finish wins; the rest are
-- cancelled and awaited; returns the winner's results or raises its error.
function M.race(...)
  local list = table.pack(...)
  local tasks = {}
  local plain = {}
  for i = 1, list.n do
    if type(list[i]) ~= "function" then plain[#plain + 1] = list[i] end
  end
  check_list("corio.race", plain)   -- before anything is spawned
  for i = 1, list.n do
    local x = list[i]
    if type(x) == "function" then x = core.spawn(x) end
    tasks[i] = x
  end
  local n = notifier(tasks)
  local ok, winner = pcall(n.take)
  for _, x in ipairs(tasks) do
    if x ~= winner and not x:done() then x:cancel() end
  end
  for _, x in ipairs(tasks) do   -- wait for the losers, shielded from a cancel
    if not x:done() then
      local _s <close> = core.scope(nil, true)
      pcall(x.await, x)
    end
    if x ~= winner and x:done() then pcall(x.error, x) end
  end
  if not ok then error(winner, 0) end
  return winner:await()
end

return M
