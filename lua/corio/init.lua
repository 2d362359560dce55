-- corio: asyncio-style concurrency for Lua 5.4.
--
-- The C module corio.core does the work (loop, tasks, futures, scopes,
-- groups, gather); this file is the public face: it names things, adds
-- the parts that read better in Lua (task group closing, the timeout
-- family, wait/as_completed/race, dump, error classes), and installs
-- corio's coroutine.resume/wrap so awaits inside user coroutines work.
local core = require "corio.core"
local errors = require "corio.errors"
local combinators = require "corio.combinators"
local dump = require "corio.dump"
local sync = require "corio.sync"
local queue = require "corio.queue"

local corio = {
  _VERSION = "corio " .. core.version,
  version = core.version,
  core = core,
  -- loop and running
  run = core.run,
  now = core.now,
  -- tasks
  spawn = core.spawn,
  await = core.await,
  sleep = core.sleep,
  current_task = core.current_task,
  all_tasks = core.all_tasks,
  -- futures
  future = core.future,
  -- combinators
  gather = core.gather,
  settle = core.settle,
  wait = combinators.wait,
  as_completed = combinators.as_completed,
  race = combinators.race,
  -- synchronisation and queues
  lock = sync.lock,
  event = sync.event,
  condition = sync.condition,
  semaphore = sync.semaphore,
  bounded_semaphore = sync.bounded_semaphore,
  barrier = sync.barrier,
  queue = queue.queue,
  priority_queue = queue.priority_queue,
  lifo_queue = queue.lifo_queue,
  channel = queue.channel,
  -- errors
  is_cancelled = core.is_cancelled,
  Cancelled = errors.Cancelled,
  TimeoutError = errors.TimeoutError,
  ErrorGroup = errors.ErrorGroup,
  Deadlock = errors.Deadlock,
  -- introspection
  dump = dump,
  set_error_handler = core.set_error_handler,
}

local is_cancelled = core.is_cancelled

------------------------------------------------------------------ the loop
-- corio.loop(): the running loop. Callbacks run as hidden tasks, so they
-- keep the order of everything else that is ready.
local Handle = {}
Handle.__index = Handle
Handle.__name = "corio.Handle"
function Handle:cancel() self._cancelled = true; return self._task:cancel() end
function Handle:cancelled() return self._cancelled == true end
Handle.__tostring = function(h)
  return "handle (" .. (h._cancelled and "cancelled" or tostring(h._task)) .. ")"
end

local function handle(task) return setmetatable({ _task = task }, Handle) end

local Loop = {}
Loop.__index = Loop
Loop.__name = "corio.Loop"
Loop.__tostring = function() return "corio loop" end

function Loop.call_soon(_, fn, ...)
  return handle(core.spawn_hidden(fn, ...))
end

function Loop.call_at(_, when, fn, ...)
  if type(when) ~= "number" then error("loop:call_at: deadline must be a number", 2) end
  local args = table.pack(...)
  return handle(core.spawn_hidden(function()
    core.sleep_until(when)
    return fn(table.unpack(args, 1, args.n))
  end))
end

function Loop.call_later(self, secs, fn, ...)
  if type(secs) ~= "number" then error("loop:call_later: delay must be a number", 2) end
  return Loop.call_at(self, core.now() + secs, fn, ...)
end

function Loop.time() return core.now() end
function Loop.stop() core.cancel_main() end

local the_loop = setmetatable({}, Loop)

function corio.loop()
  if not core.running() then error("corio.loop: no running loop (start one with corio.run)", 2) end
  return the_loop
end

------------------------------------------------------------------ groups
-- The body's scope is left first, so the group's own cancellation does not
-- stop the wait for the children; a cancellation from outside does: then
-- the children are cancelled and awaited, shielded, and it is re-raised.
local function close_group(g, err)
  g:_leave()
  if err ~= nil then
    if not is_cancelled(err) then g:_add_error(err, debug.traceback("task group body failed", 2)) end
    g:cancel()
  end
  local outer
  while g:_pending() > 0 do
    local ok, e = pcall(g._wait, g, outer ~= nil)
    if not ok then
      if is_cancelled(e) then
        outer = e
        g:cancel()
      else
        g:_close()
        error(e, 0)
      end
    end
  end
  g:_close()
  local errs, tbs = g:_errors()
  if #errs > 0 then error(errors.error_group(errs, tbs), 0) end
  if outer then error(outer, 0) end
end
core.TaskGroup.__close = close_group
core.TaskGroup.__name = "corio.TaskGroup"

-- corio.task_group() -> TaskGroup for `local tg <close> = ...`, or
-- corio.task_group(fn) -> fn(tg)'s results once every child is done.
function corio.task_group(fn)
  local g = core.task_group()
  if fn == nil then return g end
  local res = table.pack(pcall(fn, g))
  if res[1] then
    close_group(g, nil)
    return table.unpack(res, 2, res.n)
  end
  local err = res[2]
  local own = is_cancelled(err) and not core.cancelled_now()
  close_group(g, err)
  if own then return end  -- the group cancelled its own body: not an error
  error(err, 0)
end

------------------------------------------------------------------ timeouts
local function check_secs(fname, secs)
  if type(secs) ~= "number" or secs ~= secs then
    error(("%s: seconds must be a number, got %s"):format(fname, type(secs)), 3)
  end
end

-- corio.timeout_at(when) -> scope; corio.timeout_at(when, fn, ...) -> fn's results
function corio.timeout_at(when, fn, ...)
  check_secs("corio.timeout_at", when)
  if fn == nil then return core.scope(when) end
  local _s <close> = core.scope(when)
  return fn(...)
end

-- a deadline already due is 0: the scope is cancelled at once
local function deadline_in(secs)
  if secs <= 0 then return 0 end
  return core.now() + secs
end

function corio.timeout(secs, fn, ...)
  check_secs("corio.timeout", secs)
  if fn == nil then return core.scope(deadline_in(secs)) end
  local _s <close> = core.scope(deadline_in(secs))
  return fn(...)
end

-- corio.move_on_after(secs, fn, ...) -> ok, ...: ok is false (and nothing
-- else is returned) when the deadline passed before fn finished
function corio.move_on_at(when, fn, ...)
  check_secs("corio.move_on_at", when)
  local s = core.scope(when)
  local res = table.pack(pcall(fn, ...))
  local expired = s:expired()
  getmetatable(s).__close(s)  -- leave the scope without converting
  if res[1] then return true, table.unpack(res, 2, res.n) end
  if is_cancelled(res[2]) and expired and not core.cancelled_now() then return false end
  error(res[2], 0)
end

function corio.move_on_after(secs, fn, ...)
  check_secs("corio.move_on_after", secs)
  return corio.move_on_at(deadline_in(secs), fn, ...)
end

-- corio.wait_for(awaitable, secs) (suspends): its results, or TimeoutError
-- after cancelling it (a task) when the deadline passes first
function corio.wait_for(x, secs)
  check_secs("corio.wait_for", secs)
  local ok, res = pcall(function()
    return table.pack(corio.timeout(secs, core.await, x))
  end)
  if ok then return table.unpack(res, 1, res.n) end
  if errors.TimeoutError.is(res) then
    if not x:done() then
      x:cancel()
      local _s <close> = core.scope(nil, true)
      pcall(core.await, x)
    end
  end
  error(res, 0)
end

-- corio.shield(fn, ...): fn runs with outside cancellation held off
function corio.shield(fn, ...)
  local _s <close> = core.scope(nil, true)
  return fn(...)
end

------------------------------------------------------------------ debugging
function corio.debug(on)
  return core.debug(on)
end

core.set_hook("deadlock", function() return errors.deadlock(dump()) end)
core.set_hook("timeout_error", function() return errors.timeout_error() end)
core.set_hook("slow", function(task, secs, tb)
  io.stderr:write(("corio: %s ran %.0f ms without a checkpoint\n%s\n")
    :format(tostring(task), secs * 1000, tb))
end)
if os.getenv("CORIO_DEBUG") == "1" then core.debug(true) end

------------------------------------------------------------------ coroutines
-- corio's resume and wrap forward awaits made inside user coroutines to
-- the scheduler; everything else behaves as the standard functions do.
local co = {}
for k, v in pairs(coroutine) do co[k] = v end
co.resume = core.coroutine_funcs.resume
co.wrap = core.coroutine_funcs.wrap
corio.coroutine = co
coroutine.resume = co.resume
coroutine.wrap = co.wrap

for k, v in pairs(require "corio.net") do corio[k] = v end

-- modules loaded on first use: corio.socket (LuaSocket's API, docs/socket.md)
local lazy = { socket = "corio.socket" }
setmetatable(corio, { __index = function(t, k)
  local name = lazy[k]
  if name == nil then return nil end
  local m = require(name)
  rawset(t, k, m)
  return m
end })

return corio
