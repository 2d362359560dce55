-- Sharp edges met by new users and by misuse: scopes made without <close>,
-- where cancellations come from, self checks, argument errors, typed
-- queue errors, nested runs, hangs, durations, use after a run.
local corio = require "corio"
local helper = require "helper"

local run, run_error, settle = helper.run, helper.run_error, helper.settle

-- error_of(fn, ...) -> the error fn raised, as text
local function error_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return tostring(err)
end

local function has(text, part)
  assert.truthy(text:find(part, 1, true), ("%q not found in %q"):format(part, text))
end

describe("a scope made without <close>", function()
  it("is reported where it was made once its maker has returned, and stops cancelling", function()
    run(function()
      local function quick()
        local t = corio.timeout(0.01)  -- luacheck: ignore (the mistake under test)
        return "ok"
      end
      local line = debug.getinfo(1, "l").currentline - 3
      assert.equal("ok", quick())
      local err = error_of(corio.sleep, 1)
      has(err, ("timeout(0.01) made at %s:%d was never closed"):format(
        debug.getinfo(1, "S").short_src, line))
      has(err, "use local t <close> = corio.timeout(...)")
      corio.sleep(0.02)       -- no longer cancelled
      corio.sleep(0)
    end)
  end)

  it("is reported for a task group too", function()
    run(function()
      local function make()
        local tg = corio.task_group()
        tg:spawn(function() error("child failed") end)
        return tg
      end
      local tg = make()
      local err = error_of(corio.sleep, 1)
      has(err, "task_group() made at")
      has(err, "was never closed: use local tg <close> = corio.task_group()")
      corio.sleep(0)          -- no longer cancelled
      pcall(getmetatable(tg).__close, tg)
    end)
  end)

  it("does not outlive a task that ends inside it (its deadline, a dump)", function()
    run(function()
      do
        local tasks = {}
        for i = 1, 10 do
          tasks[i] = corio.spawn(function()
            local function forgets()
              local _ = corio.timeout(0.02)
              local tg = corio.task_group()
              tg:spawn(corio.sleep, 0.03)
            end
            forgets()
          end)
        end
        for _, t in ipairs(tasks) do t:await() end
      end
      collectgarbage()
      collectgarbage()
      corio.sleep(0.05)       -- the deadlines pass: nothing reaches the ended tasks
      assert.truthy(corio.dump():find("corio: 1 task", 1, true))
    end)
  end)

  it("is left when an outer scope closes, with the same report", function()
    run(function()
      local err = error_of(function()
        local outer <close> = corio.timeout(10)
        local function forgets() local _ = corio.timeout(10) end
        forgets()
      end)
      has(err, "timeout(10) made at")
      has(err, "was never closed")
      corio.sleep(0)
    end)
  end)
end)

describe("cancellations name their cause", function()
  it("a timeout, with where it was made", function()
    run(function()
      local seen
      local ok, err = pcall(function()
        local _t <close> = corio.timeout(0.01)
        local ok2, e = pcall(corio.sleep, 1)
        assert.is_false(ok2)
        seen = tostring(e)
        error(e, 0)
      end)
      assert.is_false(ok)
      assert.truthy(corio.TimeoutError.is(err))
      has(seen, "cancelled: timeout(0.01) made at ")
      has(tostring(err), "timeout(0.01) made at ")
    end)
  end)

  it("a failed task group, a task:cancel message, the end of the run", function()
    local at_end
    run(function()
      local child_err
      pcall(corio.task_group, function(tg)
        tg:spawn(function()
          local _, e = pcall(corio.sleep, 1)
          child_err = tostring(e)
        end)
        tg:spawn(function() corio.sleep(0); error("boom") end)
      end)
      assert.equal("cancelled: task group failed", child_err)
      local t = corio.spawn(corio.sleep, 1)
      settle()
      t:cancel("enough")
      local _, e = pcall(t.await, t)
      assert.equal("cancelled: enough", tostring(e))
      corio.spawn(function()
        local _, e2 = pcall(corio.sleep, 10)
        at_end = tostring(e2)
      end)
      settle()
    end)
    assert.equal("cancelled: run ended", at_end)
  end)
end)

describe("the corio command's exit status", function()
  local _, _, file, cleanup = helper.tmpfiles()
  local sh = helper.shell(file)
  after_each(cleanup)

  it("cancelling the main task prints the message and exits 1, not 130", function()
    local out, code = sh("CORIO SCRIPT 2>&1", [[
      local corio = require "corio"
      corio.current_task():cancel("shutting down")
      corio.sleep(1)
    ]])
    assert.equal(1, code)
    has(out, "cancelled: shutting down")
    assert.falsy(out:find("interrupted", 1, true))
  end)

  it("loop():stop() is not Ctrl-C either", function()
    local out, code = sh("CORIO SCRIPT 2>&1", [[
      local corio = require "corio"
      corio.loop():stop()
      corio.sleep(1)
    ]])
    assert.equal(1, code)
    has(out, "cancelled: loop stopped")
  end)

  it("SIGTERM cancels the main task: 143, and catching it exits 0", function()
    local out, code = sh("CORIO SCRIPT 2>&1 & p=$!; sleep 0.5; kill -TERM $p; wait $p; echo status=$?", [[
      local corio = require "corio"
      corio.sleep(20)
    ]])
    has(out, "status=143")
    assert.equal(0, code)
    out = sh("CORIO SCRIPT 2>&1 & p=$!; sleep 0.5; kill -TERM $p; wait $p; echo status=$?", [[
      local corio = require "corio"
      local ok, err = pcall(corio.sleep, 20)
      print("caught", ok, corio.is_cancelled(err), tostring(err))
      corio.shield(function() corio.sleep(0.01) end)   -- cleanup that waits
    ]])
    has(out, "caught\tfalse\ttrue\tcancelled: terminated (SIGTERM)")
    has(out, "status=0")
  end)

  it("corio.run(main) in a script runs main as a child of the main task", function()
    local out, code = sh("CORIO SCRIPT 2>&1", [[
      local corio = require "corio"
      print(corio.run(function(a, b) corio.sleep(0); return a + b, "two" end, 40, 2))
    ]])
    assert.equal(0, code, out)
    has(out, "42\ttwo")
  end)

  it("an uncaught TimeoutError prints where the timeout was made", function()
    local out, code = sh("CORIO SCRIPT 2>&1", [[
      local corio = require "corio"
      local _t <close> = corio.timeout(0.01)
      corio.sleep(1)
    ]])
    assert.equal(1, code)
    has(out, "timeout: deadline exceeded (timeout(0.01) made at ")
    out, code = sh("CORIO SCRIPT 2>&1", [[
      local corio = require "corio"
      local function fetch() corio.wait_for(corio.future(), 0.01) end
      fetch()
    ]])
    assert.equal(1, code)
    has(out, "timeout: ")
    has(out, "stack traceback:")
    has(out, "in local 'fetch'")
  end)
end)

describe("corio.run nested", function()
  it("still raises outside the command", function()
    run(function()
      has(error_of(corio.run, function() end), "a loop is already running")
    end)
  end)
end)

describe("methods check their self", function()
  it("queues: a dot for a colon, or another queue, raises naming the method", function()
    run(function()
      local q, q2 = corio.queue(), corio.queue()
      has(error_of(q.put, 5), "bad self to 'queue:put' (Queue expected, got number): use queue:put(...)")
      has(error_of(q.get, q2), "bad self to 'queue:get' (Queue expected, got another queue)")
      local lq = corio.lifo_queue()
      has(error_of(lq.put, 5), "bad self to 'lifo_queue:put'")
      has(error_of(q.qsize), "bad self to 'queue:qsize'")
      assert.equal(0, q:qsize())
    end)
  end)

  it("sync types, channels, futures, tasks, scopes, groups, the loop", function()
    run(function()
      local send, recv = corio.channel(1)
      local checks = {
        { corio.lock().acquire, "lock:acquire" },
        { corio.event().set, "event:set" },
        { corio.condition().notify, "condition:notify" },
        { corio.semaphore(1).release, "semaphore:release" },
        { corio.bounded_semaphore(1).value, "semaphore:value" },
        { corio.barrier(2).wait, "barrier:wait" },
        { send.send, "send:send" },
        { recv.receive, "recv:receive" },
        { corio.future().set_result, "future:set_result" },
        { corio.current_task().cancel, "task:cancel" },
        { corio.loop().call_soon, "loop:call_soon" },
      }
      for _, c in ipairs(checks) do has(error_of(c[1], 42), "bad self to '" .. c[2] .. "'") end
      local s <close> = corio.timeout(10)
      has(error_of(s.cancel, 42), "bad self to 'scope:cancel'")
      corio.task_group(function(tg)
        has(error_of(tg.spawn, 42, print), "bad self to 'tg:spawn'")
      end)
    end)
  end)
end)

describe("argument errors", function()
  it("name the public function, every time", function()
    for _ = 1, 20 do
      package.loaded["corio.core"] = package.loaded["corio.core"]  -- (the same view)
      has(error_of(corio.connect, "127.0.0.1", "x"), "'corio.connect'")
    end
    assert.falsy(next(package.loaded["corio.core"]) ~= nil and
      rawget(package.loaded["corio.core"], "connect"))
  end)

  it("wait_for takes a function and names itself", function()
    run(function()
      assert.equal(7, corio.wait_for(function() corio.sleep(0); return 7 end, 5))
      local err = error_of(corio.wait_for, nil, 1)
      has(err, "bad argument #1 to 'corio.wait_for' (task, future or function expected, got nil)")
      assert.falsy(err:find("init.lua", 1, true))
    end)
  end)

  it("for the calls that used to say too little", function()
    run(function()
      has(error_of(corio.shield, nil), "bad argument #1 to 'corio.shield' (function expected, got nil)")
      has(error_of(corio.task_group, true), "bad argument #1 to 'corio.task_group' (function expected, got boolean)")
      has(error_of(corio.timeout, 0 / 0), "bad argument #1 to 'corio.timeout' (seconds is not a number (NaN))")
      has(error_of(corio.wait, {}, true), "bad argument #2 to 'corio.wait' (options table expected, got boolean)")
      local cond = corio.condition()
      local _ <close> = cond:acquire()
      has(error_of(cond.wait_for, cond, nil), "bad argument #1 to 'condition:wait_for' (function expected, got nil)")
      has(error_of(cond.notify, cond, "x"), "bad argument #1 to 'condition:notify' (number expected, got string)")
      local loop = corio.loop()
      has(error_of(loop.call_soon, loop, 42), "bad argument #1 to 'loop:call_soon' (function expected, got number)")
      has(error_of(loop.call_later, loop, 0, 42), "bad argument #2 to 'loop:call_later' (function expected, got number)")
      has(error_of(loop.call_later, loop, 0 / 0, print), "loop:call_later' (delay is not a number (NaN))")
      has(error_of(loop.call_at, loop, 0 / 0, print), "loop:call_at' (deadline is not a number (NaN))")
      has(error_of(corio.queue, -1), "bad argument #1 to 'corio.queue' (maxsize must be an integer >= 0, got -1)")
      has(error_of(corio.sleep, 0 / 0), "NaN")
    end)
  end)

  it("move_on_after(secs) without a function says it needs one", function()
    run(function()
      has(error_of(corio.move_on_after, 0), "bad argument #2 to 'corio.move_on_after' (function expected, got nil)")
    end)
  end)
end)

describe("typed errors", function()
  it("queue shutdown, full and empty, and a broken barrier have classes", function()
    run(function()
      local q = corio.queue(1)
      q:put(1)
      assert.truthy(corio.QueueFull.is(select(2, pcall(q.put_nowait, q, 2))))
      q:get()
      assert.truthy(corio.QueueEmpty.is(select(2, pcall(q.get_nowait, q))))
      q:shutdown()
      local err = select(2, pcall(q.get, q))
      assert.truthy(corio.QueueShutDown.is(err))
      assert.equal("queue:get: queue shut down", tostring(err))
      local b = corio.barrier(2)
      b:abort()
      assert.truthy(corio.BrokenBarrier.is(select(2, pcall(b.wait, b))))
    end)
  end)

  it("the worker-loop idiom ends on shutdown and lets cancellation through", function()
    run(function()
      local q = corio.queue()
      local got = {}
      local function worker()
        while true do
          local ok, item = pcall(q.get, q)
          if not ok then
            if corio.QueueShutDown.is(item) then return "drained" end
            error(item, 0)   -- a cancellation (or a bug) goes on
          end
          got[#got + 1] = item
        end
      end
      local w = corio.spawn(worker)
      q:put(1); q:put(2); q:shutdown()
      assert.equal("drained", w:await())
      assert.same({ 1, 2 }, got)
      local w2 = corio.spawn(worker)
      local q2 = q
      q = corio.queue()
      settle()
      w2:cancel()
      assert.truthy(w2:cancelled() or not pcall(w2.await, w2))
      assert.is_true(w2:cancelled())
      local _ = q2
    end)
  end)
end)

describe("hangs", function()
  it("gather, settle, race and wait given the current task raise", function()
    run(function()
      local me = corio.current_task()
      has(error_of(corio.gather, me), "a task cannot await itself")
      has(error_of(corio.settle, { me }), "a task cannot await itself")
      has(error_of(corio.race, me), "a task cannot await itself")
      has(error_of(corio.wait, { me }), "a task cannot await itself")
      has(error_of(corio.gather, function() end, me), "item 2 is the current task")
      has(error_of(corio.race, function() end, me), "a task cannot await itself")
      assert.equal(1, #corio.all_tasks())   -- nothing was spawned first
      assert.is_false(me:cancelled())
      corio.sleep(0)
    end)
  end)

  it("resuming from elsewhere a coroutine that waits inside corio raises and keeps the wait", function()
    run(function()
      local co = coroutine.create(function() corio.sleep(0.05); return "slept" end)
      local t = corio.spawn(function() return coroutine.resume(co) end)
      settle()
      local ok, err = coroutine.resume(co)
      assert.is_false(ok)
      has(err, "cannot resume a coroutine that is waiting inside a corio call")
      local t0 = corio.now()
      local ok2, v = t:await()
      assert.is_true(ok2)
      assert.equal("slept", v)
      assert.truthy(corio.now() - t0 > 0.02)
    end)
  end)

  it("a raw coroutine.yield runs the task's <close> handlers as the task", function()
    run(function()
      local lock = corio.lock()
      local seen = helper.capture_errors()
      local t = corio.spawn(function()
        local _l <close> = lock:acquire()
        coroutine.yield()
      end)
      settle()
      assert.is_false(lock:locked())
      assert.falsy(pcall(t.await, t))
      helper.restore_errors()
      local _ = seen
    end)
  end)

  it("closing a task group from another task raises", function()
    run(function()
      local tg = corio.task_group()
      tg:spawn(corio.sleep, 0.02)
      local other = corio.spawn(function() return pcall(getmetatable(tg).__close, tg) end)
      local ok, err = other:await()
      assert.is_false(ok)
      has(tostring(err), "closed from a task other than the one that made it")
      getmetatable(tg).__close(tg)
    end)
  end)
end)

describe("durations", function()
  it("infinity means never, huge values do not wrap", function()
    run(function()
      assert.is_false(corio.move_on_after(0.01, corio.sleep, math.huge))
      assert.is_false(corio.move_on_after(0.01, corio.sleep, 1e300))
      assert.equal(5, corio.wait_for(function() corio.sleep(0.01); return 5 end, math.huge))
      local s <close> = corio.timeout(1e20)
      corio.sleep(0.001)
      assert.is_false(s:expired())
    end)
  end)

  it("a timeout scope can be rescheduled", function()
    run(function()
      local t0 = corio.now()
      local ok, err = pcall(function()
        local s <close> = corio.timeout(10)
        s:reschedule(corio.now() + 0.01)
        assert.truthy(s:deadline() < corio.now() + 1)
        corio.sleep(5)
      end)
      assert.is_false(ok)
      assert.truthy(corio.TimeoutError.is(err))
      assert.truthy(corio.now() - t0 < 4)
    end)
  end)
end)

describe("after the run", function()
  it("tg:spawn on a group left open raises no running loop", function()
    local tg
    pcall(run, function()
      tg = corio.task_group()
      error("leave without closing")
    end)
    has(error_of(tg.spawn, tg, print), "no running loop")
  end)
end)

describe("unclear errors", function()
  it("a dead wrap says cannot resume dead coroutine", function()
    run(function()
      local w = coroutine.wrap(function() error("boom") end)
      assert.is_false(pcall(w))
      has(error_of(w), "cannot resume dead coroutine")
    end)
  end)

  it("an unhandled error whose __tostring raises is still reported", function()
    -- the default handler writes to the process's stderr: run in the command
    local p = io.popen(helper.quote(helper.CORIO) .. [[ -e 'local corio = require "corio"
      corio.spawn(function() error(setmetatable({}, {__tostring = function() error("bad") end})) end)
      corio.sleep(0.01)' 2>&1]])
    local out = p:read("a")
    p:close()
    has(out, "corio: unhandled error in task")
    has(out, "__tostring failed")
  end)
end)
