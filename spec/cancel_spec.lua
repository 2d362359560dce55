local corio = require "corio"
local helper = require "helper"

local on_close = helper.on_close

-- Spawn fn as a task and wait until it has reached its first checkpoint:
-- fn receives a `ready` function it must call just before it suspends.
local function spawn_started(fn, ...)
  local started = corio.future()
  local t = corio.spawn(fn, function() started:set_result(true) end, ...)
  started:await()
  return t
end

local function expect_cancelled(t)
  local ok, err = pcall(t.await, t)
  assert.is_false(ok, "expected the task to end cancelled")
  assert.is_true(corio.is_cancelled(err), "expected a cancellation, got: " .. tostring(err))
  assert.is_true(t:done())
  assert.is_true(t:cancelled())
  return err
end

describe("cancellation", function()
  it("is_cancelled is false for ordinary values", function()
    assert.is_false(corio.is_cancelled(nil))
    assert.is_false(corio.is_cancelled("cancelled"))
    assert.is_false(corio.is_cancelled({}))
    assert.is_false(corio.is_cancelled(42))
  end)

  it("is delivered at a sleep checkpoint, with the message", function()
    helper.run(function()
      local caught
      local t0 = corio.now()
      local t = spawn_started(function(ready)
        ready()
        local ok, err = pcall(corio.sleep, 10)
        caught = { ok = ok, err = err }
        error(err, 0)
      end)
      assert.is_true(t:cancel("stop now"))
      expect_cancelled(t)
      assert.is_false(caught.ok)
      assert.is_true(corio.is_cancelled(caught.err))
      assert.equals("stop now", caught.err.message)
      assert.equals("cancelled: stop now", tostring(caught.err))
      assert.is_true(corio.now() - t0 < 5, "cancel did not interrupt the sleep")
    end)
  end)

  it("without a message: message is nil and tostring is 'cancelled'", function()
    helper.run(function()
      local caught
      local t = spawn_started(function(ready)
        ready()
        local _, err = pcall(corio.sleep, 10)
        caught = err
        error(err, 0)
      end)
      t:cancel()
      expect_cancelled(t)
      assert.is_true(corio.is_cancelled(caught))
      assert.is_nil(caught.message)
      assert.equals("cancelled", tostring(caught))
      assert.equals(corio.Cancelled, getmetatable(caught))
    end)
  end)

  it("is delivered while awaiting another task", function()
    helper.run(function()
      local never = corio.future()
      local inner = corio.spawn(function() return never:await() end)
      local caught
      local waiter = spawn_started(function(ready)
        ready()
        local ok, err = pcall(inner.await, inner)
        caught = { ok = ok, err = err }
        error(err, 0)
      end)
      assert.is_true(waiter:cancel("w"))
      expect_cancelled(waiter)
      assert.is_false(caught.ok)
      assert.is_true(corio.is_cancelled(caught.err))
      assert.equals("w", caught.err.message)
      -- clean up the awaited task, whatever became of it
      inner:cancel()
      pcall(inner.await, inner)
      assert.is_true(inner:done())
    end)
  end)

  it("is delivered while awaiting a future (method and corio.await)", function()
    helper.run(function()
      for _, how in ipairs { "method", "corio.await" } do
        local fut = corio.future()
        local caught
        local t = spawn_started(function(ready)
          ready()
          local ok, err
          if how == "method" then
            ok, err = pcall(fut.await, fut)
          else
            ok, err = pcall(corio.await, fut)
          end
          caught = { ok = ok, err = err }
          error(err, 0)
        end)
        assert.is_true(t:cancel("f"))
        expect_cancelled(t)
        assert.is_false(caught.ok, how)
        assert.is_true(corio.is_cancelled(caught.err), how)
        assert.equals("f", caught.err.message, how)
      end
    end)
  end)

  it("runs <close> handlers, innermost first, with the cancellation error", function()
    helper.run(function()
      local log = {}
      local function inner(ready)
        local c <close> = on_close(function(e) log[#log + 1] = { "inner", e } end)
        ready()
        corio.sleep(10)
        log[#log + 1] = { "not reached" }
      end
      local t = spawn_started(function(ready)
        local c <close> = on_close(function(e) log[#log + 1] = { "outer", e } end)
        inner(ready)
        log[#log + 1] = { "not reached" }
      end)
      t:cancel("bye")
      expect_cancelled(t)
      assert.equals(2, #log)
      assert.equals("inner", log[1][1])
      assert.equals("outer", log[2][1])
      assert.is_true(corio.is_cancelled(log[1][2]))
      assert.is_true(corio.is_cancelled(log[2][2]))
      assert.equals("bye", log[1][2].message)
    end)
  end)

  it("is level-triggered: a pcall that swallows it does not keep the task alive", function()
    helper.run(function()
      local done_fut = corio.future()
      done_fut:set_result("v")
      local seen = {}
      local t0 = corio.now()
      local t = spawn_started(function(ready)
        ready()
        local ok1, e1 = pcall(corio.sleep, 10)
        seen.first = { ok1, e1 }
        local ok2, e2 = pcall(corio.sleep, 0)        -- raises again
        seen.second = { ok2, e2 }
        local ok3, e3 = pcall(corio.sleep, 10)       -- and again, without waiting
        seen.third = { ok3, e3 }
        local ok4, e4 = pcall(done_fut.await, done_fut) -- even a finished future
        seen.fourth = { ok4, e4 }
        seen.reached = true
        corio.sleep(10)                              -- unprotected: the task ends here
        seen.after = true
      end)
      assert.is_true(t:cancel("again"))
      expect_cancelled(t)
      for _, k in ipairs { "first", "second", "third", "fourth" } do
        assert.is_false(seen[k][1], k .. " checkpoint did not raise")
        assert.is_true(corio.is_cancelled(seen[k][2]), k)
      end
      assert.equals("again", seen.second[2].message)
      assert.is_true(seen.reached)
      assert.is_nil(seen.after)
      assert.is_true(corio.now() - t0 < 5, "a swallowed cancellation let a sleep run")
    end)
  end)

  it("cancel returns true while the task runs (also twice), false after it finished", function()
    helper.run(function()
      local t = spawn_started(function(ready)
        ready()
        corio.sleep(10)
      end)
      assert.is_true(t:cancel())
      assert.is_true(t:cancel())
      expect_cancelled(t)
      assert.is_false(t:cancel())

      local t2 = corio.spawn(function() return 1 end)
      assert.equals(1, t2:await())
      assert.is_false(t2:cancel())
      assert.is_false(t2:cancelled())
      assert.equals(1, t2:result())
    end)
  end)

  it("a task cancelled before it started finishes cancelled without running its body", function()
    helper.run(function()
      local ran = false
      local t = corio.spawn(function() ran = true; return "body" end)
      assert.is_false(t:done())
      assert.is_true(t:cancel("early"))
      local err = expect_cancelled(t)
      assert.equals("early", err.message)
      assert.is_false(ran)
      corio.sleep(0)
      assert.is_false(ran)
    end)
  end)

  it("awaiting a cancelled task raises a cancellation error in every awaiter, which is not itself cancelled", function()
    helper.run(function()
      local victim = spawn_started(function(ready)
        ready()
        corio.sleep(10)
      end)
      local results = {}
      local awaiters = {}
      for i = 1, 3 do
        awaiters[i] = corio.spawn(function()
          local ok, err = pcall(victim.await, victim)
          results[i] = { ok, err }
          corio.sleep(0)     -- the awaiter itself is not cancelled
          return "awaiter survived"
        end)
      end
      corio.sleep(0)         -- let the awaiters start waiting
      victim:cancel("v")
      for i = 1, 3 do
        assert.equals("awaiter survived", awaiters[i]:await())
        assert.is_false(results[i][1])
        assert.is_true(corio.is_cancelled(results[i][2]))
      end
      local ok, err = pcall(corio.await, victim)
      assert.is_false(ok)
      assert.is_true(corio.is_cancelled(err))
      ok, err = pcall(victim.result, victim)
      assert.is_false(ok)
      assert.is_true(corio.is_cancelled(err))
      assert.is_true(corio.is_cancelled(victim:error()))
      -- the main task is not cancelled either
      assert.equals("x", corio.sleep(0, "x"))
    end)
  end)

  it("a task may cancel itself: its next checkpoint raises", function()
    helper.run(function()
      local seen = {}
      local t = corio.spawn(function()
        seen.ret = corio.current_task():cancel("self")
        seen.before = true
        corio.sleep(0)
        seen.after = true
      end)
      local err = expect_cancelled(t)
      assert.is_true(seen.ret)
      assert.is_true(seen.before)
      assert.is_nil(seen.after)
      assert.equals("self", err.message)
    end)
  end)
end)

describe("corio.shield", function()
  it("returns fn's results and passes its arguments", function()
    helper.run(function()
      local a, b, c = corio.shield(function(x, y)
        corio.sleep(0)
        return x + y, "two", nil
      end, 1, 2)
      assert.equals(3, a)
      assert.equals("two", b)
      assert.is_nil(c)
      local n = select("#", corio.shield(function() return 1, 2, 3 end))
      assert.equals(3, n)
    end)
  end)

  it("raises fn's error unchanged", function()
    helper.run(function()
      local boom = setmetatable({}, { __tostring = function() return "boom" end })
      local ok, err = pcall(corio.shield, function()
        corio.sleep(0)
        error(boom)
      end)
      assert.is_false(ok)
      assert.is_true(rawequal(boom, err))
    end)
  end)

  it("holds off outside cancellation until fn returns; the next checkpoint raises", function()
    helper.run(function()
      local release = corio.future()
      local seen = {}
      local t = spawn_started(function(ready)
        local r1, r2 = corio.shield(function(a)
          ready()
          local v = release:await()      -- cancellation arrives while we wait here
          corio.sleep(0.01)              -- still shielded
          seen.inner_done = true
          return a + 1, v .. "!"
        end, 41)
        seen.results = { r1, r2 }
        local ok, err = pcall(corio.sleep, 10)
        seen.after = { ok, err }
        error(err, 0)
      end)
      assert.is_true(t:cancel("later"))
      for _ = 1, 5 do corio.sleep(0) end
      corio.sleep(0.02)
      assert.is_false(t:done(), "shield did not hold off the cancellation")
      assert.is_nil(seen.inner_done)
      release:set_result("go")
      local err = expect_cancelled(t)
      assert.is_true(seen.inner_done)
      assert.same({ 42, "go!" }, seen.results)
      assert.is_false(seen.after[1])
      assert.is_true(corio.is_cancelled(seen.after[2]))
      assert.equals("later", err.message)
    end)
  end)

  it("lets a <close> handler await cleanup during cancellation", function()
    helper.run(function()
      local release = corio.future()
      local seen = {}
      local t = spawn_started(function(ready)
        local c <close> = on_close(function(e)
          seen.close_err = e
          corio.shield(function()
            corio.sleep(0.01)
            seen.cleaned = release:await()
          end)
          seen.close_end = true
        end)
        ready()
        corio.sleep(10)
      end)
      t:cancel()
      for _ = 1, 5 do corio.sleep(0) end
      assert.is_true(corio.is_cancelled(seen.close_err), "the <close> handler did not run")
      assert.is_false(t:done(), "the task ended before its cleanup finished")
      release:set_result("cleaned")
      expect_cancelled(t)
      assert.equals("cleaned", seen.cleaned)
      assert.is_true(seen.close_end)
    end)
  end)
end)
