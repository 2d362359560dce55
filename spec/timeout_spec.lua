local corio = require "corio"
local helper = require "helper"

-- Every wait here is a pure timer: the tests run on corio.testing's
-- virtual clock, which jumps to the next deadline (so a 2 s sleep takes no
-- real time), and its report of leaked tasks, handles and fds.
local vrun = corio.testing.run

-- ASSUMPTION (DESIGN.md says only "returns normally, with a flag, instead of
-- raising"; contract.md is silent): corio.move_on_after(secs, fn, ...) returns
-- ok, ...fn's results; ok is true when fn finished in time and false (and no
-- further values matter) when the deadline passed.

local on_close = helper.on_close

local function is_timeout(e)
  return corio.TimeoutError.is(e)
end

local function assert_timeout(e)
  assert.is_true(is_timeout(e), "expected a TimeoutError, got: " .. tostring(e))
  assert.equals(corio.TimeoutError, getmetatable(e))
  assert.is_false(corio.is_cancelled(e))
  assert.equals("string", type(tostring(e)))
end

local only_me_alive = helper.only_me_alive

describe("corio.timeout scope", function()
  it("cancels the code inside at the deadline and raises TimeoutError at the end", function()
    vrun(function()
      local seen = {}
      local t0 = corio.now()
      local ok, e = pcall(function()
        local t <close> = corio.timeout(0.05)
        local c <close> = on_close(function(err) seen.close_err = err end)
        local ok2, e2 = pcall(corio.sleep, 2)
        seen.inner = { ok2, e2 }
        local ok3, e3 = pcall(corio.sleep, 0)  -- level-triggered inside the scope
        seen.again = { ok3, e3 }
        seen.reached_end = true
        corio.sleep(0)                         -- raises again; the scope turns it into TimeoutError
        seen.after = true
      end)
      local elapsed = corio.now() - t0
      assert.is_false(ok)
      assert_timeout(e)
      assert.is_false(seen.inner[1])
      assert.is_true(corio.is_cancelled(seen.inner[2]), "inside the scope: " .. tostring(seen.inner[2]))
      assert.is_false(seen.again[1])
      assert.is_true(corio.is_cancelled(seen.again[2]))
      assert.is_true(seen.reached_end)
      assert.is_nil(seen.after)
      assert.is_true(elapsed >= 0.04, "fired too early: " .. elapsed)
      assert.is_true(elapsed < 1.5, "fired too late: " .. elapsed)
      -- after the scope the task is no longer cancelled
      assert.equals("ok", corio.sleep(0.01, "ok"))
    end)
  end)

  it("raises TimeoutError when the cancellation is not caught inside", function()
    vrun(function()
      local after = false
      local ok, e = pcall(function()
        local t <close> = corio.timeout(0.02)
        corio.sleep(2)
        after = true
      end)
      assert.is_false(ok)
      assert_timeout(e)
      assert.is_false(after)
      corio.sleep(0)
    end)
  end)

  it("does not raise when the block finishes in time, and the deadline goes away", function()
    vrun(function()
      do
        local t <close> = corio.timeout(5)
        corio.sleep(0.01)
      end
      do
        local t <close> = corio.timeout(0.05)
        corio.sleep(0)
      end
      local t0 = corio.now()
      corio.sleep(0.1)   -- past the second scope's deadline: must not be interrupted
      assert.is_true(corio.now() - t0 >= 0.09)
    end)
  end)

  it("a cancellation from elsewhere stays a cancellation", function()
    vrun(function()
      local started = corio.future()
      local seen = {}
      local task = corio.spawn(function()
        local ok, e = pcall(function()
          local t <close> = corio.timeout(10)
          started:set_result(true)
          corio.sleep(1)
        end)
        seen.err = e
        error(e, 0)
      end)
      started:await()
      local t0 = corio.now()
      task:cancel("from outside")
      local ok, e = pcall(task.await, task)
      assert.is_true(corio.now() - t0 < 0.75, "the cancellation did not interrupt the sleep inside the scope")
      assert.is_false(ok)
      assert.is_true(corio.is_cancelled(e))
      assert.is_true(corio.is_cancelled(seen.err), "got: " .. tostring(seen.err))
      assert.is_false(is_timeout(seen.err))
      assert.is_true(task:cancelled())
    end)
  end)

  it("timeout(0) fires at the first checkpoint inside", function()
    vrun(function()
      local seen = {}
      local ok, e = pcall(function()
        local t <close> = corio.timeout(0)
        seen.before = true     -- code before the first checkpoint runs
        corio.sleep(0)
        seen.after = true
      end)
      assert.is_false(ok)
      assert_timeout(e)
      assert.is_true(seen.before)
      assert.is_nil(seen.after)
    end)
  end)

  it("function form returns fn's results or raises TimeoutError", function()
    vrun(function()
      local a, b, c = corio.timeout(5, function(x, y)
        corio.sleep(0)
        return x, y, "z"
      end, 1, 2)
      assert.equals(1, a)
      assert.equals(2, b)
      assert.equals("z", c)

      local t0 = corio.now()
      local reached = false
      local ok, e = pcall(corio.timeout, 0.02, function()
        corio.sleep(2)
        reached = true
      end)
      assert.is_false(ok)
      assert_timeout(e)
      assert.is_false(reached)
      assert.is_true(corio.now() - t0 < 1.5)
      corio.sleep(0)    -- not cancelled any more
    end)
  end)

  it("function form passes fn's own error through unchanged", function()
    vrun(function()
      local boom = setmetatable({}, { __tostring = function() return "boom" end })
      local ok, e = pcall(corio.timeout, 5, function()
        corio.sleep(0)
        error(boom)
      end)
      assert.is_false(ok)
      assert.is_true(rawequal(boom, e))
    end)
  end)

  it("timeout_at takes a corio.now()-based deadline", function()
    vrun(function()
      local t0 = corio.now()
      local ok, e = pcall(function()
        local t <close> = corio.timeout_at(corio.now() + 0.05)
        corio.sleep(2)
      end)
      local elapsed = corio.now() - t0
      assert.is_false(ok)
      assert_timeout(e)
      assert.is_true(elapsed >= 0.04 and elapsed < 1.5, "elapsed " .. elapsed)

      assert.equals("v", corio.timeout_at(corio.now() + 5, function(x)
        corio.sleep(0)
        return x
      end, "v"))

      ok, e = pcall(corio.timeout_at, corio.now() + 0.02, corio.sleep, 2)
      assert.is_false(ok)
      assert_timeout(e)

      -- a deadline in the past fires at the first checkpoint
      local before, after = false, false
      ok, e = pcall(function()
        local t <close> = corio.timeout_at(corio.now() - 1)
        before = true
        corio.sleep(0)
        after = true
      end)
      assert.is_false(ok)
      assert_timeout(e)
      assert.is_true(before)
      assert.is_false(after)
    end)
  end)

  it("move_on_after returns normally with a flag", function()
    vrun(function()
      local ok, v1, v2 = corio.move_on_after(5, function(x)
        corio.sleep(0)
        return x, "two"
      end, "one")
      assert.is_true(ok)
      assert.equals("one", v1)
      assert.equals("two", v2)

      local t0 = corio.now()
      local reached = false
      local ok2 = corio.move_on_after(0.02, function()
        corio.sleep(2)
        reached = true
      end)
      assert.is_false(ok2)
      assert.is_false(reached)
      assert.is_true(corio.now() - t0 < 1.5)
      assert.equals("still", corio.sleep(0, "still"))   -- not cancelled afterwards
    end)
  end)

  it("move_on_after lets an outside cancellation through", function()
    vrun(function()
      local started = corio.future()
      local seen = {}
      local task = corio.spawn(function()
        local ok, e = pcall(corio.move_on_after, 10, function()
          started:set_result(true)
          corio.sleep(1)
        end)
        seen.res = { ok, e }
        error(e, 0)
      end)
      started:await()
      local t0 = corio.now()
      task:cancel()
      pcall(task.await, task)
      assert.is_true(corio.now() - t0 < 0.75, "the cancellation did not interrupt the sleep inside move_on_after")
      assert.is_true(task:cancelled())
      assert.is_false(seen.res[1])
      assert.is_true(corio.is_cancelled(seen.res[2]))
    end)
  end)
end)

describe("corio.wait_for", function()
  it("returns the results of a task or a future in time", function()
    vrun(function()
      local t = corio.spawn(function() corio.sleep(0.01); return "a", "b" end)
      local a, b = corio.wait_for(t, 5)
      assert.equals("a", a)
      assert.equals("b", b)

      local f = corio.future()
      corio.spawn(function() corio.sleep(0.01); f:set_result(7, 8) end)
      local x, y = corio.wait_for(f, 5)
      assert.equals(7, x)
      assert.equals(8, y)
      corio.sleep(0)
    end)
  end)

  it("raises the awaitable's own error", function()
    vrun(function()
      local boom = setmetatable({}, { __tostring = function() return "boom" end })
      local t = corio.spawn(function() corio.sleep(0); error(boom) end)
      local ok, e = pcall(corio.wait_for, t, 5)
      assert.is_false(ok)
      assert.is_true(rawequal(boom, e))
    end)
  end)

  it("raises TimeoutError and cancels the task on timeout", function()
    vrun(function()
      local closed
      local t = corio.spawn(function()
        local c <close> = on_close(function(err) closed = err end)
        corio.sleep(2)
      end)
      local t0 = corio.now()
      local ok, e = pcall(corio.wait_for, t, 0.03)
      local elapsed = corio.now() - t0
      assert.is_false(ok)
      assert_timeout(e)
      assert.is_true(elapsed >= 0.02 and elapsed < 1.5, "elapsed " .. elapsed)
      local ok2, e2 = pcall(t.await, t)
      assert.is_false(ok2)
      assert.is_true(corio.is_cancelled(e2))
      assert.is_true(t:cancelled())
      assert.is_true(corio.is_cancelled(closed))
      corio.sleep(0)   -- the caller is not cancelled
    end)
  end)
end)

describe("nested timeouts", function()
  it("inner shorter: the inner scope raises, the outer carries on", function()
    vrun(function()
      local inner_err
      local t0 = corio.now()
      do
        local outer <close> = corio.timeout(5)
        local ok, e = pcall(function()
          local inner <close> = corio.timeout(0.02)
          corio.sleep(2)
        end)
        assert.is_false(ok)
        inner_err = e
        corio.sleep(0.01)   -- the outer scope is not cancelled
      end
      assert_timeout(inner_err)
      assert.is_true(corio.now() - t0 < 1.5)
    end)
  end)

  it("outer shorter: the inner scope passes a plain cancellation, the outer raises TimeoutError", function()
    vrun(function()
      local inner_err
      local t0 = corio.now()
      local ok, e = pcall(function()
        local outer <close> = corio.timeout(0.03)
        local ok2, e2 = pcall(function()
          local inner <close> = corio.timeout(10)
          corio.sleep(1)
        end)
        assert.is_false(ok2)
        inner_err = e2
        error(e2, 0)
      end)
      assert.is_false(ok)
      assert_timeout(e)
      assert.is_true(corio.is_cancelled(inner_err), "inner scope raised: " .. tostring(inner_err))
      assert.is_false(is_timeout(inner_err))
      assert.is_true(corio.now() - t0 < 0.75)
    end)
  end)

  it("function forms nest the same way", function()
    vrun(function()
      local t0 = corio.now()
      local ok, e = pcall(corio.timeout, 0.03, function()
        return corio.timeout(10, corio.sleep, 1)
      end)
      assert.is_false(ok)
      assert_timeout(e)
      assert.is_true(corio.now() - t0 < 0.75, "the outer deadline did not interrupt the inner scope")
      local ok2, v = pcall(corio.timeout, 10, function()
        local ok3, e3 = pcall(corio.timeout, 0.01, corio.sleep, 1)
        assert.is_false(ok3)
        assert_timeout(e3)
        return "outer fine"
      end)
      assert.is_true(ok2, tostring(v))
      assert.equals("outer fine", v)
    end)
  end)
end)

describe("timeouts and task groups", function()
  it("a timeout inside a child stays inside that child", function()
    vrun(function()
      local a, b
      corio.task_group(function(tg)
        a = tg:spawn(function()
          local ok, e = pcall(corio.timeout, 0.02, corio.sleep, 2)
          assert.is_false(ok)
          assert_timeout(e)
          return "timed out"
        end)
        b = tg:spawn(function() corio.sleep(0.05); return "sibling fine" end)
      end)
      assert.equals("timed out", a:result())
      assert.equals("sibling fine", b:result())
    end)
  end)

  it("an uncaught TimeoutError in a child is a child error", function()
    vrun(function()
      local ok, e = pcall(corio.task_group, function(tg)
        tg:spawn(function()
          local t <close> = corio.timeout(0.02)
          corio.sleep(2)
        end)
        tg:spawn(function() corio.sleep(2) end)
      end)
      assert.is_false(ok)
      assert.is_true(corio.ErrorGroup.is(e), tostring(e))
      assert.equals(1, #e.errors)
      assert_timeout(e.errors[1])
      only_me_alive()
    end)
  end)

  it("a group inside a timeout: children are cancelled and the TimeoutError comes from the scope that owns the deadline", function()
    vrun(function()
      local kids = {}
      local group_err
      local t0 = corio.now()
      local ok, e = pcall(function()
        local t <close> = corio.timeout(0.05)
        local ok2, e2 = pcall(function()
          local tg <close> = corio.task_group()
          for i = 1, 3 do
            kids[i] = tg:spawn(function() corio.sleep(2) end)
          end
        end)
        assert.is_false(ok2)
        group_err = e2
        error(e2, 0)
      end)
      assert.is_false(ok)
      assert_timeout(e)
      assert.is_true(corio.is_cancelled(group_err), "group raised: " .. tostring(group_err))
      assert.is_false(corio.ErrorGroup.is(group_err))
      assert.is_false(is_timeout(group_err))
      for i = 1, 3 do
        assert.is_true(kids[i]:done())
        assert.is_true(kids[i]:cancelled())
      end
      assert.is_true(corio.now() - t0 < 1.5)
      only_me_alive()
    end)
  end)

  it("a group in the function form of timeout", function()
    vrun(function()
      local kids = {}
      local ok, e = pcall(corio.timeout, 0.03, function()
        corio.task_group(function(tg)
          for i = 1, 3 do kids[i] = tg:spawn(function() corio.sleep(2) end) end
          corio.sleep(2)
        end)
      end)
      assert.is_false(ok)
      assert_timeout(e)
      for i = 1, 3 do assert.is_true(kids[i]:cancelled()) end
      only_me_alive()
    end)
  end)
end)
