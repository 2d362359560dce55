-- Wait lists for the synchronisation primitives and queues (internal).
--
-- A wait list is a FIFO of parked tasks: a doubly linked list kept in two
-- tables keyed by task (nxt, prv), so a cancelled waiter leaves it in O(1)
-- and a wait allocates no node. `val` holds one value per waiter (a
-- putter's item). When the list empties after it has been long, its tables
-- are replaced, so 100,000 waiters that time out leave no large table
-- behind.
--
-- wait() parks the current task on a list; the waker pops it with pop()
-- (which skips waiters that cancellation already woke: core.unpark fails
-- for them) and may leave it a value in the primitive's own result table.
-- A wake that core.unpark reported is never taken back, so what the waker
-- handed over is always received.
local core = require "corio.core"

local park, unpark, current_task = core.park, core.unpark, core.current_task
local isyieldable = coroutine.isyieldable
local pcall, error = pcall, error

local M = {}

local COMPACT_AT = 256   -- replace the tables of a list that emptied after this many

function M.new()
  return { head = nil, tail = nil, n = 0, hi = 0, nxt = {}, prv = {}, val = {} }
end

local function push(w, t, v)
  local tail = w.tail
  if tail == nil then
    w.head = t
    w.prv[t] = false
  else
    w.nxt[tail] = t
    w.prv[t] = tail
  end
  w.tail = t
  if v ~= nil then w.val[t] = v end
  local n = w.n + 1
  w.n = n
  if n > w.hi then w.hi = n end
end
M.push = push

local function emptied(w)
  if w.hi > COMPACT_AT then
    w.nxt, w.prv, w.val, w.hi = {}, {}, {}, 0
  end
end

-- remove(w, t): take t out of the list if it is in it (O(1))
local function remove(w, t)
  local prv = w.prv
  local p = prv[t]
  if p == nil then return false end
  local nxt = w.nxt
  local q = nxt[t]
  if p then nxt[p] = q else w.head = q end
  if q then prv[q] = p else w.tail = p or nil end
  prv[t] = nil
  nxt[t] = nil
  w.val[t] = nil
  local n = w.n - 1
  w.n = n
  if n == 0 then emptied(w) end
  return true
end
M.remove = remove

-- pop(w) -> the first waiter that is now woken, and its value; waiters that
-- can no longer be woken (cancelled, not yet run) are dropped on the way.
-- nil when no waiter can be woken.
local function pop(w)
  local t = w.head
  while t ~= nil do
    local nxt = w.nxt
    local q = nxt[t]
    local v = w.val[t]
    nxt[t] = nil
    w.prv[t] = nil
    w.val[t] = nil
    w.head = q
    if q then w.prv[q] = false else w.tail = nil end
    local n = w.n - 1
    w.n = n
    if n == 0 then emptied(w) end
    if unpark(t) then return t, v end
    t = q
  end
  return nil
end
M.pop = pop

-- check(fname) -> the current task; raises a clear error where no wait is possible
local function check(fname)
  local me = current_task()
  if me == nil then
    error(fname .. ": not inside a task (start one with corio.run)", 3)
  end
  if not isyieldable() then
    error(fname .. ": cannot suspend here: the call is behind a C-call boundary "
      .. "(a table.sort comparator, a string.gsub callback, a metamethod called from C, ...)", 3)
  end
  return me
end
M.check = check

-- wait(w, me, what [, v]): park me on w until a waker pops it. On a
-- cancellation (or any error) me leaves the list at once and it is re-raised.
function M.wait(w, me, what, v)
  push(w, me, v)
  local ok, err = pcall(park, what)
  if not ok then
    remove(w, me)
    error(err, 0)
  end
end

-- wake_all(w, res, r): wake every waiter, leaving r in res[t] when res is given
function M.wake_all(w, res, r)
  while w.head ~= nil do
    local t = pop(w)
    if t and res then res[t] = r end
  end
end

return M
