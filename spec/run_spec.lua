local corio = require "corio"
local helper = require "helper"

-- wall-clock seconds, independent of corio (to check that a run ends promptly)
local wall = helper.wall

describe("corio.run", function()
  it("returns every result of main, keeping nil holes", function()
    local r = table.pack(helper.run(function()
      return 1, nil, "x", nil
    end))
    assert.equal(4, r.n)
    assert.equal(1, r[1])
    assert.is_nil(r[2])
    assert.equal("x", r[3])
    assert.is_nil(r[4])
  end)

  it("returns nothing when main returns nothing", function()
    local r = table.pack(helper.run(function() end))
    assert.equal(0, r.n)
  end)

  it("passes its extra arguments to main", function()
    local n
    local r = table.pack(helper.run(function(...)
      n = select("#", ...)
      local a, b, c = ...
      return c, b, a
    end, 1, nil, "three"))
    assert.equal(3, n)
    assert.equal(3, r.n)
    assert.equal("three", r[1])
    assert.is_nil(r[2])
    assert.equal(1, r[3])
  end)

  it("runs main inside a task", function()
    local inside
    helper.run(function()
      inside = corio.current_task()
    end)
    assert.is_not_nil(inside)
  end)

  it("raises main's string error with the traceback appended", function()
    local err = helper.run_error(function()
      error("boom in main")
    end)
    assert.equal("string", type(err))
    assert.truthy(err:find("boom in main", 1, true))
    local nl = err:find("\n", 1, true)
    assert.truthy(nl, "no traceback appended: " .. err)
    -- the traceback part names this file (the function that failed lives here)
    assert.truthy(err:find("run_spec.lua", nl, true), err)
  end)

  it("keeps the original message first (message, newline, traceback)", function()
    local err = helper.run_error(function()
      error("plain message", 0)
    end)
    assert.equal("string", type(err))
    assert.equal("plain message\n", err:sub(1, #"plain message\n"))
  end)

  it("raises main's table error as the same value", function()
    local e = { code = 42 }
    local err = helper.run_error(function()
      error(e)
    end)
    assert.equal(e, err)  -- identity
    assert.equal(42, err.code)
  end)

  it("raises a non-string, non-table error unchanged", function()
    local err = helper.run_error(function()
      error(42)
    end)
    assert.equal(42, err)
  end)

  it("raises an error from a function main calls, after main awaited", function()
    local err = helper.run_error(function()
      corio.sleep(0)
      local function inner() error("late failure") end
      inner()
    end)
    assert.truthy(tostring(err):find("late failure", 1, true))
  end)

  it("cannot be nested: corio.run inside a run raises 'already running'", function()
    local inner_ran = false
    local ok, err, after = helper.run(function()
      local ok, err = pcall(corio.run, function() inner_ran = true end)
      -- the outer run keeps working afterwards
      local after = corio.sleep(0, "still fine")
      return ok, err, after
    end)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("already running", 1, true), tostring(err))
    assert.is_false(inner_ran)
    assert.equal("still fine", after)
  end)

  it("can be called again after a run ends, with a new loop each time", function()
    local stale = false
    assert.equal("first", helper.run(function()
      -- a task left sleeping belongs to this loop only
      corio.spawn(function() corio.sleep(0.05); stale = true end)
      corio.sleep(0.001)
      return "first"
    end))
    assert.has_error(function() corio.loop() end)  -- no loop between runs
    local n_tasks
    assert.equal("second", helper.run(function()
      n_tasks = #corio.all_tasks()
      corio.sleep(0.1)
      return "second"
    end))
    assert.equal(1, n_tasks)
    assert.is_false(stale)
    -- and after an error
    helper.run_error(function() error("x") end)
    assert.equal("third", helper.run(function() return "third" end))
  end)

  it("raises clearly when main is not a function", function()
    local err = helper.run_error(42)
    assert.truthy(tostring(err):find("function", 1, true), tostring(err))
    err = helper.run_error(nil)
    assert.truthy(tostring(err):find("function", 1, true), tostring(err))
    err = helper.run_error("main")
    assert.truthy(tostring(err):find("function", 1, true), tostring(err))
    -- and a good run still works afterwards
    assert.equal(1, helper.run(function() return 1 end))
  end)

  it("does not wait for call_later callbacks still pending when main returns", function()
    local fired = false
    local t0 = wall()
    helper.run(function()
      corio.loop():call_later(1.5, function() fired = true end)
    end)
    assert.truthy(wall() - t0 < 1.4, "corio.run waited for a pending call_later")
    assert.is_false(fired)
    -- nor does it fire in a later run
    helper.run(function() corio.sleep(1.6) end)
    assert.is_false(fired)
  end)
end)

describe("corio.now", function()
  it("is a float number of seconds that never goes backwards", function()
    helper.run(function()
      local prev = corio.now()
      assert.equal("number", type(prev))
      assert.equal("float", math.type(prev))
      for _ = 1, 1000 do
        local t = corio.now()
        assert.truthy(t >= prev)
        prev = t
        if _ % 100 == 0 then corio.sleep(0) end
      end
    end)
  end)

  it("advances across a sleep by at least the sleep", function()
    local d = helper.run(function()
      local t0 = corio.now()
      corio.sleep(0.05)
      return corio.now() - t0
    end)
    assert.truthy(d >= 0.045, "advanced only " .. d)
    assert.truthy(d < 1.0, "advanced " .. d)
  end)
end)

describe("corio.loop", function()
  it("raises outside a run", function()
    assert.has_error(function() corio.loop() end)
  end)

  it("returns the running loop inside a run", function()
    helper.run(function()
      local loop = corio.loop()
      assert.is_not_nil(loop)
      assert.equal(loop, corio.loop())
    end)
  end)

  it("call_soon runs callbacks in order and passes their arguments", function()
    local order, args = {}, nil
    helper.run(function()
      local loop = corio.loop()
      local done = corio.future()
      for i = 1, 5 do
        loop:call_soon(function(v) order[#order + 1] = v end, i)
      end
      loop:call_soon(function(...)
        args = table.pack(...)
      end, "x", nil, 3)
      loop:call_soon(function() done:set_result() end)
      assert.same({}, order)  -- not run at once
      done:await()
    end)
    assert.same({ 1, 2, 3, 4, 5 }, order)
    assert.equal(3, args.n)
    assert.equal("x", args[1])
    assert.is_nil(args[2])
    assert.equal(3, args[3])
  end)

  it("call_soon returns a handle whose cancel() prevents the call", function()
    local called = false
    helper.run(function()
      local loop = corio.loop()
      local h = loop:call_soon(function() called = true end)
      h:cancel()
      assert.is_true(h:cancelled())
      corio.sleep(0)
      corio.sleep(0.01)
    end)
    assert.is_false(called)
  end)

  it("call_later and call_at fire in order of their time, and cancel() prevents a call", function()
    local order = {}
    local fired_at = {}
    local started
    helper.run(function()
      local loop = corio.loop()
      local done = corio.future()
      started = loop:time()
      local function push(name)
        order[#order + 1] = name
        fired_at[name] = corio.now()
      end
      loop:call_later(0.06, function() push("c"); done:set_result() end)
      loop:call_later(0.02, push, "a")
      loop:call_at(loop:time() + 0.04, push, "b")
      local h = loop:call_later(0.03, push, "cancelled-later")
      local h2 = loop:call_at(loop:time() + 0.01, push, "cancelled-at")
      h:cancel()
      h2:cancel()
      assert.is_true(h:cancelled())
      assert.is_true(h2:cancelled())
      done:await()
      corio.sleep(0.02)
    end)
    assert.same({ "a", "b", "c" }, order)
    assert.truthy(fired_at.a - started >= 0.015, "a fired early")
    assert.truthy(fired_at.b - started >= 0.035, "b fired early")
    assert.truthy(fired_at.c - started >= 0.055, "c fired early")
  end)

  it("call_at with a time in the past runs soon", function()
    local ran = false
    helper.run(function()
      local loop = corio.loop()
      local done = corio.future()
      loop:call_at(loop:time() - 10, function() ran = true; done:set_result() end)
      done:await()
    end)
    assert.is_true(ran)
  end)

  it("callbacks are not listed in corio.all_tasks()", function()
    local n
    helper.run(function()
      local h = corio.loop():call_later(10, function() end)
      n = #corio.all_tasks()
      h:cancel()
    end)
    assert.equal(1, n)  -- only the main task
  end)

  it("loop:time() agrees with corio.now()", function()
    helper.run(function()
      local loop = corio.loop()
      assert.truthy(math.abs(loop:time() - corio.now()) < 0.01)
      corio.sleep(0.02)
      assert.truthy(math.abs(loop:time() - corio.now()) < 0.01)
    end)
  end)

  it("loop:stop() ends the run promptly (it does not hang on a long sleep)", function()
    -- DESIGN only says loop:stop() exists; the observable we rely on is that
    -- a stopped loop makes corio.run end (returning or raising), well before
    -- main's 10 s sleep would have finished, and leaves nothing behind.
    local t0 = wall()
    pcall(corio.run, function()
      corio.loop():stop()
      corio.sleep(10)
    end)
    assert.truthy(wall() - t0 < 2, "corio.run did not stop")
    collectgarbage()
    collectgarbage()
    local s = corio.core.stats()
    assert.equal(0, s.loops)
    assert.equal(0, s.tasks)
    assert.equal(0, s.handles)
    assert.equal("again", helper.run(function() return "again" end))
  end)
end)
