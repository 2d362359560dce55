-- Locks, events, conditions, semaphores and barriers: fair (FIFO) and
-- cancellation-safe, built on core.park/unpark with the waiters kept in
-- each object's own wait list (corio.waiters).
--
-- Fairness is by handoff: a release gives the lock (or the semaphore's
-- unit) straight to the first waiter that can still be woken, so a task
-- arriving later cannot take it first, and a waiter that was cancelled is
-- skipped, never left holding the resource. A call that need not wait
-- returns at once without suspending (as asyncio does).
local core = require "corio.core"
local waiters = require "corio.waiters"
local errors = require "corio.errors"
local check_self, raise, BrokenBarrier = errors.check_self, errors.raise, errors.BrokenBarrier

local current_task, scope = core.current_task, core.scope
local new_list, wait, pop, wake_all, check =
  waiters.new, waiters.wait, waiters.pop, waiters.wake_all, waiters.check
local setmetatable, getmetatable, error, type, tostring = setmetatable, getmetatable, error, type, tostring
local math_type = math.type

local M = {}

local function class(name)
  local c = { __name = name }
  c.__index = c
  return c
end

local function check_count(fname, n, min)
  if math_type(n) ~= "integer" or n < min then
    error(("%s: expected an integer >= %d, got %s"):format(fname, min, tostring(n)), 3)
  end
end

------------------------------------------------------------------ lock
local Lock = class("corio.Lock")
M.Lock = Lock

function M.lock()
  return setmetatable({ _owner = nil, _waiters = new_list() }, Lock)
end

-- lock:acquire() (suspends) -> the lock, to be closed:
--   local _ <close> = lock:acquire()
function Lock:acquire()
  check_self(self, Lock, "lock:acquire", "Lock")
  local me = current_task()
  local owner = self._owner
  if owner == nil and me ~= nil and self._waiters.head == nil then
    self._owner = me
    return self
  end
  me = check("lock:acquire")
  if owner == me then error("lock:acquire: this task already holds the lock", 2) end
  wait(self._waiters, me, "lock")
  return self   -- release() made us the owner before waking us
end

local function release(self, fname)
  local me = current_task()
  local owner = self._owner
  if owner ~= me or me == nil then
    if owner == nil then error(fname .. ": the lock is not locked", 3) end
    error(fname .. ": the lock is held by another task", 3)
  end
  local w = self._waiters
  if w.head ~= nil then
    self._owner = pop(w)  -- handoff (nil if every waiter was cancelled)
  else
    self._owner = nil
  end
end

function Lock:release()
  check_self(self, Lock, "lock:release", "Lock")
  release(self, "lock:release")
end
Lock.__close = function(self) release(self, "lock:release") end

function Lock:locked()
  check_self(self, Lock, "lock:locked", "Lock")
  return self._owner ~= nil
end

Lock.__tostring = function(self)
  if self._owner == nil then return "corio lock (unlocked)" end
  return ("corio lock (locked by %s, %d waiting)"):format(tostring(self._owner), self._waiters.n)
end

------------------------------------------------------------------ event
local Event = class("corio.Event")
M.Event = Event

function M.event()
  return setmetatable({ _flag = false, _waiters = new_list() }, Event)
end

-- event:wait() (suspends) -> true, once the event is set
function Event:wait()
  check_self(self, Event, "event:wait", "Event")
  if self._flag then return true end
  wait(self._waiters, check("event:wait"), "event")
  return true
end

function Event:set()
  check_self(self, Event, "event:set", "Event")
  if self._flag then return end
  self._flag = true
  wake_all(self._waiters)
end

function Event:clear()
  check_self(self, Event, "event:clear", "Event")
  self._flag = false
end
function Event:is_set()
  check_self(self, Event, "event:is_set", "Event")
  return self._flag
end

Event.__tostring = function(self)
  return ("corio event (%s, %d waiting)"):format(self._flag and "set" or "clear", self._waiters.n)
end

------------------------------------------------------------------ condition
local Condition = class("corio.Condition")
M.Condition = Condition

function M.condition(lock)
  if lock == nil then
    lock = M.lock()
  elseif getmetatable(lock) ~= Lock then
    error("corio.condition: expected a corio.lock() or nothing, got " .. type(lock), 2)
  end
  return setmetatable({ _lock = lock, _waiters = new_list() }, Condition)
end

function Condition:acquire()
  check_self(self, Condition, "condition:acquire", "Condition")
  self._lock:acquire()
  return self
end

function Condition:release()
  check_self(self, Condition, "condition:release", "Condition")
  release(self._lock, "condition:release")
end
Condition.__close = function(self) release(self._lock, "condition:release") end
function Condition:locked()
  check_self(self, Condition, "condition:locked", "Condition")
  return self._lock._owner ~= nil
end

local function check_holder(self, fname)
  local me = current_task()
  if me == nil or self._lock._owner ~= me then
    error(fname .. ": the condition's lock is not held by this task", 3)
  end
  return me
end

-- reacquire the lock after a wait, whatever happens (shielded)
local function reacquire(lock)
  local _s <close> = scope(nil, true)
  lock:acquire()
end

-- condition:wait() (suspends) -> true: releases the lock, waits for a
-- notify, and holds the lock again when it returns (or raises).
function Condition:wait()
  check_self(self, Condition, "condition:wait", "Condition")
  local me = check_holder(self, "condition:wait")
  check("condition:wait")
  local lock = self._lock
  release(lock, "condition:wait")
  local ok, err = pcall(wait, self._waiters, me, "condition")
  reacquire(lock)
  if not ok then error(err, 0) end
  return true
end

-- condition:wait_for(predicate) (suspends) -> predicate's first true value
function Condition:wait_for(predicate)
  check_self(self, Condition, "condition:wait_for", "Condition")
  if type(predicate) ~= "function" then
    error(("bad argument #1 to 'condition:wait_for' (function expected, got %s)"):format(type(predicate)), 2)
  end
  local r = predicate()
  while not r do
    self:wait()
    r = predicate()
  end
  return r
end

-- condition:notify([n]) -> how many waiters were woken (at most n, default 1)
function Condition:notify(n)
  check_self(self, Condition, "condition:notify", "Condition")
  if n == nil then n = 1
  elseif type(n) ~= "number" or n ~= n then
    error(("bad argument #1 to 'condition:notify' (number expected, got %s)"):format(
      n ~= n and "NaN" or type(n)), 2)
  end
  check_holder(self, "condition:notify")
  local woken, w = 0, self._waiters
  while woken < n and pop(w) do woken = woken + 1 end
  return woken
end

function Condition:notify_all()
  check_self(self, Condition, "condition:notify_all", "Condition")
  check_holder(self, "condition:notify_all")
  return self:notify(math.huge)
end

Condition.__tostring = function(self)
  return ("corio condition (%s, %d waiting)"):format(
    self._lock._owner and "locked" or "unlocked", self._waiters.n)
end

------------------------------------------------------------------ semaphores
local Semaphore = class("corio.Semaphore")
M.Semaphore = Semaphore
local BoundedSemaphore = class("corio.BoundedSemaphore")
M.BoundedSemaphore = BoundedSemaphore

local function check_sem(self, method)
  local mt = getmetatable(self)
  if mt ~= Semaphore and mt ~= BoundedSemaphore then
    check_self(self, Semaphore, method, "Semaphore")
  end
end

local function semaphore(mt, name, n)
  if n == nil then n = 1 end
  check_count(name, n, 0)
  return setmetatable({ _value = n, _bound = n, _waiters = new_list(), _kind = name }, mt)
end

function M.semaphore(n) return semaphore(Semaphore, "corio.semaphore", n) end
function M.bounded_semaphore(n) return semaphore(BoundedSemaphore, "corio.bounded_semaphore", n) end

-- sem:acquire() (suspends) -> the semaphore, to be closed
function Semaphore:acquire()
  check_sem(self, "semaphore:acquire")
  local v = self._value
  if v > 0 and self._waiters.head == nil then
    self._value = v - 1
    return self
  end
  wait(self._waiters, check("semaphore:acquire"), "semaphore")
  return self   -- release() handed its unit to us
end

local function sem_release(self)
  local w = self._waiters
  if w.head ~= nil and pop(w) then return end  -- handoff: the unit goes to the waiter
  local v = self._value + 1
  if v > self._bound and self._kind == "corio.bounded_semaphore" then
    error("bounded_semaphore:release: released more times than acquired", 3)
  end
  self._value = v
end

function Semaphore:release()
  check_sem(self, "semaphore:release")
  sem_release(self)
end
Semaphore.__close = function(self) sem_release(self) end
function Semaphore:locked()
  check_sem(self, "semaphore:locked")
  return self._value == 0
end
function Semaphore:value()
  check_sem(self, "semaphore:value")
  return self._value
end

Semaphore.__tostring = function(self)
  return ("corio %s (value %d, %d waiting)"):format(self._kind:sub(7), self._value, self._waiters.n)
end

for k, v in pairs(Semaphore) do
  if k ~= "__name" and k ~= "__index" then BoundedSemaphore[k] = v end
end

------------------------------------------------------------------ barrier
local Barrier = class("corio.Barrier")
M.Barrier = Barrier

function M.barrier(n)
  check_count("corio.barrier", n, 1)
  return setmetatable({ _parties = n, _count = 0, _round = 0, _waiters = new_list() }, Barrier)
end

local BROKEN = setmetatable({}, { __name = "corio.barrier broken" })

-- barrier:wait() (suspends) -> this task's arrival index in its round (1..n),
-- once n tasks are waiting; then the barrier is ready for the next round.
-- Raises "barrier:wait: barrier broken" once the barrier is aborted, and in
-- the tasks waiting when it is reset or aborted.
function Barrier:wait()
  check_self(self, Barrier, "barrier:wait", "Barrier")
  if self._broken then raise(BrokenBarrier, "barrier:wait: barrier broken", 2) end
  local count = self._count + 1
  if count == self._parties then   -- the last arrival: everyone passes
    self._count = 0
    self._round = self._round + 1
    wake_all(self._waiters)
    return count
  end
  local me = check("barrier:wait")
  self._count = count
  local round = self._round
  local ok, err = pcall(wait, self._waiters, me, "barrier")
  if not ok then   -- a waiter cancelled before its round is complete leaves it
    if self._round == round then self._count = self._count - 1 end
    error(err, 0)
  end
  local got = self._got
  if got and got[me] then
    got[me] = nil
    raise(BrokenBarrier, "barrier:wait: barrier broken", 2)
  end
  return count
end

-- wake every waiting task with the broken error and start an empty round
local function break_round(self)
  self._count = 0
  self._round = self._round + 1
  local got = self._got
  if got == nil then
    got = {}
    self._got = got
  end
  wake_all(self._waiters, got, BROKEN)
end

-- barrier:reset(): back to the empty state; the tasks waiting now fail
-- with "barrier broken", later ones wait for a new round as usual
function Barrier:reset()
  check_self(self, Barrier, "barrier:reset", "Barrier")
  break_round(self)
  self._broken = false
end

-- barrier:abort(): the barrier is broken: the tasks waiting now and every
-- later wait fail with "barrier broken" (until reset)
function Barrier:abort()
  check_self(self, Barrier, "barrier:abort", "Barrier")
  self._broken = true
  break_round(self)
end

function Barrier:broken()
  check_self(self, Barrier, "barrier:broken", "Barrier")
  return self._broken == true
end

function Barrier:parties()
  check_self(self, Barrier, "barrier:parties", "Barrier")
  return self._parties
end
function Barrier:n_waiting()
  check_self(self, Barrier, "barrier:n_waiting", "Barrier")
  return self._count
end

Barrier.__tostring = function(self)
  return ("corio barrier (%d of %d waiting%s)"):format(self._count, self._parties,
    self._broken and ", broken" or "")
end

return M
