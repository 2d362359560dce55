local corio = require "corio"
local helper = require "helper"

describe("corio.future", function()
  it("starts pending: not done, not cancelled, result() raises", function()
    helper.run(function()
      local f = corio.future()
      assert.is_false(f:done())
      assert.is_false(f:cancelled())
      assert.has_error(function() f:result() end)
      f:set_result()  -- leave nothing pending
    end)
  end)

  it("set_result stores all values; result() and await() return them", function()
    local r1, r2
    helper.run(function()
      local f = corio.future()
      f:set_result(1, nil, "three", nil)
      assert.is_true(f:done())
      assert.is_false(f:cancelled())
      r1 = table.pack(f:result())
      r2 = table.pack(f:await())
    end)
    for _, r in ipairs({ r1, r2 }) do
      assert.equal(4, r.n)
      assert.equal(1, r[1])
      assert.is_nil(r[2])
      assert.equal("three", r[3])
      assert.is_nil(r[4])
    end
  end)

  it("set_result with no values makes await return nothing", function()
    local n = helper.run(function()
      local f = corio.future()
      f:set_result()
      return select("#", f:await())
    end)
    assert.equal(0, n)
  end)

  it("set_error makes result() and await() raise the same value", function()
    local e = { "future failure" }
    local got_result, got_await, got_corio_await
    helper.run(function()
      local f = corio.future()
      f:set_error(e)
      assert.is_true(f:done())
      assert.is_false(f:cancelled())
      local ok
      ok, got_result = pcall(f.result, f)
      assert.is_false(ok)
      ok, got_await = pcall(f.await, f)
      assert.is_false(ok)
      ok, got_corio_await = pcall(corio.await, f)
      assert.is_false(ok)
    end)
    assert.equal(e, got_result)
    assert.equal(e, got_await)
    assert.equal(e, got_corio_await)
  end)

  it("set_error with a string raises that exact string", function()
    local got
    helper.run(function()
      local f = corio.future()
      f:set_error("string failure")
      local ok
      ok, got = pcall(f.await, f)
      assert.is_false(ok)
    end)
    assert.equal("string failure", got)
  end)

  it("setting a finished future raises", function()
    helper.run(function()
      local f = corio.future()
      f:set_result(1)
      local ok, err = pcall(f.set_result, f, 2)
      assert.is_false(ok)
      assert.truthy(tostring(err):find("already done", 1, true), tostring(err))
      assert.has_error(function() f:set_error("x") end)
      assert.equal(1, f:result())  -- unchanged

      local g = corio.future()
      g:set_error("first")
      assert.has_error(function() g:set_result(1) end)
      assert.has_error(function() g:set_error("second") end)
      local ok2, err2 = pcall(g.result, g)
      assert.is_false(ok2)
      assert.equal("first", err2)

      local h = corio.future()
      h:cancel()
      assert.has_error(function() h:set_result(1) end)
      assert.has_error(function() h:set_error("x") end)
      assert.is_true(h:cancelled())
    end)
  end)

  it("cancel() returns true for a pending future and false once it is finished", function()
    helper.run(function()
      local f = corio.future()
      assert.is_true(f:cancel())
      assert.is_true(f:done())
      assert.is_true(f:cancelled())
      assert.is_false(f:cancel())
      local g = corio.future()
      g:set_result("v")
      assert.is_false(g:cancel())
      assert.is_false(g:cancelled())
      assert.equal("v", g:result())
    end)
  end)

  it("result() of a cancelled future raises a cancellation error", function()
    local err
    helper.run(function()
      local f = corio.future()
      f:cancel("stop it")
      local ok
      ok, err = pcall(f.result, f)
      assert.is_false(ok)
    end)
    assert.is_true(corio.is_cancelled(err))
  end)

  it("awaiting a cancelled future raises a cancellation error (with the message)", function()
    local err
    helper.run(function()
      local f = corio.future()
      f:cancel("why not")
      local ok
      ok, err = pcall(f.await, f)
      assert.is_false(ok)
    end)
    assert.is_true(corio.is_cancelled(err))
    assert.equal("why not", err.message)
    assert.truthy(tostring(err):find("cancelled", 1, true), tostring(err))
  end)

  it("a task waiting on a future that gets cancelled wakes with a cancellation error and may go on", function()
    local err, after
    helper.run(function()
      local f = corio.future()
      local t = corio.spawn(function()
        local ok
        ok, err = pcall(f.await, f)
        assert.is_false(ok)
        -- the task itself was not cancelled: it keeps working
        after = corio.sleep(0.001, "after")
        return "finished"
      end)
      corio.sleep(0.001)
      f:cancel()
      assert.equal("finished", t:await())
      assert.is_false(t:cancelled())
    end)
    assert.is_true(corio.is_cancelled(err))
    assert.equal("after", after)
  end)

  it("await of a finished future returns at once, without yielding", function()
    local other_ran_before, other_ran_after
    helper.run(function()
      local ran = false
      local f = corio.future()
      f:set_result("ready")
      corio.spawn(function() ran = true end)
      assert.equal("ready", f:await())
      other_ran_before = ran
      local g = corio.future()
      g:set_error("bad")
      pcall(g.await, g)
      other_ran_after = ran
      corio.sleep(0)
      assert.is_true(ran)
    end)
    assert.is_false(other_ran_before)
    assert.is_false(other_ran_after)
  end)

  it("is resolved by another task (the awaiter suspends until then)", function()
    local a, b, waited = helper.run(function()
      local f = corio.future()
      corio.spawn(function()
        corio.sleep(0.02)
        f:set_result("hello", 42)
      end)
      local t0 = corio.now()
      local a, b = f:await()
      return a, b, corio.now() - t0
    end)
    assert.equal("hello", a)
    assert.equal(42, b)
    assert.truthy(waited >= 0.015, "waited only " .. waited)
  end)

  it("can fail from another task", function()
    local e = {}
    local err = helper.run_error(function()
      local f = corio.future()
      corio.spawn(function()
        corio.sleep(0.001)
        f:set_error(e)
      end)
      corio.await(f)
    end)
    assert.equal(e, err)
  end)

  it("wakes several awaiters with the same values", function()
    local got = {}
    local shared = {}
    helper.run(function()
      local f = corio.future()
      local ts = {}
      for i = 1, 4 do
        ts[i] = corio.spawn(function()
          local v, w = f:await()
          got[i] = { v, w }
        end)
      end
      corio.sleep(0)  -- all four are now waiting
      for i = 1, 4 do assert.is_nil(got[i]) end
      f:set_result(shared, "w")
      for i = 1, 4 do ts[i]:await() end
    end)
    for i = 1, 4 do
      assert.equal(shared, got[i][1])
      assert.equal("w", got[i][2])
    end
  end)

  it("wakes several awaiters with the same error", function()
    local got = {}
    local e = {}
    helper.run(function()
      local f = corio.future()
      local ts = {}
      for i = 1, 3 do
        ts[i] = corio.spawn(function()
          local ok, err = pcall(f.await, f)
          got[i] = { ok, err }
        end)
      end
      corio.sleep(0)
      f:set_error(e)
      for i = 1, 3 do ts[i]:await() end
    end)
    for i = 1, 3 do
      assert.is_false(got[i][1])
      assert.equal(e, got[i][2])
    end
  end)

  it("add_done_callback is called once with the future after it finishes", function()
    local calls, arg, done_inside = 0, nil, nil
    local fut
    helper.run(function()
      local called = corio.future()
      fut = corio.future()
      fut:add_done_callback(function(f)
        calls = calls + 1
        arg = f
        done_inside = f:done()
        if not called:done() then called:set_result() end
      end)
      corio.sleep(0.001)
      assert.equal(0, calls)
      fut:set_result("x")
      called:await()
      corio.sleep(0.01)
    end)
    assert.equal(1, calls)
    assert.equal(fut, arg)
    assert.is_true(done_inside)
  end)

  it("add_done_callback added after the future finished is still called", function()
    local calls = 0
    helper.run(function()
      local called = corio.future()
      local f = corio.future()
      f:set_error("e")
      f:add_done_callback(function(ff)
        calls = calls + 1
        assert.is_true(ff:done())
        if not called:done() then called:set_result() end
      end)
      called:await()
      corio.sleep(0.01)
      pcall(f.result, f)  -- retrieve the error
    end)
    assert.equal(1, calls)
  end)

  it("add_done_callback is called when the future is cancelled", function()
    local cancelled_seen
    helper.run(function()
      local called = corio.future()
      local f = corio.future()
      f:add_done_callback(function(ff)
        cancelled_seen = ff:cancelled()
        called:set_result()
      end)
      f:cancel()
      called:await()
    end)
    assert.is_true(cancelled_seen)
  end)
end)
