-- corio.testing.checkpoints and corio.testing.track (docs/testing.md), and
-- the sweep of spec/cancel_inject.lua: it must catch what it is there to
-- catch (a lock left held, an item lost, a task or fd left behind).
local corio = require "corio"
local testing = corio.testing
local inject = require "cancel_inject"

describe("corio.testing.checkpoints", function()
  it("counts the checkpoints of a task and of what it spawns", function()
    local t, n = testing.run(function()
      return testing.checkpoints(function()
        corio.sleep(1)
        local c = corio.spawn(function() corio.sleep(1); corio.sleep(0) end)
        c:await()
        return "r"
      end)
    end)
    assert.equals("r", t:result())
    -- sleep, await, the child's two sleeps
    assert.equals(4, n)
  end)

  it("does not count the tasks of others, nor loop callbacks", function()
    testing.run(function()
      local other = corio.spawn(function() for _ = 1, 5 do corio.sleep(0.1) end end)
      local _, n = testing.checkpoints(function()
        local f = corio.future()
        corio.loop():call_later(0.2, function() corio.sleep(0); f:set_result(1) end)
        f:await()
      end)
      assert.equals(1, n)
      other:await()
    end)
  end)

  it("cancels the task waiting at the k-th checkpoint", function()
    testing.run(function()
      local reached = {}
      local t, n = testing.checkpoints(function()
        local c = corio.spawn(function()
          reached.child = true
          corio.sleep(5)
          reached.child_after = true
        end)
        corio.sleep(1)  -- 1 (then the child's sleep is 2)
        -- the child was cancelled at 2 and has ended: no wait
        local ok, err = pcall(c.await, c)
        reached.err = err
        assert(not ok)
        corio.sleep(1)  -- 3
        return "handled"
      end, { cancel_at = 2 })
      assert.equals("handled", t:result())
      assert.equals(3, n)
      assert.is_true(reached.child)
      assert.is_nil(reached.child_after)
      assert.is_true(corio.is_cancelled(reached.err))
      assert.matches("injected at checkpoint 2", tostring(reached.err), 1, true)
    end)
  end)

  it("cancels the root task instead with cancel = \"root\"", function()
    testing.run(function()
      local child
      local t = testing.checkpoints(function()
        local tg <close> = corio.task_group()
        child = tg:spawn(function() corio.sleep(1); corio.sleep(5) end)
      end, { cancel_at = 2, cancel = "root" })
      assert.is_true(t:cancelled())
      assert.is_true(child:cancelled())
      assert.matches("injected at checkpoint 2", tostring(t:error()), 1, true)
    end)
  end)

  it("with cancel_when = \"woken\", the woken wait completes and the next checkpoint raises", function()
    testing.run(function()
      local got
      local t = testing.checkpoints(function()
        local f = corio.future()
        corio.spawn(function() f:set_result("v") end)
        got = f:await()  -- 1
        corio.sleep(0)   -- raises
        got = "not cancelled"
      end, { cancel_at = 1, cancel_when = "woken" })
      assert.equals("v", got)
      assert.is_true(t:cancelled())
    end)
  end)

  it("past the last checkpoint, nothing is cancelled", function()
    testing.run(function()
      local t, n = testing.checkpoints(function() corio.sleep(1); return 1 end,
                                       { cancel_at = 5 })
      assert.equals(1, n)
      assert.equals(1, t:result())
    end)
  end)

  it("testing.track adds a task the loop spawned", function()
    testing.run(function()
      local _, n = testing.checkpoints(function()
        local done = corio.event()
        local srv <close> = assert(corio.serve("127.0.0.1", 0, function(s)
          testing.track()
          s:read_line()
          s:read_line()
          s:close()
          done:set()
        end))
        local _, port = srv:address()
        local s <close> = assert(corio.connect("127.0.0.1", port))
        s:write("a\nb\n")
        done:wait()
      end)
      assert.is_true(n >= 3)
    end)
  end)

  it("checks its arguments", function()
    testing.run(function()
      assert.has_error(function() testing.checkpoints(42) end,
        "corio.testing.checkpoints: bad argument #1 (function expected, got number)")
      assert.has_error(function() testing.checkpoints(print, { cancel_at = -1 }) end,
        "corio.testing.checkpoints: cancel_at must be an integer >= 0, got -1")
      assert.has_error(function() testing.checkpoints(print, { cancel = "all" }) end,
        "corio.testing.checkpoints: cancel must be \"waiter\" or \"root\", got all")
      assert.has_error(function() testing.checkpoints(print, { cancel_when = "x" }) end,
        "corio.testing.checkpoints: cancel_when must be \"waiting\" or \"woken\", got x")
      assert.has_error(function() testing.track(42) end,
        "corio.testing.track: bad argument #1 (task expected, got number)")
    end)
    assert.has_error(function() testing.checkpoints(print) end,
      "corio.testing.checkpoints: only inside corio.testing.run")
  end)
end)

describe("the cancellation sweep", function()
  local function sweep_error(sc)
    local ok, err = pcall(inject.sweep, sc)
    assert.is_false(ok)
    return tostring(err)
  end

  it("catches a lock left held (acquired without <close>)", function()
    local err = sweep_error {
      name = "careless lock",
      setup = function(st) st.lock = corio.lock() end,
      body = function(st)
        st.lock:acquire()
        corio.sleep(1)
        st.lock:release()
      end,
      check = function(st) assert(not st.lock:locked(), "the lock is still held") end,
    }
    assert.matches("careless lock, cancelled at checkpoint 1 of the waiter, waiting: ", err, 1, true)
    assert.matches("the lock is still held", err, 1, true)
  end)

  it("catches an item lost by a get that is cancelled after taking it", function()
    local err = sweep_error {
      name = "lossy get",
      setup = function(st) st.q = corio.queue(); st.q:put_nowait("x"); st.got = {} end,
      body = function(st)
        local item = st.q:get_nowait()
        corio.sleep(0)  -- a checkpoint while the item is held nowhere
        st.got[#st.got + 1] = item
      end,
      check = function(st)
        assert(#st.got + st.q:qsize() == 1, "an item was lost")
      end,
    }
    assert.matches("an item was lost", err, 1, true)
  end)

  it("catches a task left running, and a <close> handler that did not run", function()
    local err = sweep_error {
      name = "stray task",
      body = function() corio.spawn(corio.sleep, 10); corio.sleep(1) end,
      modes = { "root" },
    }
    assert.matches("still running", err, 1, true)
    err = sweep_error {
      name = "unclosed",
      body = function(st)
        local c = inject.closer(st, "never")  -- not <close>: its handler never runs
        corio.sleep(1)
        getmetatable(c).__close(c)
      end,
    }
    assert.matches("<close> never: opened 1, handler ran 0 times", err, 1, true)
  end)

  it("catches an fd left open", function()
    local err = sweep_error {
      name = "fd",
      body = function(st)
        local f = assert(io.open("/dev/zero"))
        corio.sleep(1)
        f:close()
        st.closed_ok = true
      end,
    }
    assert.matches("still open", err, 1, true)
  end)
end)
