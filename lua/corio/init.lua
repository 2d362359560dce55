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
  -- worker threads
  to_thread = core.to_thread,
  workers = core.workers,
  -- errors
  is_cancelled = core.is_cancelled,
  Cancelled = errors.Cancelled,
  TimeoutError = errors.TimeoutError,
  ErrorGroup = errors.ErrorGroup,
  Deadlock = errors.Deadlock,
  ProcessError = errors.ProcessError,
  QueueShutDown = errors.QueueShutDown,
  QueueFull = errors.QueueFull,
  QueueEmpty = errors.QueueEmpty,
  BrokenBarrier = errors.BrokenBarrier,
  -- introspection
  dump = dump,
  set_error_handler = core.set_error_handler,
}

local is_cancelled = core.is_cancelled

------------------------------------------------------------------ the loop
-- corio.loop(): the running loop. Callbacks run as hidden tasks, so they
-- keep the order of everything else that is ready.
local check_self = errors.check_self
local Handle = {}
Handle.__index = Handle
Handle.__name = "corio.Handle"
function Handle:cancel()
  check_self(self, Handle, "handle:cancel", "Handle")
  self._cancelled = true
  return self._task:cancel("loop callback cancelled")
end
function Handle:cancelled()
  check_self(self, Handle, "handle:cancelled", "Handle")
  return self._cancelled == true
end
Handle.__tostring = function(h)
  return "handle (" .. (h._cancelled and "cancelled" or tostring(h._task)) .. ")"
end

local function handle(task) return setmetatable({ _task = task }, Handle) end

local Loop = {}
Loop.__index = Loop
Loop.__name = "corio.Loop"
Loop.__tostring = function() return "corio loop" end

local function check_callable(fname, n, fn)
  if type(fn) ~= "function" then
    local mt = getmetatable(fn)
    if not (type(mt) == "table" and mt.__call) then
      error(("bad argument #%d to '%s' (function expected, got %s)"):format(n, fname, type(fn)), 3)
    end
  end
end

-- a number that is not NaN (infinity: never); the error names the caller
-- of the function `level` levels up (default: check_time's caller's)
local function check_time(fname, n, x, what, level)
  level = level or 3
  if type(x) ~= "number" then
    error(("bad argument #%d to '%s' (%s must be a number, got %s)"):format(n, fname, what, type(x)), level)
  end
  if x ~= x then
    error(("bad argument #%d to '%s' (%s is not a number (NaN))"):format(n, fname, what), level)
  end
end

function Loop.call_soon(self, fn, ...)
  check_self(self, Loop, "loop:call_soon", "Loop")
  check_callable("loop:call_soon", 1, fn)
  return handle(core.spawn_hidden(fn, ...))
end

local function call_at(when, fn, ...)
  local args = table.pack(...)
  return handle(core.spawn_hidden(function()
    core.sleep_until(when)
    return fn(table.unpack(args, 1, args.n))
  end))
end

function Loop.call_at(self, when, fn, ...)
  check_self(self, Loop, "loop:call_at", "Loop")
  check_time("loop:call_at", 1, when, "deadline")
  check_callable("loop:call_at", 2, fn)
  return call_at(when, fn, ...)
end

function Loop.call_later(self, secs, fn, ...)
  check_self(self, Loop, "loop:call_later", "Loop")
  check_time("loop:call_later", 1, secs, "delay")
  check_callable("loop:call_later", 2, fn)
  return call_at(core.now() + secs, fn, ...)
end

function Loop.time(self)
  check_self(self, Loop, "loop:time", "Loop")
  return core.now()
end
function Loop.stop(self)
  check_self(self, Loop, "loop:stop", "Loop")
  core.cancel_main("loop stopped")
end

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
  check_self(g, core.TaskGroup, "tg:__close", "TaskGroup")
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
  if fn == nil then
    local g = core.task_group(2, 2)  -- made by our caller, who must close it
    return g
  end
  check_callable("corio.task_group", 1, fn)
  local g = core.task_group(2)
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
  check_time(fname, 1, secs, "seconds", 4)
end

-- how a scope is named in cancellation messages: "timeout(0.05)"
local function what(fname, x)
  return ("%s(%s)"):format(fname, tostring(x))
end

-- corio.timeout_at(when) -> scope; corio.timeout_at(when, fn, ...) -> fn's results
function corio.timeout_at(when, fn, ...)
  check_secs("corio.timeout_at", when)
  if fn == nil then
    local s = core.scope(when, false, what("timeout_at", when), 2, 2)
    return s
  end
  check_callable("corio.timeout_at", 2, fn)
  local _s <close> = core.scope(when, false, what("timeout_at", when), 2)
  return fn(...)
end

-- a deadline already due is 0: the scope is cancelled at once
local function deadline_in(secs)
  if secs <= 0 then return 0 end
  return core.now() + secs
end

function corio.timeout(secs, fn, ...)
  check_secs("corio.timeout", secs)
  if fn == nil then
    local s = core.scope(deadline_in(secs), false, what("timeout", secs), 2, 2)
    return s
  end
  check_callable("corio.timeout", 2, fn)
  local _s <close> = core.scope(deadline_in(secs), false, what("timeout", secs), 2)
  return fn(...)
end

-- corio.move_on_after(secs, fn, ...) -> ok, ...: ok is false (and nothing
-- else is returned) when the deadline passed before fn finished. It needs
-- fn: a <close> handler cannot stop the cancellation unwinding a block.
-- always tail-called by move_on_at/move_on_after: level 2 is their caller
local function move_on(fname, label, when, fn, ...)
  check_callable("corio." .. fname, 2, fn)
  local s = core.scope(when, false, what(fname, label), 2)
  local res = table.pack(pcall(fn, ...))
  local expired = s:expired()
  getmetatable(s).__close(s)  -- leave the scope without converting
  if res[1] then return true, table.unpack(res, 2, res.n) end
  if is_cancelled(res[2]) and expired and not core.cancelled_now() then return false end
  error(res[2], 0)
end

function corio.move_on_at(when, fn, ...)
  check_secs("corio.move_on_at", when)
  return move_on("move_on_at", when, when, fn, ...)
end

function corio.move_on_after(secs, fn, ...)
  check_secs("corio.move_on_after", secs)
  return move_on("move_on_after", secs, deadline_in(secs), fn, ...)
end

-- corio.wait_for(awaitable or function, secs) (suspends): its results, or
-- TimeoutError after cancelling it (a task) when the deadline passes first
function corio.wait_for(x, secs)
  if type(x) == "function" then
    x = core.spawn(x)
  else
    local mt = getmetatable(x)
    if mt ~= core.Task and mt ~= core.Future then
      error(("bad argument #1 to 'corio.wait_for' (task, future or function expected, got %s)")
        :format(type(x)), 2)
    end
  end
  check_time("corio.wait_for", 2, secs, "seconds")
  local ok, res = pcall(function()
    local _s <close> = core.scope(deadline_in(secs), false, what("wait_for", secs), 4)
    return table.pack(core.await(x))
  end)
  if ok then return table.unpack(res, 1, res.n) end
  if errors.TimeoutError.is(res) then
    if not x:done() then
      x:cancel("wait_for: deadline exceeded")
      local _s <close> = core.scope(nil, true)
      pcall(core.await, x)
    end
  end
  error(res, 0)
end

-- corio.shield(fn, ...): fn runs with outside cancellation held off
function corio.shield(fn, ...)
  check_callable("corio.shield", 1, fn)
  local _s <close> = core.scope(nil, true)
  return fn(...)
end

------------------------------------------------------------------ debugging
function corio.debug(on)
  return core.debug(on)
end

core.set_hook("deadlock", function() return errors.deadlock(dump()) end)
core.set_hook("timeout_error", function(msg) return errors.timeout_error(msg) end)
-- corio.run inside the corio command's main task: fn runs as a child of
-- it in the running loop (so a script written for plain lua5.4 as
-- corio.run(main) runs under the command too); elsewhere a running loop
-- makes corio.run raise.
-- corio.run([options,] main, ...): options is a table that is not
-- callable; its gc field is the collector setting of the run (checked and
-- applied by core.run_gc; under the command, the command's run has it).
local function run(argn, gc, fn, ...)
  check_callable("corio.run", argn, fn)
  if core.command_main() then
    core.run_gc(gc)
    return core.spawn(fn, ...):await()
  end
  return core.run_gc(gc, fn, ...)
end

function corio.run(fn, ...)
  if type(fn) == "table" and not (type(getmetatable(fn)) == "table" and getmetatable(fn).__call) then
    for k in pairs(fn) do
      if k ~= "gc" then error(("corio.run: unknown option '%s'"):format(tostring(k)), 2) end
    end
    return run(2, fn.gc, ...)
  end
  return run(1, nil, fn, ...)
end

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
if core.replace_coroutine ~= false then  -- a host may decline (corio_set_options)
  coroutine.resume = co.resume
  coroutine.wrap = co.wrap
end

for k, v in pairs(require "corio.net") do corio[k] = v end
for k, v in pairs(require "corio.process") do corio[k] = v end
corio.fs = require "corio.fs"
require("corio.tls").install(corio)  -- corio.tls; the tls option of connect, serve

-- Lua names a C function in an argument error by searching
-- package.loaded two levels deep; a function reachable both as
-- corio.connect and corio.core.connect (or corio.net.connect) would be
-- named either way. Internal modules are therefore replaced in
-- package.loaded by empty views onto them (require still returns
-- something that works), so only the public names are found: corio.x, or
-- corio.fs.x for a public submodule loaded as "corio.fs".
local function hide(name)
  local m = package.loaded[name]
  if type(m) ~= "table" or getmetatable(m) == "corio.hidden" then return end
  package.loaded[name] = setmetatable({}, {
    __index = m, __newindex = m, __metatable = "corio.hidden",
    __pairs = function() return next, m, nil end,
  })
end
corio._hide_module = hide   -- for an internal module loaded later
local names = {}
for name in pairs(package.loaded) do names[#names + 1] = name end
for _, name in ipairs(names) do
  local sub = name:match("^corio%.(.+)$")
  if sub and (sub == "core" or package.loaded[name] ~= corio[sub]) then hide(name) end
end

-- modules loaded on first use: corio.socket (LuaSocket's API, docs/socket.md), corio.testing
-- (docs/testing.md)
local lazy = { socket = "corio.socket", testing = "corio.testing" }
setmetatable(corio, { __index = function(t, k)
  local name = lazy[k]
  if name == nil then return nil end
  local m = require(name)
  rawset(t, k, m)
  return m
end })

return corio
