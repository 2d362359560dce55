-- Cancellation injection over the runtime (tasks, scopes, combinators,
-- synchronisation, queues): each scenario is swept by spec/cancel_inject.lua,
-- cancelled at each of its checkpoints in turn. The I/O scenarios are in
-- cancel_inject_io_spec.lua.
local corio = require "corio"
local inject = require "cancel_inject"

local closer = inject.closer

-- a task spawned by the caller that is cancelled and awaited when the
-- returned value is closed, whatever happens (the shield lets the await
-- wait even in a cancelled task)
local function reaped(st, name, fn, ...)
  local t = corio.spawn(fn, ...)
  return closer(st, name, function()
    corio.shield(function()
      t:cancel()
      pcall(t.await, t)
    end)
  end), t
end

-- a queue scenario's bookkeeping: what was put (put returned), what was got
local function ledger(st)
  st.put, st.got = {}, {}
end
local function check_ledger(q)
  return function(st)
    local seen = {}
    local function take(item, how)
      assert(not seen[item], ("item %s seen twice (%s)"):format(tostring(item), how))
      seen[item] = true
      assert(st.put[item], ("item %s %s but never put"):format(tostring(item), how))
    end
    for item in pairs(st.got) do take(item, "got") end
    while not st[q]:empty() do take(st[q]:get_nowait(), "left in the queue") end
    for item in pairs(st.put) do
      assert(seen[item], ("item %s was put but lost"):format(tostring(item)))
    end
  end
end

-- nprod producers put nitems each into q, ncons consumers get until the
-- queue is shut down: by the last producer to leave (nothing more will
-- come), or by the last consumer to leave (nothing will take: a put must
-- fail, not wait forever). The producers start after `delay`, if given.
local function producers_consumers(st, q, nprod, nitems, ncons, delay)
  local prods, conss = nprod, ncons
  local tg <close> = corio.task_group()
  for p = 1, nprod do
    tg:spawn(function()
      local _c <close> = closer(st, "producer" .. p, function()
        prods = prods - 1
        if prods == 0 then q:shutdown() end
      end)
      if delay then corio.sleep(delay) end
      for i = 1, nitems do
        local item = p * 100 + i
        local ok, err = pcall(q.put, q, item)
        if not ok then
          if corio.QueueShutDown.is(err) then return end
          error(err, 0)
        end
        st.put[item] = true
      end
    end)
  end
  for c = 1, ncons do
    tg:spawn(function()
      local _c <close> = closer(st, "consumer" .. c, function()
        conss = conss - 1
        if conss == 0 then q:shutdown() end
      end)
      while true do
        local ok, item = pcall(q.get, q)
        if not ok then
          if corio.QueueShutDown.is(item) then return end
          error(item, 0)
        end
        st.got[item] = true
        corio.sleep(0)
      end
    end)
  end
end

-- a producers_consumers scenario (nprod, nitems, ncons, delay: its
-- arguments) over a fresh queue from make_queue(), checked by the ledger
local function queue_scenario(name, make_queue, nprod, nitems, ncons, delay)
  return {
    name = name,
    setup = function(st) ledger(st); st.q = make_queue() end,
    body = function(st) producers_consumers(st, st.q, nprod, nitems, ncons, delay) end,
    check = check_ledger("q"),
  }
end

local scenarios = {
  {
    name = "sleep with nested <close> handlers",
    body = function(st)
      local _a <close> = closer(st, "outer")
      corio.sleep(1)
      do
        local _b <close> = closer(st, "inner")
        corio.sleep(0)
        corio.sleep(2)
      end
      corio.sleep(0.5)
      return "done"
    end,
  },
  {
    name = "await of a task",
    body = function(st)
      local _r <close>, t = reaped(st, "reap", function()
        local _c <close> = closer(st, "child")
        corio.sleep(1)
        return 42
      end)
      assert(t:await() == 42)
      corio.sleep(0)
    end,
  },
  {
    name = "await of a future set by a loop callback",
    body = function(st)
      local f = corio.future()
      local h = corio.loop():call_later(1, function() f:set_result("v") end)
      local _h <close> = closer(st, "handle", function() h:cancel() end)
      assert(f:await() == "v")
      assert(corio.await(f) == "v")
    end,
  },
  {
    name = "gather of functions",
    body = function(st)
      local a, b = corio.gather(function()
        local _c <close> = closer(st, "a")
        corio.sleep(1)
        return 1
      end, function()
        local _c <close> = closer(st, "b")
        corio.sleep(0)
        corio.sleep(2)
        return 2
      end)
      assert(a == 1 and b == 2)
    end,
  },
  {
    name = "settle of a list of tasks",
    body = function(st)
      local ts = {}
      for i = 1, 3 do
        ts[i] = function()
          local _c <close> = closer(st, "c" .. i)
          corio.sleep(i)
          return i
        end
      end
      local r = corio.settle(ts)
      assert(#r == 3)
      corio.sleep(0)
    end,
  },
  {
    name = "task group, children and body",
    body = function(st)
      local tg <close> = corio.task_group()
      for i = 1, 3 do
        tg:spawn(function()
          local _c <close> = closer(st, "child" .. i)
          corio.sleep(i)
          corio.sleep(0)
        end)
      end
      local _b <close> = closer(st, "body")
      corio.sleep(1.5)
    end,
  },
  {
    name = "nested task groups with grandchildren",
    body = function(st)
      corio.task_group(function(tg)
        tg:spawn(function()
          local inner <close> = corio.task_group()
          inner:spawn(function()
            local _c <close> = closer(st, "grandchild")
            corio.sleep(2)
          end)
          local _c <close> = closer(st, "child")
          corio.sleep(1)
        end)
        corio.sleep(0.5)
      end)
    end,
  },
  {
    name = "timeout that does not expire",
    body = function(st)
      local _t <close> = corio.timeout(100)
      local _c <close> = closer(st, "in")
      corio.sleep(1)
      corio.sleep(1)
    end,
  },
  {
    name = "timeout that expires, caught",
    body = function(st)
      local ok, err = pcall(corio.timeout, 1, function()
        local _c <close> = closer(st, "in")
        corio.sleep(0)
        corio.sleep(5)
      end)
      assert(not ok)
      -- an injected cancellation stays a cancellation
      if corio.is_cancelled(err) then error(err, 0) end
      assert(corio.TimeoutError.is(err), tostring(err))
      corio.sleep(0)
    end,
  },
  {
    name = "move_on_after and wait_for",
    body = function(st)
      local _c <close> = closer(st, "outer")
      corio.move_on_after(1, function() corio.sleep(5) end)
      local _r <close>, t = reaped(st, "reap", function() corio.sleep(1); return 7 end)
      assert(corio.wait_for(t, 10) == 7)
    end,
  },
  {
    name = "wait_for that expires, and as_completed with a timeout",
    body = function(st)
      local _r <close>, t = reaped(st, "reap", function()
        local _c <close> = closer(st, "slow")
        corio.sleep(10)
      end)
      local ok, err = pcall(corio.wait_for, t, 1)
      if corio.is_cancelled(err) then error(err, 0) end
      assert(not ok and corio.TimeoutError.is(err), tostring(err))
      assert(t:done(), "wait_for left its task running")
      local ts = {}
      for i = 1, 2 do ts[i] = corio.spawn(corio.sleep, i * 2) end
      local _q <close> = closer(st, "reap2", function()
        corio.shield(function()
          for _, x in ipairs(ts) do x:cancel(); pcall(x.await, x) end
        end)
      end)
      local n = 0
      ok, err = pcall(function()
        for x in corio.as_completed(ts, { timeout = 3 }) do x:await(); n = n + 1 end
      end)
      if corio.is_cancelled(err) then error(err, 0) end
      assert(not ok and corio.TimeoutError.is(err) and n == 1, tostring(err))
    end,
  },
  {
    name = "gather whose children clean up with awaits",
    body = function(st)
      corio.gather(function()
        local _c <close> = closer(st, "a", function() corio.shield(corio.sleep, 1) end)
        corio.sleep(1)
      end, function()
        local _c <close> = closer(st, "b", function() corio.shield(corio.sleep, 0.5) end)
        corio.sleep(2)
      end)
    end,
  },
  {
    name = "shield around work that awaits",
    body = function(st)
      corio.sleep(0)
      corio.shield(function()
        local _c <close> = closer(st, "shielded")
        st.entered = true
        corio.sleep(1)
        corio.sleep(0)
        st.finished = true
      end)
      corio.sleep(1)
    end,
    check = function(st)
      -- once entered, a shield's body runs to its end whatever the cancel
      assert(st.entered == st.finished, "the shielded body was interrupted")
    end,
  },
  queue_scenario("bounded queue, producers and consumers",
                 function() return corio.queue(2) end, 2, 4, 2),
  queue_scenario("get from an empty queue, put into a full one",
                 function() return corio.queue(1) end, 1, 4, 1, 1),
  queue_scenario("priority queue",
                 function() return corio.priority_queue(1) end, 2, 3, 1),
  queue_scenario("lifo queue",
                 function() return corio.lifo_queue(2) end, 1, 5, 2, 0.5),
  {
    name = "queue join and task_done",
    setup = function(st) ledger(st); st.q = corio.queue() end,
    body = function(st)
      local q = st.q
      local _w <close> = reaped(st, "worker", function()
        while true do
          local item = q:get()
          st.got[item] = true
          corio.sleep(0)
          q:task_done()
        end
      end)
      for i = 1, 3 do q:put(i); st.put[i] = true end
      q:join()
    end,
    check = check_ledger("q"),
    modes = { "root" },  -- a cancelled worker leaves join waiting forever, by design
  },
  {
    name = "channel send and receive until closed",
    setup = function(st) ledger(st) end,
    body = function(st)
      local send, recv = corio.channel(1)
      local tg <close> = corio.task_group()
      tg:spawn(function()
        local _s <close> = closer(st, "send", function() send:close() end)
        for i = 1, 4 do
          local ok, err = pcall(send.send, send, i)
          if not ok then  -- the receiver left: stop sending
            if tostring(err):find("every receive end is closed", 1, true) then return end
            error(err, 0)
          end
          st.put[i] = true
        end
      end)
      tg:spawn(function()
        local _r <close> = closer(st, "recv", function() recv:close() end)
        for item in recv do st.got[item] = true end
      end)
    end,
    check = function(st)
      for item in pairs(st.got) do assert(st.put[item] or item == nil) end
    end,
  },
  {
    name = "lock contention",
    setup = function(st) st.lock = corio.lock() end,
    body = function(st)
      local tg <close> = corio.task_group()
      for i = 1, 3 do
        tg:spawn(function()
          local _l <close> = st.lock:acquire()
          local _c <close> = closer(st, "holder" .. i)
          corio.sleep(1)
        end)
      end
    end,
    check = function(st) assert(not st.lock:locked(), "the lock is still held") end,
  },
  {
    name = "semaphore and bounded semaphore",
    setup = function(st) st.sem = corio.semaphore(2); st.bsem = corio.bounded_semaphore(1) end,
    body = function(st)
      local tg <close> = corio.task_group()
      for i = 1, 4 do
        tg:spawn(function()
          local _s <close> = st.sem:acquire()
          local _b <close> = st.bsem:acquire()
          local _c <close> = closer(st, "user" .. i)
          corio.sleep(0.5)
        end)
      end
    end,
    check = function(st)
      assert(st.sem:value() == 2, "semaphore value " .. st.sem:value())
      assert(st.bsem:value() == 1, "bounded semaphore value " .. st.bsem:value())
    end,
  },
  {
    name = "event wait and set",
    body = function(st)
      local ev = corio.event()
      local tg <close> = corio.task_group()
      for i = 1, 2 do
        tg:spawn(function()
          local _c <close> = closer(st, "waiter" .. i)
          ev:wait()
        end)
      end
      corio.sleep(1)
      ev:set()
    end,
  },
  {
    name = "condition wait and notify",
    setup = function(st) st.cond = corio.condition() end,
    body = function(st)
      local cond = st.cond
      local ready = false
      local tg <close> = corio.task_group()
      tg:spawn(function()
        local _l <close> = cond:acquire()
        cond:wait_for(function() return ready end)
      end)
      tg:spawn(function()
        -- notifies however this task ends, so that the waiter never hangs
        local _n <close> = closer(st, "notifier", function()
          corio.shield(function()
            local _l <close> = cond:acquire()
            ready = true
            cond:notify_all()
          end)
        end)
        corio.sleep(1)
      end)
    end,
    check = function(st) assert(not st.cond:locked(), "the condition's lock is still held") end,
  },
  {
    name = "barrier",
    body = function(st)
      local b = corio.barrier(2)
      local tg <close> = corio.task_group()
      for i = 1, 2 do
        tg:spawn(function()
          local _c <close> = closer(st, "party" .. i, function(err)
            if err then b:abort() end  -- the other party must not wait forever
          end)
          corio.sleep(i)
          local ok, err = pcall(b.wait, b)
          if not ok and not corio.BrokenBarrier.is(err) then error(err, 0) end
        end)
      end
    end,
  },
  {
    name = "race, wait and as_completed",
    body = function(st)
      local function worker(i)
        return function()
          local _c <close> = closer(st, "w" .. i)
          corio.sleep(i)
          return i
        end
      end
      assert(corio.race(worker(1), worker(2)) == 1)
      local ts = { corio.spawn(worker(3)), corio.spawn(worker(4)) }
      local _r <close> = closer(st, "reap", function()
        corio.shield(function()
          for _, t in ipairs(ts) do t:cancel(); pcall(t.await, t) end
        end)
      end)
      corio.wait(ts, { return_when = "first_completed" })
      for t in corio.as_completed(ts) do t:await() end
    end,
  },
  {
    name = "<close> handlers that await, nested",
    body = function(st)
      local _a <close> = closer(st, "outer", function()
        corio.shield(function() corio.sleep(1); st.outer_slept = true end)
      end)
      local _b <close> = closer(st, "middle", function()
        corio.sleep(0)  -- raises again in a cancelled task: the outer one still runs
      end)
      do
        local _c <close> = closer(st, "inner", function() corio.shield(corio.sleep, 0.5) end)
        corio.sleep(1)
      end
      corio.sleep(1)
    end,
    check = function(st) assert(st.outer_slept, "the outer handler's shielded sleep did not finish") end,
  },
  {
    name = "coroutine.wrap and resume inside a task",
    body = function(st)
      local gen = corio.coroutine.wrap(function()
        for i = 1, 3 do
          corio.sleep(0.5)
          corio.coroutine.yield(i)
        end
      end)
      local _c <close> = closer(st, "gen")
      local sum = 0
      for _ = 1, 3 do sum = sum + gen() end
      assert(sum == 6)
    end,
  },
}

describe("cancellation injected at every checkpoint", function()
  for _, sc in ipairs(scenarios) do it(sc.name, inject.test(sc)) end
end)

describe("bugs the sweep found", function()
  it("a task cancelled while ready in sleep(0) raises there, not at some later checkpoint", function()
    corio.run(function()
      local t = corio.spawn(function() corio.sleep(0); return "finished" end)
      corio.sleep(0)  -- t now waits in its sleep(0), ready to resume
      assert.is_true(t:cancel())
      local ok, err = pcall(t.await, t)
      assert.is_false(ok)
      assert.is_true(corio.is_cancelled(err))
      assert.is_true(t:cancelled())
    end)
  end)

  it("a task cancelled after its sleep's timer fired raises in the sleep", function()
    corio.testing.run(function()
      local t
      -- same deadline: the canceller's timer fires first, then t's, and the
      -- canceller runs first, while t is woken but not yet resumed
      local canceller = corio.spawn(function() corio.sleep(1); t:cancel() end)
      t = corio.spawn(function() corio.sleep(1); return "finished" end)
      canceller:await()
      local ok, err = pcall(t.await, t)
      assert.is_false(ok)
      assert.is_true(corio.is_cancelled(err))
    end)
  end)
end)
