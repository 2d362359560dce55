local corio = require "corio"
local helper = require "helper"

local function say_after(delay, what)
  corio.sleep(delay)
  return what
end

-- append after the call returns (`out[#out + 1] = f()` would take #out before f runs)
local function push(out, v) out[#out + 1] = v end

describe("corio.spawn", function()
  it("schedules the task but does not run it at once", function()
    local ran = false
    local seen_before, state_before
    helper.run(function()
      local t = corio.spawn(function() ran = true end)
      seen_before = ran
      state_before = tostring(t)
      corio.sleep(0)  -- the spawner yields: now the task runs
      assert.is_true(ran)
      assert.is_true(t:done())
    end)
    assert.is_false(seen_before)
    assert.truthy(state_before:find("pending", 1, true), state_before)
  end)

  it("starts a task even if nobody awaits it", function()
    local ran = false
    helper.run(function()
      corio.spawn(function() ran = true end)
      corio.sleep(0.01)
    end)
    assert.is_true(ran)
  end)

  it("passes arguments to the function", function()
    local got
    helper.run(function()
      corio.spawn(function(...) got = table.pack(...) end, "a", nil, 3):await()
    end)
    assert.equal(3, got.n)
    assert.equal("a", got[1])
    assert.is_nil(got[2])
    assert.equal(3, got[3])
  end)

  it("returns a task that starts once the spawner suspends", function()
    local order, before = {}, nil
    helper.run(function()
      local ts = {}
      for i = 1, 5 do
        ts[i] = corio.spawn(function() order[#order + 1] = i end)
      end
      before = #order
      corio.sleep(0)
      assert.equals(5, #order)  -- every one has run once
      for i = 1, 5 do ts[i]:await() end
    end)
    assert.equals(0, before)
    -- in spawn order, unless CORIO_SHUFFLE is set (an order corio does not promise)
    if not os.getenv("CORIO_SHUFFLE") then assert.same({ 1, 2, 3, 4, 5 }, order) end
    table.sort(order)
    assert.same({ 1, 2, 3, 4, 5 }, order)
  end)
end)

describe("task:await", function()
  it("returns all of the function's values, nil holes included", function()
    local r = helper.run(function()
      local t = corio.spawn(function(a, b) return a, nil, b, nil end, 1, 2)
      return table.pack(t:await())
    end)
    assert.equal(4, r.n)
    assert.equal(1, r[1])
    assert.is_nil(r[2])
    assert.equal(2, r[3])
    assert.is_nil(r[4])
  end)

  it("corio.await(task) does the same", function()
    local a, b = helper.run(function()
      local t = corio.spawn(function() corio.sleep(0.001); return "x", "y" end)
      return corio.await(t)
    end)
    assert.equal("x", a)
    assert.equal("y", b)
  end)

  it("lets any number of tasks await one task; the body runs once and all get the same results", function()
    local runs = 0
    local results = {}
    local shared = {}
    helper.run(function()
      local t = corio.spawn(function()
        runs = runs + 1
        corio.sleep(0.01)
        return shared, "same"
      end)
      local awaiters = {}
      for i = 1, 5 do
        awaiters[i] = corio.spawn(function()
          local a, b = t:await()
          results[i] = { a, b }
        end)
      end
      for i = 1, 5 do awaiters[i]:await() end
      -- awaiting again, after it finished, gives the same results
      local a, b = t:await()
      results[6] = { a, b }
      a, b = corio.await(t)
      results[7] = { a, b }
    end)
    assert.equal(1, runs)
    assert.equal(7, #results)
    for i = 1, 7 do
      assert.equal(shared, results[i][1])  -- the very same table
      assert.equal("same", results[i][2])
    end
  end)

  it("raises the same error value when the task failed (tables by identity)", function()
    local e = { reason = "bad" }
    local got1, got2, got3
    helper.run(function()
      local t = corio.spawn(function() corio.sleep(0); error(e) end)
      local ok
      ok, got1 = pcall(t.await, t)
      assert.is_false(ok)
      ok, got2 = pcall(t.await, t)  -- again
      assert.is_false(ok)
      ok, got3 = pcall(corio.await, t)
      assert.is_false(ok)
    end)
    assert.equal(e, got1)
    assert.equal(e, got2)
    assert.equal(e, got3)
  end)

  it("raises a string error unchanged (no traceback appended)", function()
    local got
    helper.run(function()
      local t = corio.spawn(function() error("plain failure", 0) end)
      local ok
      ok, got = pcall(t.await, t)
      assert.is_false(ok)
    end)
    assert.equal("plain failure", got)
  end)

  it("propagates through a chain of awaits", function()
    local e = {}
    local err = helper.run_error(function()
      local a = corio.spawn(function() corio.sleep(0.001); error(e) end)
      local b = corio.spawn(function() return a:await() end)
      local c = corio.spawn(function() return b:await() end)
      c:await()
    end)
    assert.equal(e, err)
  end)
end)

describe("task methods", function()
  it("done, result and error before and after success", function()
    helper.run(function()
      local t = corio.spawn(function() corio.sleep(0.01); return 1, nil, 3 end)
      assert.is_false(t:done())
      assert.is_false(t:cancelled())
      local ok, err = pcall(t.result, t)
      assert.is_false(ok)
      assert.truthy(tostring(err):find("not done", 1, true), tostring(err))
      assert.has_error(function() t:error() end)
      t:await()
      assert.is_true(t:done())
      assert.is_false(t:cancelled())
      local r = table.pack(t:result())
      assert.equal(3, r.n)
      assert.equal(1, r[1])
      assert.is_nil(r[2])
      assert.equal(3, r[3])
      assert.is_nil(t:error())
      assert.is_nil(t:traceback())
    end)
  end)

  it("done, result, error and traceback after failure", function()
    local e = { "failure" }
    helper.run(function()
      local function failing_body()
        corio.sleep(0)
        error(e)
      end
      local t = corio.spawn(failing_body)
      local ok = pcall(t.await, t)
      assert.is_false(ok)
      assert.is_true(t:done())
      assert.is_false(t:cancelled())
      assert.equal(e, t:error())
      local ok2, err2 = pcall(t.result, t)
      assert.is_false(ok2)
      assert.equal(e, err2)
      local tb = t:traceback()
      assert.equal("string", type(tb))
      assert.truthy(tb:find("failing_body", 1, true) or tb:find("task_spec.lua", 1, true), tb)
    end)
  end)

  it("has a default name 'task N' and set_name changes it", function()
    helper.run(function()
      local t1 = corio.spawn(function() end)
      local t2 = corio.spawn(function() end)
      assert.truthy(t1:name():match("^task %d+$"), t1:name())
      assert.truthy(t2:name():match("^task %d+$"), t2:name())
      assert.are_not.equal(t1:name(), t2:name())
      t1:set_name("worker")
      assert.equal("worker", t1:name())
      assert.truthy(tostring(t1):find("worker", 1, true))
      t1:await()
      t2:await()
      assert.equal("worker", t1:name())
    end)
  end)

  it("tostring shows the name and the state", function()
    local s = {}
    -- on the virtual clock: the main task's 1 ms sleep ends before the task's
    -- 10 ms one however loaded the machine is
    require("corio.testing").run(function()
      local fut = corio.future()
      local t = corio.spawn(function()
        s.running = tostring(corio.current_task())
        corio.sleep(0.01)
        fut:await()
      end)
      t:set_name("watched")
      s.pending = tostring(t)
      corio.sleep(0.001)
      s.waiting_sleep = tostring(t)
      corio.sleep(0.03)
      s.waiting_future = tostring(t)
      fut:set_result()
      t:await()
      s.done = tostring(t)
      local f = corio.spawn(function() error("x") end)
      f:set_name("broken")
      pcall(f.await, f)
      s.failed = tostring(f)
    end)
    for k, v in pairs(s) do
      if k ~= "failed" then
        assert.truthy(v:find("watched", 1, true), k .. ": " .. v)
      end
    end
    assert.truthy(s.pending:find("pending", 1, true), s.pending)
    assert.truthy(s.running:find("running", 1, true), s.running)
    assert.truthy(s.waiting_sleep:find("waiting", 1, true), s.waiting_sleep)
    assert.truthy(s.waiting_sleep:find("sleep", 1, true), s.waiting_sleep)
    assert.truthy(s.waiting_future:find("waiting", 1, true), s.waiting_future)
    assert.truthy(s.waiting_future:find("future", 1, true), s.waiting_future)
    assert.truthy(s.done:find("done", 1, true), s.done)
    assert.truthy(s.failed:find("broken", 1, true), s.failed)
    assert.truthy(s.failed:find("failed", 1, true), s.failed)
  end)

  it("add_done_callback is called once, with the task, after it finishes", function()
    local calls, arg, done_inside = 0, nil, nil
    local task
    helper.run(function()
      local called = corio.future()
      task = corio.spawn(function() corio.sleep(0.01); return 1 end)
      task:add_done_callback(function(t)
        calls = calls + 1
        arg = t
        done_inside = t:done()
        if not called:done() then called:set_result() end
      end)
      assert.equal(0, calls)
      called:await()
      corio.sleep(0.01)
    end)
    assert.equal(1, calls)
    assert.equal(task, arg)
    assert.is_true(done_inside)
  end)

  it("add_done_callback is called for a failed task too", function()
    local calls = 0
    helper.run(function()
      local called = corio.future()
      local t = corio.spawn(function() error("x") end)
      t:add_done_callback(function(tt)
        calls = calls + 1
        assert.is_true(tt:done())
        called:set_result()
      end)
      called:await()
      pcall(t.await, t)  -- retrieve the error
    end)
    assert.equal(1, calls)
  end)

  it("add_done_callback added after the task finished is still called, once", function()
    local calls, arg = 0, nil
    local task
    helper.run(function()
      task = corio.spawn(function() return "r" end)
      task:await()
      local called = corio.future()
      task:add_done_callback(function(t)
        calls = calls + 1
        arg = t
        if not called:done() then called:set_result() end
      end)
      called:await()
      corio.sleep(0.01)
    end)
    assert.equal(1, calls)
    assert.equal(task, arg)
  end)

  it("several done callbacks run in the order they were added", function()
    local order = {}
    helper.run(function()
      local called = corio.future()
      local t = corio.spawn(function() corio.sleep(0.001) end)
      for i = 1, 3 do
        t:add_done_callback(function()
          order[#order + 1] = i
          if i == 3 then called:set_result() end
        end)
      end
      called:await()
    end)
    assert.same({ 1, 2, 3 }, order)
  end)
end)

describe("corio.current_task and corio.all_tasks", function()
  it("current_task is never a task outside a run", function()
    local ok, v = pcall(corio.current_task)
    if ok then assert.is_nil(v) end
  end)

  it("current_task is the running task", function()
    local main_t, seen, child
    helper.run(function()
      main_t = corio.current_task()
      child = corio.spawn(function()
        seen = corio.current_task()
        corio.sleep(0)
        assert.equal(seen, corio.current_task())
      end)
      child:await()
      assert.equal(main_t, corio.current_task())
    end)
    assert.is_not_nil(main_t)
    assert.equal(child, seen)
    assert.are_not.equal(main_t, seen)
  end)

  it("all_tasks lists the live tasks, including the current one", function()
    helper.run(function()
      local me = corio.current_task()
      local all = corio.all_tasks()
      assert.equal(1, #all)
      assert.equal(me, all[1])
      local ts = {}
      for i = 1, 3 do ts[i] = corio.spawn(function() corio.sleep(0.01) end) end
      all = corio.all_tasks()
      assert.equal(4, #all)
      local set = {}
      for _, t in ipairs(all) do set[t] = true end
      assert.is_true(set[me])
      for i = 1, 3 do assert.is_true(set[ts[i]]) end
      for i = 1, 3 do ts[i]:await() end
      all = corio.all_tasks()
      assert.equal(1, #all)
      assert.equal(me, all[1])
    end)
  end)
end)

describe("tasks and the garbage collector", function()
  it("never loses a task nobody references", function()
    local finished = 0
    local N = 100
    helper.run(function()
      for i = 1, N do
        corio.spawn(function()
          local junk = {}
          for j = 1, 10 do junk[j] = { i, j } end
          corio.sleep(0.02 + (i % 5) * 0.002)
          finished = finished + #junk // 10  -- junk is still intact
        end)
      end
      local deadline = corio.now() + 3
      while finished < N and corio.now() < deadline do
        collectgarbage()
        collectgarbage()
        corio.sleep(0.002)
      end
    end)
    assert.equal(N, finished)
  end)

  it("never loses a task waiting on a future only it references", function()
    local finished = false
    helper.run(function()
      local setter
      do
        local fut = corio.future()
        corio.spawn(function()
          fut:await()
          finished = true
        end)
        setter = function() fut:set_result() end
      end
      for _ = 1, 5 do collectgarbage(); corio.sleep(0.001) end
      setter()
      for _ = 1, 5 do collectgarbage(); corio.sleep(0.001) end
    end)
    assert.is_true(finished)
  end)
end)

describe("many tasks", function()
  it("spawns and awaits 100,000 tasks", function()
    local N = 100000
    local sum = helper.run(function()
      local ts = {}
      for i = 1, N do ts[i] = corio.spawn(function() return i end) end
      local s = 0
      for i = 1, N do s = s + ts[i]:await() end
      return s
    end)
    assert.equal(N * (N + 1) // 2, sum)
  end)
end)

describe("say_after (awaiting versus spawning)", function()
  it("awaiting two sleeps in sequence takes about the sum", function()
    local out = {}
    local elapsed = helper.run(function()
      local t0 = corio.now()
      push(out, say_after(0.1, "hello"))
      push(out, say_after(0.2, "world"))
      return corio.now() - t0
    end)
    assert.same({ "hello", "world" }, out)
    assert.truthy(elapsed >= 0.29, "sequential took only " .. elapsed)
  end)

  it("spawning them first takes about the longest", function()
    local out = {}
    local elapsed = helper.run(function()
      local t0 = corio.now()
      local t1 = corio.spawn(function() push(out, say_after(0.1, "hello")) end)
      local t2 = corio.spawn(function() push(out, say_after(0.2, "world")) end)
      t1:await()
      t2:await()
      return corio.now() - t0
    end)
    assert.same({ "hello", "world" }, out)
    assert.truthy(elapsed >= 0.19, "concurrent took only " .. elapsed)
    assert.truthy(elapsed < 0.29, "concurrent took " .. elapsed)
  end)

  it("completion order follows the delays, not the start order", function()
    local out = {}
    helper.run(function()
      local ts = {}
      local delays = { 0.05, 0.01, 0.03, 0.02, 0.04 }
      for i, d in ipairs(delays) do
        ts[i] = corio.spawn(function() push(out, say_after(d, i)) end)
      end
      for i = 1, #ts do ts[i]:await() end
    end)
    assert.same({ 2, 4, 3, 5, 1 }, out)
  end)
end)
