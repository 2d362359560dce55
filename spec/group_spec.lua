local corio = require "corio"
local helper = require "helper"

local on_close, err_value, contains = helper.on_close, helper.err_value, helper.contains

-- here the one task left must also be the current one
local function only_me_alive() helper.only_me_alive(true) end

-- Check that e is an ErrorGroup holding exactly the given error values.
local function assert_error_group(e, expected)
  assert.is_true(corio.ErrorGroup.is(e), "expected an ErrorGroup, got: " .. tostring(e))
  assert.equals(corio.ErrorGroup, getmetatable(e))
  assert.equals(#expected, #e.errors, "errors: " .. tostring(e))
  for _, v in ipairs(expected) do
    assert.is_true(contains(e.errors, v), "missing error " .. tostring(v) .. " in " .. tostring(e))
  end
  assert.equals(#e.errors, #e.tracebacks)
  for i = 1, #e.tracebacks do
    assert.equals("string", type(e.tracebacks[i]))
  end
  assert.is_false(corio.is_cancelled(e))
end

describe("task groups", function()
  it("<close> form waits for every child at the end of the block", function()
    helper.run(function()
      local log = {}
      do
        local tg <close> = corio.task_group()
        tg:spawn(function() corio.sleep(0.02); log[#log + 1] = "slow" end)
        tg:spawn(function() corio.sleep(0); log[#log + 1] = "fast" end)
        tg:spawn(function() log[#log + 1] = "now" end)
        assert.equals(0, #log)      -- children are scheduled, not run at once
      end
      assert.same({ "now", "fast", "slow" }, log)
      only_me_alive()
    end)
  end)

  it("function form runs the body with the group and waits for every child", function()
    helper.run(function()
      local n = 0
      local got
      corio.task_group(function(tg)
        got = tg
        for _ = 1, 5 do
          tg:spawn(function() corio.sleep(0.01); n = n + 1 end)
        end
      end)
      assert.is_not_nil(got)
      assert.equals(5, n)
      only_me_alive()
    end)
  end)

  it("tg:spawn returns a Task that carries the child's results", function()
    helper.run(function()
      local a, b
      do
        local tg <close> = corio.task_group()
        a = tg:spawn(function(x, y) corio.sleep(0); return x + y, "a" end, 1, 2)
        b = tg:spawn(function() return "b" end)
        local r1, r2 = a:await()   -- awaiting a child inside the body works
        assert.equals(3, r1)
        assert.equals("a", r2)
      end
      assert.is_true(a:done())
      assert.is_true(b:done())
      assert.equals("b", b:result())
      local r1, r2 = a:result()
      assert.equals(3, r1)
      assert.equals("a", r2)
    end)
  end)

  it("a child may spawn more children into the open group", function()
    helper.run(function()
      local n = 0
      do
        local tg <close> = corio.task_group()
        local function grow(depth)
          corio.sleep(0)
          n = n + 1
          if depth < 3 then
            tg:spawn(grow, depth + 1)
            tg:spawn(grow, depth + 1)
          end
        end
        tg:spawn(grow, 1)
      end
      assert.equals(7, n)
      only_me_alive()
    end)
  end)

  it("the first child error cancels the siblings and the body", function()
    helper.run(function()
      local boom = err_value("boom")
      local ready = corio.future()
      local seen = {}
      local sibling
      local t0 = corio.now()
      local ok, e = pcall(function()
        local tg <close> = corio.task_group()
        sibling = tg:spawn(function()
          local c <close> = on_close(function(err) seen.sibling_err = err end)
          ready:set_result(true)
          corio.sleep(10)
          seen.sibling_finished = true
        end)
        tg:spawn(function()
          ready:await()
          error(boom, 0)
        end)
        local ok2, e2 = pcall(corio.sleep, 10)
        seen.body = { ok2, e2 }
      end)
      assert.is_false(ok)
      assert_error_group(e, { boom })
      assert.is_false(seen.body[1])
      assert.is_true(corio.is_cancelled(seen.body[2]), "the body was not cancelled")
      assert.is_true(corio.is_cancelled(seen.sibling_err), "the sibling was not cancelled")
      assert.is_nil(seen.sibling_finished)
      assert.is_true(sibling:done())
      assert.is_true(sibling:cancelled())
      assert.is_true(corio.now() - t0 < 5)
      only_me_alive()
    end)
  end)

  it("function form raises an ErrorGroup too", function()
    helper.run(function()
      local ok, e = pcall(corio.task_group, function(tg)
        tg:spawn(function() corio.sleep(0); error("child failed", 0) end)
        tg:spawn(function() corio.sleep(10) end)
      end)
      assert.is_false(ok)
      assert_error_group(e, { "child failed" })
      only_me_alive()
    end)
  end)

  it("raises all child errors together as one ErrorGroup", function()
    helper.run(function()
      local ready = corio.future()
      local ok, e = pcall(function()
        local tg <close> = corio.task_group()
        tg:spawn(function()
          -- cancelled by the first failure; fails with its own error while unwinding
          ready:set_result(true)
          pcall(corio.sleep, 10)
          error("second failure", 0)
        end)
        tg:spawn(function()
          ready:await()
          error("first failure", 0)
        end)
      end)
      assert.is_false(ok)
      assert_error_group(e, { "first failure", "second failure" })
      local text = tostring(e)
      assert.is_truthy(text:find("first failure", 1, true), text)
      assert.is_truthy(text:find("second failure", 1, true), text)
      only_me_alive()
    end)
  end)

  it("ErrorGroup tracebacks point into the failing children", function()
    helper.run(function()
      local function failing_child_fn()
        corio.sleep(0)
        error("with traceback", 0)
      end
      local ok, e = pcall(corio.task_group, function(tg)
        tg:spawn(failing_child_fn)
      end)
      assert.is_false(ok)
      assert_error_group(e, { "with traceback" })
      assert.is_truthy(e.tracebacks[1]:find("group_spec.lua", 1, true), e.tracebacks[1])
    end)
  end)

  it("a cancellation from outside leaves as a plain cancellation, after every child finished", function()
    helper.run(function()
      local started = corio.future()
      local kids, ready = {}, {}
      local seen = { closed = 0 }
      local owner = corio.spawn(function()
        local ok, e = pcall(function()
          local after <close> = on_close(function()
            -- runs after the group's own close: every child must be finished
            local all = true
            for i = 1, #kids do all = all and kids[i]:done() end
            seen.all_done_at_block_end = all
            seen.closed_at_block_end = seen.closed
          end)
          local tg <close> = corio.task_group()
          for i = 1, 3 do
            ready[i] = corio.future()
            kids[i] = tg:spawn(function()
              local c <close> = on_close(function(err)
                seen.closed = seen.closed + 1
                seen["kid" .. i] = err
              end)
              ready[i]:set_result(true)
              corio.sleep(10)
            end)
          end
          for i = 1, 3 do ready[i]:await() end
          started:set_result(true)
          corio.sleep(10)
        end)
        seen.err = e
        error(e, 0)
      end)
      started:await()
      assert.is_true(owner:cancel("outside"))
      local ok, e = pcall(owner.await, owner)
      assert.is_false(ok)
      assert.is_true(corio.is_cancelled(e))
      assert.is_true(corio.is_cancelled(seen.err), "group raised: " .. tostring(seen.err))
      assert.is_false(corio.ErrorGroup.is(seen.err))
      assert.is_true(seen.all_done_at_block_end)
      assert.equals(3, seen.closed_at_block_end)
      for i = 1, 3 do
        assert.is_true(kids[i]:cancelled())
        assert.is_true(corio.is_cancelled(seen["kid" .. i]))
      end
      assert.is_true(owner:cancelled())
      only_me_alive()
    end)
  end)

  it("keeps errors raised in a child's __close", function()
    helper.run(function()
      local boom = err_value("boom")
      local cleanup = err_value("cleanup failed")
      local ready = corio.future()
      local ok, e = pcall(function()
        local tg <close> = corio.task_group()
        tg:spawn(function()
          local c <close> = on_close(function() error(cleanup, 0) end)
          ready:set_result(true)
          corio.sleep(10)        -- cancelled by boom; the __close error replaces the cancellation
        end)
        tg:spawn(function()
          ready:await()
          error(boom, 0)
        end)
      end)
      assert.is_false(ok)
      assert_error_group(e, { boom, cleanup })
      only_me_alive()
    end)
  end)

  it("keeps both the error of a child and the error its __close raised while unwinding it", function()
    helper.run(function()
      local first = err_value("first failure")
      local cleanup = err_value("cleanup failed too")
      local ok, e = pcall(corio.task_group, function(tg)
        tg:spawn(function()
          local c <close> = on_close(function() error(cleanup, 0) end)
          corio.sleep(0)
          error(first, 0)
        end)
      end)
      assert.is_false(ok)
      assert_error_group(e, { first, cleanup })
      assert.equals(first, e.errors[1], "the earlier error comes first")
      assert.truthy(e.tracebacks[1]:find("group_spec.lua", 1, true), e.tracebacks[1])
    end)
  end)

  it("keeps an error raised in the __close of a child that otherwise succeeded", function()
    helper.run(function()
      local cleanup = err_value("cleanup failed")
      local ok, e = pcall(corio.task_group, function(tg)
        tg:spawn(function()
          local c <close> = on_close(function() error(cleanup, 0) end)
          corio.sleep(0)
          return "fine"
        end)
      end)
      assert.is_false(ok)
      assert_error_group(e, { cleanup })
    end)
  end)

  it("a body error cancels the children and is reported in the ErrorGroup", function()
    helper.run(function()
      local bad = err_value("body failed")
      local kid, kid_err
      local t0 = corio.now()
      local ok, e = pcall(function()
        local tg <close> = corio.task_group()
        kid = tg:spawn(function()
          local c <close> = on_close(function(err) kid_err = err end)
          corio.sleep(10)
        end)
        corio.sleep(0)
        error(bad, 0)
      end)
      assert.is_false(ok)
      assert_error_group(e, { bad })
      assert.is_true(kid:cancelled())
      assert.is_true(corio.is_cancelled(kid_err))
      assert.is_true(corio.now() - t0 < 5)
      only_me_alive()
    end)
  end)

  it("a body error and a child error are reported together", function()
    helper.run(function()
      local bad = err_value("body failed")
      local child = err_value("child failed")
      local ok, e = pcall(corio.task_group, function(tg)
        tg:spawn(function()
          pcall(corio.sleep, 10)     -- cancelled because of the body error
          error(child, 0)
        end)
        corio.sleep(0)
        error(bad, 0)
      end)
      assert.is_false(ok)
      assert_error_group(e, { bad, child })
      only_me_alive()
    end)
  end)

  it("nests: an inner ErrorGroup becomes one error of the outer group", function()
    helper.run(function()
      local boom = err_value("inner boom")
      local sibling
      local ok, e = pcall(function()
        local outer <close> = corio.task_group()
        sibling = outer:spawn(function() corio.sleep(10) end)
        outer:spawn(function()
          local inner <close> = corio.task_group()
          inner:spawn(function() corio.sleep(0); error(boom, 0) end)
          inner:spawn(function() corio.sleep(10) end)
        end)
      end)
      assert.is_false(ok)
      assert.is_true(corio.ErrorGroup.is(e), tostring(e))
      assert.equals(1, #e.errors)
      local inner = e.errors[1]
      assert_error_group(inner, { boom })
      assert.is_true(sibling:cancelled())
      assert.is_truthy(tostring(e):find("inner boom", 1, true), tostring(e))
      only_me_alive()
    end)
  end)

  it("nests successfully", function()
    helper.run(function()
      local total = 0
      corio.task_group(function(outer)
        for _ = 1, 4 do
          outer:spawn(function()
            local inner <close> = corio.task_group()
            for _ = 1, 5 do
              inner:spawn(function() corio.sleep(0); total = total + 1 end)
            end
          end)
        end
      end)
      assert.equals(20, total)
      only_me_alive()
    end)
  end)

  it("spawning into a group after it closed raises", function()
    helper.run(function()
      local saved
      do
        local tg <close> = corio.task_group()
        saved = tg
        tg:spawn(function() end)
      end
      local ran = false
      assert.has_error(function() saved:spawn(function() ran = true end) end)
      local saved2
      corio.task_group(function(tg) saved2 = tg end)
      assert.has_error(function() saved2:spawn(function() ran = true end) end)
      corio.sleep(0)
      assert.is_false(ran)
      only_me_alive()
    end)
  end)

  it("never leaves a child running, whatever happened", function()
    helper.run(function()
      -- normal end
      do
        local tg <close> = corio.task_group()
        for i = 1, 10 do tg:spawn(function() corio.sleep(i % 3 == 0 and 0.01 or 0) end) end
      end
      only_me_alive()
      -- child error
      pcall(corio.task_group, function(tg)
        for _ = 1, 10 do tg:spawn(function() corio.sleep(10) end) end
        tg:spawn(function() corio.sleep(0); error("x") end)
      end)
      only_me_alive()
      -- body error
      pcall(corio.task_group, function(tg)
        for _ = 1, 10 do tg:spawn(function() corio.sleep(10) end) end
        error("body")
      end)
      only_me_alive()
      -- children that swallow the first cancellation
      pcall(corio.task_group, function(tg)
        for _ = 1, 10 do
          tg:spawn(function()
            pcall(corio.sleep, 10)
            pcall(corio.sleep, 10)
            corio.sleep(10)
          end)
        end
        corio.sleep(0)
        error("body")
      end)
      only_me_alive()
    end)
  end)

  it("runs 100,000 children in one group", function()
    helper.run(function()
      local n = 0
      local function child(i)
        if i % 2 == 0 then corio.sleep(0) end
        n = n + 1
      end
      -- the same children without a group, for scale: a group that cost
      -- more per child as it grows (a search of its slots, say) would take
      -- hundreds of times as long; valgrind or a loaded machine slows both
      local t0 = os.clock()
      local plain = {}
      for i = 1, 100000 do plain[i] = corio.spawn(child, i) end
      corio.gather(plain)
      local t_plain = os.clock() - t0
      assert.equals(100000, n)
      n = 0
      t0 = os.clock()
      do
        local tg <close> = corio.task_group()
        for i = 1, 100000 do tg:spawn(child, i) end
      end
      local t_group = os.clock() - t0
      assert.equals(100000, n)
      assert.is_true(t_group < 10 * t_plain + 0.5,
        ("100k children took %.2f s in a group, %.2f s without"):format(t_group, t_plain))
      only_me_alive()
    end)
  end)
end)
