-- Queues (FIFO, priority, LIFO) and Trio-style channels: fair (FIFO
-- wake-up) and cancellation-safe, built on core.park/unpark.
--
-- The items live in the queue's own storage (a ring buffer, a heap or a
-- stack); a waiting getter or putter is only an entry in a wait list
-- (corio.waiters). Every handover is direct, so nobody can barge in
-- between a wake-up and the woken task running:
--   put with getters waiting   the item goes to the first live getter's slot
--   get with putters waiting   the first live putter's item enters the
--                              storage (or, unbuffered, is taken straight)
-- A cancelled getter was never handed anything (core.unpark fails for it,
-- so the waker tries the next one): the item stays for the next getter. A
-- cancelled putter's item never entered the storage. A wake-up that
-- core.unpark reported is never taken back, so a handed item is always
-- received.
--
-- put/get that need not wait return at once without suspending (as in
-- asyncio); waiting ones are checkpoints.
local core = require "corio.core"
local waiters = require "corio.waiters"
local errors = require "corio.errors"

local park, unpark = core.park, core.unpark
local new_list, push, remove, pop, check, wait, wake_all =
  waiters.new, waiters.push, waiters.remove, waiters.pop, waiters.check, waiters.wait, waiters.wake_all
local pcall, error, setmetatable, getmetatable, type, tostring =
  pcall, error, setmetatable, getmetatable, type, tostring
local math_type, huge = math.type, math.huge

local M = {}

-- sentinels in the result slots and the putters' values
local NIL = setmetatable({}, { __name = "corio.queue nil item" })
local SHUT = setmetatable({}, { __name = "corio.queue shut down" })

------------------------------------------------------------------ queues
-- A queue is a table of closures over its state (upvalues are cheaper than
-- fields on the hot path): q:put(x) finds `put` in q itself. The metatable
-- only gives it a name, tostring and #q.
local Queue = { __name = "corio.Queue" }
M.Queue = Queue
Queue.__len = function(q) return q:qsize() end
Queue.__tostring = function(q) return q:_describe() end

local function check_max(fname, maxsize)
  if maxsize == nil then return huge end
  if math_type(maxsize) ~= "integer" or maxsize < 0 then
    error(("bad argument #1 to '%s' (maxsize must be an integer >= 0, got %s)")
      :format(fname, tostring(maxsize)), 3)
  end
  if maxsize == 0 then return huge end
  return maxsize
end

local raise, check_self = errors.raise, errors.check_self
local QueueShutDown, QueueFull, QueueEmpty = errors.QueueShutDown, errors.QueueFull, errors.QueueEmpty

-- The storage of each kind, behind one interface that the shared code
-- below uses: store(item, prio), take() -> item, prio, count() -> items
-- stored, bump(d) -> unfinished after adding d, is_shut(), set_shut().
-- The FIFO queue's storage is in C (core.fifo), with put/get fast paths
-- that call the Lua slow paths here only when they must.

-- a LIFO stack or a priority heap, with its counters in upvalues
local function lua_storage(kind)
  local n, unfinished, shut = 0, 0, false
  local buf = {}
  local store, take
  if kind == "lifo_queue" then
    function store(item)
      n = n + 1
      buf[n] = item
    end
    function take()
      local item = buf[n]
      buf[n] = nil
      n = n - 1
      return item
    end
  else
    -- a binary min-heap on (priority, arrival) in three parallel arrays
    local pri, seq, seqno = {}, {}, 0
    local function before(a, b)
      local pa, pb = pri[a], pri[b]
      if pa == pb then return seq[a] < seq[b] end
      return pa < pb
    end
    function store(item, prio)
      seqno = seqno + 1
      local i = n + 1
      n = i
      pri[i], seq[i], buf[i] = prio, seqno, item
      while i > 1 do   -- sift up
        local p = i // 2
        if not before(i, p) then break end
        pri[i], pri[p] = pri[p], pri[i]
        seq[i], seq[p] = seq[p], seq[i]
        buf[i], buf[p] = buf[p], buf[i]
        i = p
      end
    end
    function take()
      local item, prio = buf[1], pri[1]
      pri[1], seq[1], buf[1] = pri[n], seq[n], buf[n]
      pri[n], seq[n], buf[n] = nil, nil, nil
      n = n - 1
      local i = 1
      while true do   -- sift down
        local l = 2 * i
        if l > n then break end
        local c = l
        if l < n and before(l + 1, l) then c = l + 1 end
        if not before(c, i) then break end
        pri[i], pri[c] = pri[c], pri[i]
        seq[i], seq[c] = seq[c], seq[i]
        buf[i], buf[c] = buf[c], buf[i]
        i = c
      end
      if n == 0 then seqno = 0 end
      return item, prio
    end
  end
  return store, take,
    function() return n end,
    function(d) unfinished = unfinished + d; return unfinished end,
    function() return shut end,
    function() shut = true end
end

local function new_queue(kind, maxsize)
  local max = check_max("corio." .. kind, maxsize)
  local is_pri = kind == "priority_queue"
  local getters, putters, joiners = new_list(), new_list(), new_list()
  local got = {}          -- task -> item handed to a woken getter (or SHUT)
  local wprio = {}        -- task -> priority of a waiting putter / handed item
  local store, take, count, bump, is_shut, set_shut
  -- errors name the caller of put/get: one level further up when the C
  -- fast path called the slow path
  local up = kind == "queue" and 1 or 0

  local function shut_error(fname, level)
    raise(QueueShutDown, ("%s:%s: queue shut down"):format(kind, fname), level + 1 + up)
  end

  local q   -- the queue: every method checks that its self is q
  local function check_q(self, method)
    errors.bad_self(self, kind .. ":" .. method, "Queue",
      getmetatable(self) == Queue and "another " .. kind or nil, 4)
  end

  -- the priority to store: the one given, else the item itself when it is
  -- a number or a string (it orders itself, as in asyncio's PriorityQueue)
  local function check_prio(fname, prio, item)
    if prio == nil then
      local it = type(item)
      if it == "number" or it == "string" then return item end
      error(("priority_queue:%s: no priority given, and the item (a %s) cannot be its own: "
        .. "only a number or a string can"):format(fname, it), 3)
    end
    local ty = type(prio)
    if ty ~= "number" and ty ~= "string" then
      error(("priority_queue:%s: priority must be a number or a string, got %s"):format(fname, ty), 3)
    end
    return prio
  end

  -- hand item to the first live getter; false if none can take it
  local function hand_over(item, prio)
    local t = pop(getters)
    if t == nil then return false end
    if item == nil then item = NIL end
    got[t] = item
    if prio ~= nil then wprio[t] = prio end
    bump(1)
    return true
  end

  -- after a take made room: the first live putter's item enters the storage
  local function refill()
    local t, v = pop(putters)
    if t == nil then return end
    if v == NIL then v = nil end
    local prio = wprio[t]
    if prio ~= nil then wprio[t] = nil end
    store(v, prio)
    bump(1)
  end

  -- full: wait, the item kept in the wait list until a get takes it in
  local function wait_put(item, prio)
    local me = check(kind .. ":put")
    if prio ~= nil then wprio[me] = prio end
    if item == nil then item = NIL end
    push(putters, me, item)
    local ok, err = pcall(park, "queue")
    if not ok then
      remove(putters, me)
      wprio[me] = nil
      error(err, 0)
    end
    if got[me] ~= nil then   -- woken by shutdown: the item was not put
      got[me] = nil
      wprio[me] = nil
      shut_error("put", 2)
    end
  end

  local function wait_get()
    if is_shut() then shut_error("get", 2) end
    local me = check(kind .. ":get")
    push(getters, me)
    local ok, err = pcall(park, "queue")
    if not ok then
      remove(getters, me)
      error(err, 0)
    end
    local item = got[me]
    got[me] = nil
    if item == SHUT then shut_error("get", 2) end
    if item == NIL then item = nil end
    if is_pri then   -- handed over while the queue was empty: the lowest priority too
      local prio = wprio[me]
      wprio[me] = nil
      return item, prio
    end
    return item
  end

  -- q:put(item [, priority]) (suspends while the queue is full). For the
  -- FIFO queue this is the slow path behind the C one. A priority queue
  -- orders a number or a string item by itself when no priority is given.
  local function put(self, item, prio)
    if self ~= q then check_q(self, "put") end
    if is_shut() then shut_error("put", 2) end
    if is_pri then prio = check_prio("put", prio, item) end
    if getters.head ~= nil and hand_over(item, prio) then return end
    if count() < max then
      store(item, prio)
      bump(1)
      return
    end
    return wait_put(item, prio)
  end

  -- q:get() (suspends while the queue is empty) -> item (and its
  -- priority, for a priority queue)
  local function get(self)
    if self ~= q then check_q(self, "get") end
    if count() > 0 then
      local item, prio = take()
      if putters.head ~= nil then refill() end
      return item, prio
    end
    return wait_get()
  end

  q = { _getters = getters, _putters = putters, _joiners = joiners }
  if kind == "queue" then
    q.put, q.get, store, take, count, bump, is_shut, set_shut =
      core.fifo(max, getters, putters, put, get, q)
  else
    store, take, count, bump, is_shut, set_shut = lua_storage(kind)
    q.put, q.get = put, get
  end

  function q.put_nowait(self, item, prio)
    if self ~= q then check_q(self, "put_nowait") end
    if is_shut() then raise(QueueShutDown, kind .. ":put_nowait: queue shut down", 2) end
    if is_pri then prio = check_prio("put_nowait", prio, item) end
    if getters.head ~= nil and hand_over(item, prio) then return end
    if count() >= max then raise(QueueFull, kind .. ":put_nowait: queue full", 2) end
    store(item, prio)
    bump(1)
  end

  function q.get_nowait(self)
    if self ~= q then check_q(self, "get_nowait") end
    if count() > 0 then
      local item, prio = take()
      if putters.head ~= nil then refill() end
      return item, prio
    end
    if is_shut() then raise(QueueShutDown, kind .. ":get_nowait: queue shut down", 2) end
    raise(QueueEmpty, kind .. ":get_nowait: queue empty", 2)
  end

  function q.task_done(self)
    if self ~= q then check_q(self, "task_done") end
    if bump(0) == 0 then
      error(kind .. ":task_done: called more times than there were items", 2)
    end
    if bump(-1) == 0 then wake_all(joiners) end
  end

  -- q:join() (suspends until every item put has been marked task_done)
  function q.join(self)
    if self ~= q then check_q(self, "join") end
    if bump(0) == 0 then return end
    wait(joiners, check(kind .. ":join"), "queue")
  end

  -- q:shutdown([immediate]) (asyncio 3.13): put fails from now on; getters
  -- drain what is left, then fail. immediate: the items left are dropped
  -- (counted as done for join).
  function q.shutdown(self, immediate)
    if self ~= q then check_q(self, "shutdown") end
    set_shut()
    if immediate then
      while count() > 0 do
        take()
        if bump(0) > 0 then bump(-1) end
      end
      if bump(0) == 0 then wake_all(joiners) end
    end
    wake_all(getters, got, SHUT)
    wake_all(putters, got, SHUT)
  end

  function q.is_shutdown(self)
    if self ~= q then check_q(self, "is_shutdown") end
    return is_shut()
  end
  function q.qsize(self)
    if self ~= q then check_q(self, "qsize") end
    return count()
  end
  function q.empty(self)
    if self ~= q then check_q(self, "empty") end
    return count() == 0
  end
  function q.full(self)
    if self ~= q then check_q(self, "full") end
    return count() >= max
  end
  function q.maxsize(self)
    if self ~= q then check_q(self, "maxsize") end
    return max == huge and 0 or max
  end
  function q._unfinished() return bump(0) end
  function q._describe()
    return ("corio %s (%d of %s items, %d getters and %d putters waiting%s)"):format(
      kind, count(), max == huge and "unbounded" or tostring(max),
      getters.n, putters.n, is_shut() and ", shut down" or "")
  end

  return setmetatable(q, Queue)
end

function M.queue(maxsize) return new_queue("queue", maxsize) end
function M.lifo_queue(maxsize) return new_queue("lifo_queue", maxsize) end
function M.priority_queue(maxsize) return new_queue("priority_queue", maxsize) end

------------------------------------------------------------------ channels
-- corio.channel([size]) -> send, receive: Trio's memory channels. size 0
-- (the default) is unbuffered: a send waits until a receiver takes the
-- item; math.huge is unbounded. Closing the last send end ends the
-- channel for the receivers once they have drained it; closing the last
-- receive end makes sends fail.
local SendChannel = { __name = "corio.SendChannel" }
SendChannel.__index = SendChannel
local ReceiveChannel = { __name = "corio.ReceiveChannel" }
ReceiveChannel.__index = ReceiveChannel
M.SendChannel, M.ReceiveChannel = SendChannel, ReceiveChannel

-- the channel's buffer: a ring of ch._cap slots from ch._head, grown on demand
local function fifo_store(ch, item)
  local n, cap, buf, head = ch._n, ch._cap, ch._buf, ch._head
  if n == cap then
    local nb, ncap = {}, cap * 2
    for i = 1, ncap do nb[i] = false end
    for i = 1, cap do
      local j = head + i - 1
      if j > cap then j = j - cap end
      nb[i] = buf[j]
    end
    buf, head, cap = nb, 1, ncap
    ch._buf, ch._head, ch._cap = nb, 1, ncap
  end
  local i = head + n
  if i > cap then i = i - cap end
  buf[i] = item
  ch._n = n + 1
end

local function fifo_take(ch)
  local buf, head = ch._buf, ch._head
  local item = buf[head]
  buf[head] = false
  if head == ch._cap then ch._head = 1 else ch._head = head + 1 end
  ch._n = ch._n - 1
  return item
end

local END = setmetatable({}, { __name = "corio.channel end" })
local BROKEN = setmetatable({}, { __name = "corio.channel broken" })

-- Each end remembers the tasks waiting through it (a set made on first
-- use), so closing one end of several wakes the tasks blocked on that end.
local function wait_on(end_, w, me, item)
  local blocked = end_._blocked
  if blocked == nil then
    blocked = {}
    end_._blocked = blocked
  end
  blocked[me] = true
  push(w, me, item)
  local ok, err = pcall(park, "channel")
  blocked[me] = nil
  if not ok then
    remove(w, me)
    error(err, 0)
  end
end

-- wake the tasks blocked on this end (others' wake-ups stand), leaving r
local function wake_blocked(end_, w, got, r)
  local blocked = end_._blocked
  if blocked == nil then return end
  for t in pairs(blocked) do
    if remove(w, t) and unpark(t) then got[t] = r end
  end
end

function M.channel(size)
  if size == nil then size = 0 end
  if size ~= huge and (math_type(size) ~= "integer" or size < 0) then
    error("corio.channel: size must be an integer >= 0 or math.huge, got " .. tostring(size), 2)
  end
  local ch = {
    _max = size, _n = 0, _head = 1, _cap = 8, _buf = {},
    _getters = new_list(), _putters = new_list(), _got = {},
    _senders = 1, _receivers = 1,
  }
  for i = 1, 8 do ch._buf[i] = false end
  return setmetatable({ _ch = ch, _open = true }, SendChannel),
         setmetatable({ _ch = ch, _open = true }, ReceiveChannel)
end

-- send:send(item) (suspends until the item is buffered or received)
function SendChannel:send(item)
  check_self(self, SendChannel, "send:send", "SendChannel")
  if item == nil then error("channel send: cannot send nil (it would end a receiver's for loop)", 2) end
  if not self._open then error("channel send: this send end is closed", 2) end
  local ch = self._ch
  if ch._receivers == 0 then error("channel send: every receive end is closed", 2) end
  if ch._getters.head ~= nil then
    local t = pop(ch._getters)
    if t then ch._got[t] = item; return end
  end
  if ch._n < ch._max then fifo_store(ch, item); return end
  local me = check("channel send")
  wait_on(self, ch._putters, me, item)
  local r = ch._got[me]
  if r ~= nil then
    ch._got[me] = nil
    if r == BROKEN then error("channel send: every receive end is closed", 2) end
    error("channel send: this send end is closed", 2)
  end
end

function SendChannel:send_nowait(item)
  check_self(self, SendChannel, "send:send_nowait", "SendChannel")
  if item == nil then error("channel send_nowait: cannot send nil", 2) end
  if not self._open then error("channel send_nowait: this send end is closed", 2) end
  local ch = self._ch
  if ch._receivers == 0 then error("channel send_nowait: every receive end is closed", 2) end
  if ch._getters.head ~= nil then
    local t = pop(ch._getters)
    if t then ch._got[t] = item; return end
  end
  if ch._n < ch._max then fifo_store(ch, item); return end
  error("channel send_nowait: channel full", 2)
end

function SendChannel:clone()
  check_self(self, SendChannel, "send:clone", "SendChannel")
  if not self._open then error("channel clone: this send end is closed", 2) end
  local ch = self._ch
  ch._senders = ch._senders + 1
  return setmetatable({ _ch = ch, _open = true }, SendChannel)
end

-- send:close(): idempotent; the last send end closed ends the channel
function SendChannel:close()
  check_self(self, SendChannel, "send:close", "SendChannel")
  if not self._open then return end
  self._open = false
  local ch = self._ch
  local s = ch._senders - 1
  ch._senders = s
  if s == 0 then
    wake_all(ch._getters, ch._got, END)
    wake_all(ch._putters, ch._got, END)   -- sends blocked on the last end fail
  else
    wake_blocked(self, ch._putters, ch._got, END)   -- sends blocked on this end fail
  end
end
SendChannel.__close = SendChannel.close
function SendChannel:is_closed()
  check_self(self, SendChannel, "send:is_closed", "SendChannel")
  return not self._open
end

-- take the next item, or nothing when it would have to wait
local function try_receive(ch)
  if ch._n > 0 then
    local item = fifo_take(ch)
    if ch._putters.head ~= nil then
      local _, v = pop(ch._putters)
      if v ~= nil then fifo_store(ch, v) end
    end
    return item
  end
  if ch._putters.head ~= nil then   -- unbuffered: straight from a sender
    local _, v = pop(ch._putters)
    return v
  end
end

-- recv:receive() (suspends) -> the next item, or nil once every send end
-- is closed and the buffer is drained
function ReceiveChannel:receive()
  check_self(self, ReceiveChannel, "recv:receive", "ReceiveChannel")
  if not self._open then error("channel receive: this receive end is closed", 2) end
  local ch = self._ch
  local item = try_receive(ch)
  if item ~= nil then return item end
  if ch._senders == 0 then return nil end
  local me = check("channel receive")
  wait_on(self, ch._getters, me)
  local got = ch._got
  item = got[me]
  got[me] = nil
  if item == END then return nil end
  if item == BROKEN then error("channel receive: this receive end is closed", 2) end
  return item
end

-- recv:receive_nowait() -> item; nil at the end of the channel; raises
-- "channel empty" when it would have to wait
function ReceiveChannel:receive_nowait()
  check_self(self, ReceiveChannel, "recv:receive_nowait", "ReceiveChannel")
  if not self._open then error("channel receive_nowait: this receive end is closed", 2) end
  local ch = self._ch
  local item = try_receive(ch)
  if item ~= nil then return item end
  if ch._senders == 0 then return nil end
  error("channel receive_nowait: channel empty", 2)
end

ReceiveChannel.__call = ReceiveChannel.receive   -- for item in recv do ... end

function ReceiveChannel:clone()
  check_self(self, ReceiveChannel, "recv:clone", "ReceiveChannel")
  if not self._open then error("channel clone: this receive end is closed", 2) end
  local ch = self._ch
  ch._receivers = ch._receivers + 1
  return setmetatable({ _ch = ch, _open = true }, ReceiveChannel)
end

-- recv:close(): idempotent; the last receive end closed drops the buffer
-- and makes every send fail
function ReceiveChannel:close()
  check_self(self, ReceiveChannel, "recv:close", "ReceiveChannel")
  if not self._open then return end
  self._open = false
  local ch = self._ch
  local r = ch._receivers - 1
  ch._receivers = r
  if r == 0 then
    while ch._n > 0 do fifo_take(ch) end
    wake_all(ch._putters, ch._got, BROKEN)
    wake_all(ch._getters, ch._got, BROKEN)  -- receives blocked on the last end fail
  else
    wake_blocked(self, ch._getters, ch._got, BROKEN)  -- receives blocked on this end fail
  end
end
ReceiveChannel.__close = ReceiveChannel.close
function ReceiveChannel:is_closed()
  check_self(self, ReceiveChannel, "recv:is_closed", "ReceiveChannel")
  return not self._open
end

local function channel_tostring(kind)
  return function(self)
    local ch = self._ch
    return ("corio %s (%s; %d buffered, %d senders, %d receivers)"):format(
      kind, self._open and "open" or "closed", ch._n, ch._senders, ch._receivers)
  end
end
SendChannel.__tostring = channel_tostring("send channel")
ReceiveChannel.__tostring = channel_tostring("receive channel")

return M
