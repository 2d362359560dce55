local corio = require "corio"
local helper = require "helper"

-- Run a Lua snippet in a fresh lua5.4 process (warnings on with -W), with the
-- same module paths as this busted run; returns its stdout and stderr together.
local function run_child(code, env)
  local path = helper.write_tmp(("package.path = %q\npackage.cpath = %q\n"):format(package.path, package.cpath) .. code)
  local p = assert(io.popen((env or "") .. " lua5.4 -W " .. path .. " 2>&1"))
  local out = p:read("a")
  p:close()
  os.remove(path)
  return out
end

describe("unhandled task errors", function()
  local seen
  before_each(function() seen = helper.capture_errors() end)
  after_each(function() helper.restore_errors() end)

  it("are reported once through the error handler, with err, traceback and task", function()
    local task
    finally(function()  -- do not leak a late report into the next test
      task = nil
      collectgarbage()
      collectgarbage()
    end)
    helper.run(function()
      task = corio.spawn(function() error("nobody listens") end)
      corio.sleep(0.01)
    end)
    collectgarbage()
    collectgarbage()
    assert.equal(1, #seen)
    assert.truthy(tostring(seen[1].err):find("nobody listens", 1, true), tostring(seen[1].err))
    assert.equal("string", type(seen[1].traceback))
    assert.equal(task, seen[1].task)
    -- still only once after another run and more collections
    helper.run(function() corio.sleep(0) end)
    collectgarbage()
    assert.equal(1, #seen)
  end)

  it("are reported when the task is garbage-collected, even before the run ends", function()
    local count_before_end
    helper.run(function()
      corio.spawn(function() error({ lost = true }) end)
      corio.sleep(0.005)
      for _ = 1, 5 do
        collectgarbage()
        corio.sleep(0)
      end
      count_before_end = #seen
    end)
    collectgarbage()
    assert.equal(1, #seen)
    assert.is_true(seen[1].err.lost)
    -- whether it was reported before or at the end, it was reported once
    assert.truthy(count_before_end <= 1)
  end)

  it("pass a table error to the handler as the same value", function()
    local e = {}
    helper.run(function()
      corio.spawn(function() corio.sleep(0); error(e) end)
      corio.sleep(0.01)
    end)
    assert.equal(1, #seen)
    assert.equal(e, seen[1].err)
  end)

  it("are reported for each failed task", function()
    helper.run(function()
      for i = 1, 3 do corio.spawn(function() error("fail " .. i) end) end
      corio.sleep(0.01)
    end)
    collectgarbage()
    assert.equal(3, #seen)
  end)

  it("are not reported when the error was awaited", function()
    helper.run(function()
      local t = corio.spawn(function() error("awaited") end)
      pcall(t.await, t)
      local t2 = corio.spawn(function() error("awaited via corio.await") end)
      pcall(corio.await, t2)
    end)
    collectgarbage()
    assert.equal(0, #seen)
  end)

  it("are not reported when the error was retrieved with result() or error()", function()
    helper.run(function()
      local t1 = corio.spawn(function() error("by result") end)
      local t2 = corio.spawn(function() error("by error") end)
      corio.sleep(0.01)
      pcall(t1.result, t1)
      assert.truthy(tostring(t2:error()):find("by error", 1, true))
    end)
    collectgarbage()
    assert.equal(0, #seen)
  end)

  it("are not reported when the error propagates out of corio.run", function()
    local err = helper.run_error(function() error("main fails") end)
    collectgarbage()
    assert.truthy(err:find("main fails", 1, true))
    assert.equal(0, #seen)
  end)

  it("an error in a loop callback is reported through the handler", function()
    helper.run(function()
      local loop = corio.loop()
      local done = corio.future()
      loop:call_soon(function() error("callback failed") end)
      loop:call_soon(function() done:set_result() end)
      done:await()
      corio.sleep(0.01)
    end)
    collectgarbage()
    assert.equal(1, #seen)
    assert.truthy(tostring(seen[1].err):find("callback failed", 1, true), tostring(seen[1].err))
  end)

  it("the default handler writes the error to stderr; set_error_handler(nil) restores it", function()
    local out = run_child([[
      local corio = require "corio"
      corio.run(function()
        corio.spawn(function() error("default handler shows me") end)
        corio.sleep(0.01)
      end)
      corio.set_error_handler(function(err) print("custom handler got: " .. tostring(err)) end)
      corio.run(function()
        corio.spawn(function() error("first custom") end)
        corio.sleep(0.01)
      end)
      corio.set_error_handler(nil)
      corio.run(function()
        corio.spawn(function() error("default again") end)
        corio.sleep(0.01)
      end)
      print("run ended")
    ]])
    assert.truthy(out:find("default handler shows me", 1, true), out)
    assert.truthy(out:find("custom handler got: [^\n]*first custom"), out)
    assert.truthy(out:find("default again", 1, true), out)
    assert.falsy(out:find("custom handler got: [^\n]*default again"), out)
    assert.truthy(out:find("run ended", 1, true), out)
  end)
end)

describe("tracebacks", function()
  it("a failed task's traceback mentions the function where the error happened", function()
    local tb
    helper.run(function()
      local function deep_failure_here()
        error("deep")
      end
      local function middle_layer()
        deep_failure_here()
        return 1
      end
      local t = corio.spawn(function()
        corio.sleep(0)
        middle_layer()
        return 1
      end)
      pcall(t.await, t)
      tb = t:traceback()
    end)
    assert.equal("string", type(tb))
    assert.truthy(tb:find("deep_failure_here", 1, true), tb)
    assert.truthy(tb:find("middle_layer", 1, true), tb)
    assert.truthy(tb:find("errors_spec.lua", 1, true), tb)
  end)

  it("the handler's traceback mentions the failing function too", function()
    local seen = helper.capture_errors()
    local ok, e = pcall(helper.run, function()
      local function unobserved_failure()
        error("unobserved")
      end
      corio.spawn(function() corio.sleep(0); unobserved_failure(); return 1 end)
      corio.sleep(0.01)
    end)
    helper.restore_errors()
    assert(ok, e)
    assert.equal(1, #seen)
    assert.truthy(seen[1].traceback:find("unobserved_failure", 1, true), seen[1].traceback)
  end)
end)

describe("corio.dump", function()
  it("lists every task with its name, state, what it waits on and a stack line", function()
    local text, main_name
    helper.run(function()
      main_name = corio.current_task():name()
      local fut = corio.future()
      local function napping_function()
        corio.sleep(0.05)
      end
      local function future_waiter()
        fut:await()
      end
      local s = corio.spawn(function() napping_function(); return 1 end)
      s:set_name("the-napper")
      local w = corio.spawn(function() future_waiter(); return 1 end)
      w:set_name("the-waiter")
      local p = corio.spawn(function() end)
      p:set_name("already-finished")
      corio.sleep(0.001)
      local q = corio.spawn(function() end)
      q:set_name("the-pending-one")
      text = corio.dump()
      fut:set_result()
      s:await()
      w:await()
      q:await()
      p:await()
    end)
    assert.equal("string", type(text))
    -- names
    assert.truthy(text:find(main_name, 1, true), text)
    assert.truthy(text:find("the-napper", 1, true), text)
    assert.truthy(text:find("the-waiter", 1, true), text)
    assert.truthy(text:find("the-pending-one", 1, true), text)
    -- finished tasks are not listed
    assert.falsy(text:find("already-finished", 1, true), text)
    -- states and what they wait on
    assert.truthy(text:find("running", 1, true), text)
    assert.truthy(text:find("waiting", 1, true), text)
    assert.truthy(text:find("pending", 1, true), text)
    assert.truthy(text:find("sleep", 1, true), text)
    assert.truthy(text:find("future", 1, true), text)
    -- Lua stack lines of the waiting tasks
    assert.truthy(text:find("errors_spec.lua:%d+"), text)
    assert.truthy(text:find("napping_function", 1, true), text)
    assert.truthy(text:find("future_waiter", 1, true), text)
  end)

  it("puts each task's own details near its name (the sleeper is shown sleeping)", function()
    local text
    helper.run(function()
      local s = corio.spawn(function() corio.sleep(0.02) end)
      s:set_name("lonely-napper")
      corio.sleep(0)
      text = corio.dump()
      s:await()
    end)
    -- what follows the task's name (its own entry) says it sleeps
    local i = text:find("lonely-napper", 1, true)
    assert.truthy(i, text)
    assert.truthy(text:find("sleep", i, true), text)
  end)

  it("names the task whose group a child belongs to", function()
    local text, owner
    helper.run(function()
      owner = tostring(corio.current_task()):match("^task (%d+)")
      corio.task_group(function(tg)
        tg:spawn(function() corio.sleep(0.02) end):set_name("grouped-child")
        corio.sleep(0)
        text = corio.dump()
      end)
    end)
    local line = text:match("[^\n]*grouped%-child[^\n]*")
    assert.truthy(line, text)
    assert.truthy(line:find("in the task group of task " .. owner, 1, true), line)
  end)
end)

describe("debug mode", function()
  it("corio.debug(true) and corio.debug(false) exist and do not break a run", function()
    assert.equal("function", type(corio.debug))
    local ok, err = pcall(function()
      corio.debug(true)
      local r = helper.run(function()
        corio.spawn(function() corio.sleep(0) end):await()
        return "fine"
      end)
      assert.equal("fine", r)
    end)
    corio.debug(false)
    assert(ok, err)
    assert.equal("fine too", helper.run(function() corio.sleep(0); return "fine too" end))
  end)

  local busy_script = [[
    local corio = require "corio"
    %s
    corio.run(function()
      local function busy_loop_without_checkpoint()
        local t0 = os.clock()
        while os.clock() - t0 < 0.25 do end
        corio.sleep(0)
      end
      corio.spawn(function()
        busy_loop_without_checkpoint()  -- called from Lua, so the traceback names it
        return true
      end):await()
    end)
    print("run ended")
  ]]

  it("with corio.debug(true), a task running > 100 ms without a checkpoint warns with its traceback", function()
    -- The warning goes through warn() (the child runs with warnings on: -W)
    -- or stderr; both are captured.
    local out = run_child(busy_script:format("corio.debug(true)"))
    assert.truthy(out:find("run ended", 1, true), out)
    assert.truthy(out:find("ran %d+ ms without a checkpoint"), out)
    assert.truthy(out:find("busy_loop_without_checkpoint", 1, true), out)
  end)

  it("CORIO_DEBUG=1 turns the same warning on", function()
    local out = run_child(busy_script:format(""), "CORIO_DEBUG=1")
    assert.truthy(out:find("run ended", 1, true), out)
    assert.truthy(out:find("ran %d+ ms without a checkpoint"), out)
    assert.truthy(out:find("busy_loop_without_checkpoint", 1, true), out)
  end)

  it("without debug mode there is no such warning", function()
    local out = run_child(busy_script:format("corio.debug(false)"), "CORIO_DEBUG=")
    assert.truthy(out:find("run ended", 1, true), out)
    assert.falsy(out:find("without a checkpoint", 1, true), out)
  end)
end)
