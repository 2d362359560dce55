local corio = require "corio"
local helper = require "helper"

local settle, cancelled_await = helper.settle, helper.cancelled_await

describe("corio.lock", function()
  it("acquire, locked, release; acquire returns the lock for <close>", function()
    helper.run(function()
      local lock = corio.lock()
      assert.is_false(lock:locked())
      assert.equal(lock, lock:acquire())
      assert.is_true(lock:locked())
      lock:release()
      assert.is_false(lock:locked())
      do
        local _ <close> = lock:acquire()
        assert.is_true(lock:locked())
      end
      assert.is_false(lock:locked())
      -- released on an error too
      pcall(function()
        local _ <close> = lock:acquire()
        error("boom")
      end)
      assert.is_false(lock:locked())
    end)
  end)

  it("raises on misuse: release unlocked, release by another task, acquire twice, outside a task", function()
    helper.run(function()
      local lock = corio.lock()
      assert.has_error(function() lock:release() end, nil)
      local ok, err = pcall(lock.release, lock)
      assert.is_false(ok)
      assert.truthy(err:find("lock:release: the lock is not locked", 1, true))
      lock:acquire()
      ok, err = pcall(lock.acquire, lock)
      assert.is_false(ok)
      assert.truthy(err:find("lock:acquire: this task already holds the lock", 1, true))
      local other = corio.spawn(function() return pcall(lock.release, lock) end)
      local ok2, err2 = other:await()
      assert.is_false(ok2)
      assert.truthy(err2:find("lock:release: the lock is held by another task", 1, true))
      lock:release()
    end)
    local ok, err = pcall(corio.lock().acquire, corio.lock())
    assert.is_false(ok)
    assert.truthy(err:find("lock:acquire: not inside a task", 1, true))
  end)

  it("wakes waiters in FIFO order, and a newcomer cannot barge in after a release", function()
    local order = helper.run(function()
      local lock, order = corio.lock(), {}
      lock:acquire()
      local tasks = {}
      for i = 1, 5 do
        tasks[i] = corio.spawn(function()
          local _ <close> = lock:acquire()
          order[#order + 1] = i
          corio.sleep(0)
        end)
        corio.sleep(0)  -- each one queues up before the next is spawned
      end
      assert.truthy(tostring(tasks[1]):find("lock", 1, true))
      lock:release()           -- goes to task 1, which has not run yet
      assert.is_true(lock:locked())
      lock:acquire()           -- so the releaser queues behind 2..5
      order[#order + 1] = "main"
      lock:release()
      for _, t in ipairs(tasks) do t:await() end
      return order
    end)
    assert.same({ 1, 2, 3, 4, 5, "main" }, order)
  end)

  it("a waiter cancelled while waiting never holds the lock; the next live waiter gets it", function()
    helper.run(function()
      local lock = corio.lock()
      lock:acquire()
      local got = {}
      local a = corio.spawn(function() lock:acquire(); got.a = true; lock:release() end)
      local b = corio.spawn(function() lock:acquire(); got.b = true; lock:release() end)
      settle()
      a:cancel()               -- a is woken by the cancellation but has not run yet
      lock:release()           -- skips a, hands to b
      cancelled_await(a)
      b:await()
      assert.is_nil(got.a)
      assert.is_true(got.b)
      assert.is_false(lock:locked())
      assert.equal(0, lock._waiters.n)
    end)
  end)

  it("a waiter cancelled after it was handed the lock returns holding it (the wake stands)", function()
    helper.run(function()
      local lock = corio.lock()
      lock:acquire()
      local held
      local a = corio.spawn(function()
        local _ <close> = lock:acquire()
        held = lock:locked()
        corio.sleep(0)         -- the next checkpoint delivers the cancellation
      end)
      settle()
      lock:release()           -- a owns the lock now
      a:cancel()
      cancelled_await(a)
      assert.is_true(held)
      assert.is_false(lock:locked())  -- released by a's <close>
    end)
  end)

  it("acquire works under corio.timeout and leaves no waiter behind", function()
    helper.run(function()
      local lock = corio.lock()
      lock:acquire()
      local t = corio.spawn(function()
        return pcall(corio.timeout, 0.001, lock.acquire, lock)
      end)
      local ok, err = t:await()
      assert.is_false(ok)
      assert.is_true(corio.TimeoutError.is(err))
      assert.equal(0, lock._waiters.n)
      lock:release()
      assert.is_false(lock:locked())
    end)
  end)

  it("100,000 waiters timing out leave no waiter behind", function()
    helper.run(function()
      local lock = corio.lock()
      lock:acquire()
      local tasks = {}
      for i = 1, 100000 do
        tasks[i] = corio.spawn(corio.move_on_after, 0.01, lock.acquire, lock)
      end
      corio.gather(tasks)
      assert.equal(0, lock._waiters.n)
      assert.is_nil(lock._waiters.head)
      assert.is_nil(next(lock._waiters.prv))   -- the long tables were replaced
      local late = corio.spawn(function() local _ <close> = lock:acquire(); return "late" end)
      settle()
      lock:release()
      assert.equal("late", late:await())
    end)
  end)
end)

describe("corio.event", function()
  it("wait returns at once when set; set wakes every waiter in order; clear", function()
    local order = helper.run(function()
      local ev, order = corio.event(), {}
      assert.is_false(ev:is_set())
      local tasks = {}
      for i = 1, 3 do  -- one by one: tasks spawned together start in any order
        tasks[i] = corio.spawn(function() assert.is_true(ev:wait()); order[#order + 1] = i end)
        settle()
      end
      assert.equal(0, #order)
      assert.truthy(tostring(tasks[1]):find("event", 1, true))
      ev:set()
      ev:set()  -- harmless
      assert.is_true(ev:is_set())
      corio.gather(tasks)
      assert.is_true(ev:wait())
      ev:clear()
      assert.is_false(ev:is_set())
      return order
    end)
    assert.same({ 1, 2, 3 }, order)
  end)

  it("a cancelled or timed-out waiter leaves the list; others still wake", function()
    helper.run(function()
      local ev = corio.event()
      local a = corio.spawn(ev.wait, ev)
      local b = corio.spawn(ev.wait, ev)
      settle()
      a:cancel()
      cancelled_await(a)
      assert.equal(1, ev._waiters.n)
      assert.is_false(corio.move_on_after(0.001, ev.wait, ev))
      assert.equal(1, ev._waiters.n)
      ev:set()
      assert.is_true(b:await())
    end)
  end)

  it("wait outside a task raises when it would have to wait", function()
    local ev = corio.event()
    local ok, err = pcall(ev.wait, ev)
    assert.is_false(ok)
    assert.truthy(err:find("event:wait: not inside a task", 1, true))
  end)
end)

describe("corio.condition", function()
  it("wait releases the lock and holds it again on return; notify wakes in order", function()
    local order = helper.run(function()
      local cond, order = corio.condition(), {}
      local tasks = {}
      for i = 1, 3 do  -- one by one: tasks spawned together start in any order
        tasks[i] = corio.spawn(function()
          local _ <close> = cond:acquire()
          assert.is_true(cond:wait())
          assert.is_true(cond:locked())
          order[#order + 1] = i
        end)
        settle()
      end
      assert.is_false(cond:locked())
      do
        local _ <close> = cond:acquire()
        assert.equal(1, cond:notify())
        assert.equal(2, cond:notify(5))
        assert.equal(0, cond:notify_all())
      end
      corio.gather(tasks)
      return order
    end)
    assert.same({ 1, 2, 3 }, order)
  end)

  it("wait_for waits until the predicate holds and returns its value", function()
    helper.run(function()
      local cond = corio.condition(corio.lock())
      local box = {}
      local t = corio.spawn(function()
        local _ <close> = cond:acquire()
        return cond:wait_for(function() return box.value end)
      end)
      settle()
      for v = 1, 3 do
        local _ <close> = cond:acquire()
        if v == 3 then box.value = "ready" end
        cond:notify_all()
      end
      assert.equal("ready", t:await())
    end)
  end)

  it("raises without the lock and for a bad lock argument", function()
    helper.run(function()
      local cond = corio.condition()
      for _, m in ipairs { "wait", "notify", "notify_all" } do
        local ok, err = pcall(cond[m], cond)
        assert.is_false(ok)
        assert.truthy(err:find("condition:" .. m .. ": the condition's lock is not held by this task", 1, true))
      end
      local ok, err = pcall(cond.release, cond)
      assert.is_false(ok)
      assert.truthy(err:find("condition:release", 1, true))
    end)
    assert.has_error(function() corio.condition({}) end,
      "corio.condition: expected a corio.lock() or nothing, got table")
  end)

  it("a cancelled wait holds the lock again before it raises; notify skips it", function()
    helper.run(function()
      local cond = corio.condition()
      local held_in_handler
      local a = corio.spawn(function()
        local _ <close> = cond:acquire()
        local ok, err = pcall(cond.wait, cond)
        held_in_handler = cond:locked() and cond._lock._owner == corio.current_task()
        error(err, 0)
      end)
      local b = corio.spawn(function()
        local _ <close> = cond:acquire()
        cond:wait()
        return "b"
      end)
      settle()
      a:cancel()
      do
        local _ <close> = cond:acquire()
        assert.equal(1, cond:notify(2))  -- only b can be woken
      end
      cancelled_await(a)
      assert.is_true(held_in_handler)
      assert.equal("b", b:await())
      assert.is_false(cond:locked())
      assert.equal(0, cond._waiters.n)
    end)
  end)

  it("wait works under corio.timeout", function()
    helper.run(function()
      local cond = corio.condition()
      local ok, err = pcall(function()
        local _ <close> = cond:acquire()
        local _t <close> = corio.timeout(0.001)
        cond:wait()
      end)
      assert.is_false(ok)
      assert.is_true(corio.TimeoutError.is(err))
      assert.is_false(cond:locked())
      assert.equal(0, cond._waiters.n)
    end)
  end)
end)

describe("corio.semaphore", function()
  it("lets n holders in, then waits; release hands a unit to the first waiter", function()
    local order = helper.run(function()
      local sem, order = corio.semaphore(2), {}
      sem:acquire()
      assert.is_false(sem:locked())
      assert.equal(sem, sem:acquire())
      assert.is_true(sem:locked())
      local tasks = {}
      for i = 1, 3 do  -- one by one: tasks spawned together start in any order
        tasks[i] = corio.spawn(function()
          local _ <close> = sem:acquire()
          order[#order + 1] = i
        end)
        settle()
      end
      assert.truthy(tostring(tasks[1]):find("semaphore", 1, true))
      sem:release()
      sem:release()
      assert.equal(0, sem:value())   -- both units handed over, none free to barge
      corio.gather(tasks)
      assert.equal(2, sem:value())
      return order
    end)
    assert.same({ 1, 2, 3 }, order)
  end)

  it("a cancelled or timed-out waiter never takes a unit", function()
    helper.run(function()
      local sem = corio.semaphore(0)
      local a = corio.spawn(sem.acquire, sem)
      settle()
      a:cancel()
      sem:release()
      cancelled_await(a)
      assert.equal(1, sem:value())
      sem:acquire()
      assert.is_false(corio.move_on_after(0.001, sem.acquire, sem))
      assert.equal(0, sem:value())
      assert.equal(0, sem._waiters.n)
    end)
  end)

  it("bounded_semaphore raises on a release beyond its initial value", function()
    helper.run(function()
      local sem = corio.bounded_semaphore(1)
      do local _ <close> = sem:acquire() end
      local ok, err = pcall(sem.release, sem)
      assert.is_false(ok)
      assert.truthy(err:find("bounded_semaphore:release: released more times than acquired", 1, true))
      corio.semaphore(1):release()   -- a plain semaphore may grow
    end)
  end)

  it("checks its argument", function()
    assert.has_error(function() corio.semaphore(-1) end, "corio.semaphore: expected an integer >= 0, got -1")
    assert.has_error(function() corio.bounded_semaphore("x") end,
      "corio.bounded_semaphore: expected an integer >= 0, got x")
    assert.equal(1, corio.semaphore():value())
  end)
end)

describe("corio.barrier", function()
  it("releases n waiters together, gives arrival indexes, and is reusable", function()
    local got = helper.run(function()
      local b, got = corio.barrier(3), {}
      assert.equal(3, b:parties())
      for round = 1, 2 do
        local tasks = {}
        for i = 1, 2 do  -- one by one: tasks spawned together start in any order
          tasks[i] = corio.spawn(b.wait, b)
          settle()
        end
        assert.equal(2, b:n_waiting())
        assert.truthy(tostring(tasks[1]):find("barrier", 1, true))
        got[round] = { b:wait(), tasks[1]:await(), tasks[2]:await() }
        assert.equal(0, b:n_waiting())
      end
      return got
    end)
    assert.same({ { 3, 1, 2 }, { 3, 1, 2 } }, got)
  end)

  it("a cancelled or timed-out waiter leaves its round", function()
    helper.run(function()
      local b = corio.barrier(2)
      local a = corio.spawn(b.wait, b)
      settle()
      a:cancel()
      cancelled_await(a)
      assert.equal(0, b:n_waiting())
      assert.is_false(corio.move_on_after(0.001, b.wait, b))
      assert.equal(0, b:n_waiting())
      local c = corio.spawn(b.wait, b)
      settle()
      assert.equal(2, b:wait())
      assert.equal(1, c:await())
    end)
  end)

  it("reset fails the waiting tasks and starts over; abort breaks it until reset", function()
    helper.run(function()
      local b = corio.barrier(3)
      local w1 = corio.spawn(function() return pcall(b.wait, b) end)
      local w2 = corio.spawn(function() return pcall(b.wait, b) end)
      settle()
      b:reset()
      for _, w in ipairs { w1, w2 } do
        local ok, err = w:await()
        assert.is_false(ok)
        assert.truthy(tostring(err):find("barrier:wait: barrier broken", 1, true))
      end
      assert.is_false(b:broken())
      assert.equal(0, b:n_waiting())
      -- a full round still works after the reset
      local a1 = corio.spawn(b.wait, b)
      settle()  -- before a2: tasks spawned together start in any order
      local a2 = corio.spawn(b.wait, b)
      settle()
      assert.equal(3, b:wait())
      assert.same({ 1, 2 }, { a1:await(), a2:await() })
      -- abort: the waiting task and every later wait fail, until reset
      local w3 = corio.spawn(function() return pcall(b.wait, b) end)
      settle()
      b:abort()
      assert.is_true(b:broken())
      assert.is_false((w3:await()))
      local ok, err = pcall(b.wait, b)
      assert.is_false(ok)
      assert.truthy(tostring(err):find("barrier broken", 1, true))
      assert.truthy(tostring(b):find("broken", 1, true))
      b:reset()
      assert.is_false(b:broken())
      local c = corio.spawn(b.wait, b)
      local d = corio.spawn(b.wait, b)
      settle()
      assert.equal(3, b:wait())
      c:await(); d:await()
    end)
  end)

  it("checks its argument", function()
    assert.has_error(function() corio.barrier(0) end, "corio.barrier: expected an integer >= 1, got 0")
  end)
end)
