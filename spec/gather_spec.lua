local corio = require "corio"
local helper = require "helper"

-- ASSUMPTION (DESIGN.md: "the first to finish wins; the rest are cancelled"):
-- corio.race(a, b, ...) returns the winner's results (or raises its error).

local on_close, err_value, contains = helper.on_close, helper.err_value, helper.contains
local only_me_alive = helper.only_me_alive

-- cancel and reap tasks a test left pending
local function reap(list)
  for _, t in ipairs(list) do
    t:cancel()
    pcall(t.await, t)
  end
end

describe("corio.gather", function()
  it("takes functions, tasks and futures; returns the first value of each, in order", function()
    helper.run(function()
      local f = corio.future()
      local t = corio.spawn(function() corio.sleep(0.01); return "task", "extra" end)
      local setter = corio.spawn(function() corio.sleep(0.02); f:set_result("fut", "x") end)
      local n = select("#", corio.gather(
        function() return "fn", 2 end, t, f))
      assert.equals(3, n)
      local a, b, c = corio.gather(function() return "fn", 2 end, t, f)
      assert.equals("fn", a)
      assert.equals("task", b)
      assert.equals("fut", c)
      setter:await()
    end)
  end)

  it("keeps one value per argument, nil included", function()
    helper.run(function()
      local n = select("#", corio.gather(function() end, function() return 1 end, function() end))
      assert.equals(3, n)
      local a, b, c = corio.gather(function() end, function() return 1 end, function() end)
      assert.is_nil(a)
      assert.equals(1, b)
      assert.is_nil(c)
    end)
  end)

  it("runs function arguments as concurrent children", function()
    helper.run(function()
      -- each child waits for the others to start: run one after the other, this cannot finish
      local started = { corio.future(), corio.future(), corio.future() }
      local function child(i)
        return function()
          started[i]:set_result(true)
          for j = 1, 3 do started[j]:await() end
          corio.sleep(0)
          return i
        end
      end
      local a, b, c = corio.gather(child(1), child(2), child(3))
      assert.same({ 1, 2, 3 }, { a, b, c })
      only_me_alive()
    end)
  end)

  it("returns results in argument order even when inputs finish in another order", function()
    helper.run(function()
      local futs, order = {}, {}
      local fns = {}
      for i = 1, 4 do
        futs[i] = corio.future()
        fns[i] = function()
          local v = futs[i]:await()
          order[#order + 1] = i
          return v
        end
      end
      local driver = corio.spawn(function()
        for k, i in ipairs { 3, 1, 4, 2 } do
          corio.sleep(0)
          futs[i]:set_result("r" .. i)
          while #order < k do corio.sleep(0) end
        end
      end)
      local a, b, c, d = corio.gather(fns[1], fns[2], fns[3], fns[4])
      assert.same({ "r1", "r2", "r3", "r4" }, { a, b, c, d })
      assert.same({ 3, 1, 4, 2 }, order)
      driver:await()
    end)
  end)

  it("list form takes and returns a list", function()
    helper.run(function()
      local f = corio.future()
      f:set_result("f")
      local t = corio.spawn(function() corio.sleep(0); return "t" end)
      local r = corio.gather({ function() corio.sleep(0.01); return "fn" end, t, f })
      assert.equals("table", type(r))
      assert.same({ "fn", "t", "f" }, r)
      local empty = corio.gather({})
      assert.same({}, empty)
    end)
  end)

  it("list form with 10,000 tasks", function()
    helper.run(function()
      local tasks = {}
      for i = 1, 10000 do
        tasks[i] = corio.spawn(function()
          if i % 3 == 0 then corio.sleep(0) end
          return i
        end)
      end
      local r = corio.gather(tasks)
      assert.equals(10000, #r)
      local sum = 0
      for i = 1, 10000 do
        assert(r[i] == i, "wrong result at " .. i)
        sum = sum + r[i]
      end
      assert.equals(10000 * 10001 // 2, sum)
      only_me_alive()
    end)
  end)

  it("raises an error of a later input at once, while an earlier one is still pending", function()
    helper.run(function()
      local boom = err_value("late boom")
      local t0 = corio.now()
      local slow = corio.spawn(corio.sleep, 10)
      local tasks = { slow }
      for i = 2, 50 do tasks[i] = corio.spawn(corio.sleep, 10) end
      tasks[51] = corio.spawn(function() corio.sleep(0.01); error(boom, 0) end)
      local ok, e = pcall(corio.gather, tasks)
      assert.is_false(ok)
      assert.is_true(rawequal(boom, e), "raised: " .. tostring(e))
      assert.is_true(corio.now() - t0 < 5, "gather waited for the slow input first")
      assert.is_true(slow:cancelled())
      for i = 2, 50 do assert.is_true(tasks[i]:cancelled()) end
    end)
  end)

  it("on the first error cancels and awaits every pending input, then raises that error", function()
    helper.run(function()
      local boom = err_value("boom")
      local child_ready, ext_ready = corio.future(), corio.future()
      local seen = {}
      local ext = corio.spawn(function()
        local c <close> = on_close(function(err) seen.ext_closed = err end)
        ext_ready:set_result(true)
        corio.sleep(10)
      end)
      local pending_future = corio.future()
      local t0 = corio.now()
      local ok, e = pcall(corio.gather,
        function()
          child_ready:await()
          ext_ready:await()
          error(boom, 0)
        end,
        ext,
        function()
          local c <close> = on_close(function(err) seen.child_closed = err end)
          child_ready:set_result(true)
          corio.sleep(10)
        end,
        pending_future)
      assert.is_false(ok)
      assert.is_true(rawequal(boom, e), "raised: " .. tostring(e))
      -- every pending input was cancelled, and had finished when gather raised
      assert.is_true(corio.is_cancelled(seen.child_closed), "the pending child did not finish first")
      assert.is_true(corio.is_cancelled(seen.ext_closed), "the pending task did not finish first")
      assert.is_true(ext:done())
      assert.is_true(ext:cancelled())
      assert.is_true(pending_future:cancelled())
      assert.is_true(corio.now() - t0 < 5)
      only_me_alive()
    end)
  end)

  it("list form raises the first error too", function()
    helper.run(function()
      local boom = err_value("boom")
      local tasks = {}
      for i = 1, 100 do
        tasks[i] = corio.spawn(function()
          corio.sleep(0)
          if i == 50 then error(boom, 0) end
          corio.sleep(10)
        end)
      end
      local ok, e = pcall(corio.gather, tasks)
      assert.is_false(ok)
      assert.is_true(rawequal(boom, e))
      for i = 1, 100 do
        if i ~= 50 then
          assert.is_true(tasks[i]:cancelled(), "task " .. i .. " not cancelled")
        end
      end
      only_me_alive()
    end)
  end)

  it("when gather itself is cancelled, its inputs are cancelled too", function()
    helper.run(function()
      local child_ready, ext_ready = corio.future(), corio.future()
      local seen = {}
      local ext = corio.spawn(function()
        ext_ready:set_result(true)
        corio.sleep(10)
      end)
      local g = corio.spawn(function()
        return corio.gather(ext, function()
          local c <close> = on_close(function(err) seen.child_closed = err end)
          child_ready:set_result(true)
          corio.sleep(10)
        end)
      end)
      child_ready:await()
      ext_ready:await()
      assert.is_true(g:cancel("stop"))
      local ok, e = pcall(g.await, g)
      assert.is_false(ok)
      assert.is_true(corio.is_cancelled(e))
      assert.is_true(g:cancelled())
      assert.is_true(corio.is_cancelled(seen.child_closed), "the child was not cancelled and finished")
      local ok2, e2 = pcall(ext.await, ext)
      assert.is_false(ok2)
      assert.is_true(corio.is_cancelled(e2))
      assert.is_true(ext:cancelled())
      only_me_alive()
    end)
  end)
end)

describe("corio.settle", function()
  it("never raises for a child and reports every outcome in order", function()
    helper.run(function()
      local boom = err_value("boom")
      local ferr = err_value("future failed")
      local ok_t = corio.spawn(function() corio.sleep(0); return 1, 2 end)
      local bad_t = corio.spawn(function() corio.sleep(0); error(boom, 0) end)
      local fut = corio.future()
      local setter = corio.spawn(function() corio.sleep(0.01); fut:set_error(ferr) end)
      local cancelled_t = corio.spawn(function() corio.sleep(10) end)
      cancelled_t:cancel()
      local r = corio.settle({
        ok_t,
        bad_t,
        function() corio.sleep(0); return "x" end,
        fut,
        cancelled_t,
        function() error("fn failed", 0) end,
      })
      assert.equals(6, #r)
      assert.is_true(r[1].ok)
      assert.equals(1, r[1][1])
      assert.equals(2, r[1][2])
      assert.is_false(r[2].ok)
      assert.is_true(rawequal(boom, r[2].error))
      assert.is_true(r[3].ok)
      assert.equals("x", r[3][1])
      assert.is_false(r[4].ok)
      assert.is_true(rawequal(ferr, r[4].error))
      assert.is_false(r[5].ok)
      assert.is_true(corio.is_cancelled(r[5].error))
      assert.is_false(r[6].ok)
      assert.equals("fn failed", r[6].error)
      setter:await()
      only_me_alive()
    end)
  end)
end)

describe("corio.wait", function()
  it("first_completed returns as soon as one is done; the rest stay pending and are not cancelled", function()
    helper.run(function()
      local fb, fc = corio.future(), corio.future()
      local a = corio.spawn(function() corio.sleep(0); return "a" end)
      local b = corio.spawn(function() return fb:await() end)
      local c = corio.spawn(function() return fc:await() end)
      local done, pending = corio.wait({ a, b, c }, { return_when = "first_completed" })
      assert.equals(1, #done)
      assert.equals(a, done[1])
      assert.equals(2, #pending)
      assert.is_true(contains(pending, b))
      assert.is_true(contains(pending, c))
      assert.is_false(b:done())
      assert.is_false(c:done())
      corio.sleep(0)
      assert.is_false(b:done())
      fb:set_result("b")
      fc:set_result("c")
      assert.equals("b", b:await())
      assert.equals("c", c:await())
    end)
  end)

  it("first_error returns at the first failure, without raising it", function()
    helper.run(function()
      local boom = err_value("boom")
      local fc = corio.future()
      local a = corio.spawn(function() return "a" end)
      local b = corio.spawn(function() corio.sleep(0); corio.sleep(0); error(boom, 0) end)
      local c = corio.spawn(function() return fc:await() end)
      local done, pending = corio.wait({ a, b, c }, { return_when = "first_error" })
      assert.equals(2, #done)
      assert.is_true(contains(done, a))
      assert.is_true(contains(done, b))
      assert.same({ c }, pending)
      assert.is_false(c:done())
      assert.is_true(rawequal(boom, b:error()))
      fc:set_result("c")
      assert.equals("c", c:await())
    end)
  end)

  it("first_error without any failure waits for all", function()
    helper.run(function()
      local ts = {}
      for i = 1, 5 do
        ts[i] = corio.spawn(function() corio.sleep(0.002 * i); return i end)
      end
      local done, pending = corio.wait(ts, { return_when = "first_error" })
      assert.equals(5, #done)
      assert.equals(0, #pending)
      for i = 1, 5 do assert.equals(i, ts[i]:result()) end
    end)
  end)

  it("all_completed waits for every task, failures included", function()
    helper.run(function()
      local ts = {}
      for i = 1, 5 do
        ts[i] = corio.spawn(function()
          corio.sleep(0.002 * i)
          if i == 2 then error("two", 0) end
          return i
        end)
      end
      local done, pending = corio.wait(ts, { return_when = "all_completed" })
      assert.equals(5, #done)
      assert.equals(0, #pending)
      for i = 1, 5 do
        assert.is_true(contains(done, ts[i]))
        assert.is_true(ts[i]:done())
      end
      assert.equals("two", ts[2]:error())
    end)
  end)

  it("timeout returns what is done; pending tasks are not cancelled", function()
    helper.run(function()
      local fa = corio.future()
      local a = corio.spawn(function() return fa:await() end)
      local b = corio.spawn(function() corio.sleep(0); return "b" end)
      local t0 = corio.now()
      local done, pending = corio.wait({ a, b }, { timeout = 0.05, return_when = "all_completed" })
      local elapsed = corio.now() - t0
      assert.is_true(elapsed >= 0.04 and elapsed < 5, "elapsed " .. elapsed)
      assert.same({ b }, done)
      assert.same({ a }, pending)
      assert.is_false(a:done())
      assert.is_false(a:cancelled())
      corio.sleep(0.01)
      assert.is_false(a:done())
      fa:set_result("a")
      assert.equals("a", a:await())
    end)
  end)
end)

describe("corio.as_completed", function()
  it("yields tasks in completion order", function()
    helper.run(function()
      local futs, tasks = {}, {}
      for i = 1, 3 do
        futs[i] = corio.future()
        tasks[i] = corio.spawn(function() return futs[i]:await() end)
      end
      local driver = corio.spawn(function()
        for _, i in ipairs { 3, 1, 2 } do
          corio.sleep(0)
          futs[i]:set_result(i)
          tasks[i]:await()
        end
      end)
      local order = {}
      for t in corio.as_completed(tasks) do
        order[#order + 1] = t:await()
      end
      assert.same({ 3, 1, 2 }, order)
      driver:await()
    end)
  end)

  it("with a timeout raises TimeoutError after yielding what finished in time", function()
    helper.run(function()
      local never = corio.future()
      local slow = corio.spawn(function() return never:await() end)
      local fast = corio.spawn(function() corio.sleep(0.01); return "fast" end)
      local got = {}
      local t0 = corio.now()
      local ok, e = pcall(function()
        for t in corio.as_completed({ slow, fast }, { timeout = 0.05 }) do
          got[#got + 1] = t:await()
        end
      end)
      local elapsed = corio.now() - t0
      assert.is_false(ok)
      assert.is_true(corio.TimeoutError.is(e), "got: " .. tostring(e))
      assert.same({ "fast" }, got)
      assert.is_true(elapsed >= 0.04 and elapsed < 5, "elapsed " .. elapsed)
      reap { slow }
    end)
  end)
end)

describe("corio.race", function()
  it("the first to finish wins; the rest are cancelled and finished before it returns", function()
    helper.run(function()
      local ready = corio.future()
      local seen = {}
      local v = corio.race(
        function() ready:await(); return "fast" end,
        function()
          local c <close> = on_close(function(err) seen.slow_closed = err end)
          ready:set_result(true)
          corio.sleep(10)
        end)
      assert.equals("fast", v)
      assert.is_true(corio.is_cancelled(seen.slow_closed), "the loser was not finished when race returned")
      only_me_alive()
    end)
  end)

  it("works with tasks: the losers are cancelled and done when it returns", function()
    helper.run(function()
      local f1, f2 = corio.future(), corio.future()
      local t1 = corio.spawn(function() return f1:await() end)
      local t2 = corio.spawn(function() return f2:await() end)
      local t3 = corio.spawn(function() corio.sleep(10) end)
      local driver = corio.spawn(function() corio.sleep(0); f2:set_result("two") end)
      local v = corio.race(t1, t2, t3)
      assert.equals("two", v)
      assert.is_true(t1:done())
      assert.is_true(t1:cancelled())
      assert.is_true(t3:done())
      assert.is_true(t3:cancelled())
      assert.equals("two", t2:result())
      driver:await()
      only_me_alive()
    end)
  end)

  it("an error in the first finisher propagates and the rest are cancelled", function()
    helper.run(function()
      local boom = err_value("boom")
      local ready = corio.future()
      local seen = {}
      local ok, e = pcall(corio.race,
        function()
          local c <close> = on_close(function(err) seen.slow_closed = err end)
          ready:set_result(true)
          corio.sleep(10)
        end,
        function() ready:await(); error(boom, 0) end)
      assert.is_false(ok)
      assert.is_true(rawequal(boom, e), "raised: " .. tostring(e))
      assert.is_true(corio.is_cancelled(seen.slow_closed))
      only_me_alive()
    end)
  end)
end)

describe("combinators and stderr", function()
  -- wait, as_completed and race must not report internal errors of their own
  it("wait, as_completed and race print nothing to stderr", function()
    local script = [[
      local corio = require "corio"
      corio.run(function()
        local function mk() return { corio.spawn(function() return 1 end), corio.spawn(function() corio.sleep(0); return 2 end) } end
        corio.wait(mk(), { return_when = "first_completed" })
        corio.wait(mk(), { return_when = "all_completed" })
        for t in corio.as_completed(mk()) do t:await() end
        corio.race(table.unpack(mk()))
        corio.sleep(0.01)
      end)
      io.stdout:write("finished")
    ]]
    local src, errf = os.tmpname(), os.tmpname()
    local f = assert(io.open(src, "w"))
    f:write(("package.path = %q; package.cpath = %q\n"):format(package.path, package.cpath), script)
    f:close()
    local p = assert(io.popen(("lua5.4 %s 2>%s"):format(src, errf)))
    local out = p:read("a")
    p:close()
    local ef = assert(io.open(errf))
    local err = ef:read("a")
    ef:close()
    os.remove(src)
    os.remove(errf)
    assert.equals("finished", out)
    assert.equals("", err)
  end)
end)
