-- Worker threads (DESIGN.md "I/O", Threads): corio.to_thread runs a
-- function in a Lua state of its own on corio's pool of threads, with its
-- arguments and results copied; corio.workers sizes the pool.
local corio = require "corio"
local helper = require "helper"

-- The pool's size is fixed by its first job; this file wants at least 4
-- threads (the concurrency spec needs 2). A pool already in use (another
-- spec file ran a job first) keeps its size.
pcall(corio.workers, math.max(4, corio.workers()))

local function tmpdir()
  local p = assert(io.popen("mktemp -d"))
  local d = p:read("l")
  p:close()
  return d
end

local function rmdir(d) os.execute("rm -rf " .. helper.quote(d)) end

-- wait (suspending, 10 s at most) until every path in list exists
local function wait_files(list)
  local deadline = corio.now() + 10
  for _, path in ipairs(list) do
    while not helper.exists(path) do
      assert(corio.now() < deadline, "timed out waiting for " .. path)
      corio.sleep(0.005)
    end
  end
end

describe("corio.to_thread", function()
  it("runs a function and returns its results", function()
    helper.run(function()
      local a, b, c, d = corio.to_thread(function(x, y) return x + y, x * y, "s", nil end, 6, 7)
      assert.equals(13, a)
      assert.equals(42, b)
      assert.equals("s", c)
      assert.is_nil(d)
      assert.equals(4, select("#", corio.to_thread(function() return 1, nil, 3, nil end)))
      assert.equals(0, select("#", corio.to_thread(function() end)))
      -- arguments: nils in the middle and at the end are kept
      assert.equals(4, corio.to_thread(function(...) return select("#", ...) end, nil, 2, nil, nil))
    end)
  end)

  it("keeps integers and floats apart, and strings byte for byte", function()
    helper.run(function()
      local big = math.maxinteger
      local r = { corio.to_thread(function(i, f, n, s, t, fl)
        return math.type(i), math.type(f), i, f, n, s, #s, t, fl
      end, 3, 3.0, big, "a\0b\255", true, false) }
      assert.same({ "integer", "float", 3, 3.0, big, "a\0b\255", 4, true, false }, r)
      assert.equals("float", math.type(r[4]))
      local x, y, z = corio.to_thread(function() return 1 / 0, -0.0, 2 ^ 53 end)
      assert.equals(math.huge, x)
      assert.equals("float", math.type(y))
      assert.equals(2 ^ 53, z)
      local nan = corio.to_thread(function() return 0 / 0 end)
      assert.is_true(nan ~= nan)
    end)
  end)

  it("copies nested tables, keeping shared subtables shared and cycles", function()
    helper.run(function()
      local shared = { 1, 2, 3 }
      local t = { a = { b = { c = "deep" } }, list = { 10, 20, 30, n = 3 },
                  x = shared, y = shared, [1] = "one", [2.5] = "float key",
                  [true] = "bool key", ["key with spaces"] = 1 }
      t.self = t
      t[shared] = "a table as a key"
      local r = corio.to_thread(function(v)
        -- the copy arrived whole, sharing and cycle included
        assert(v.x == v.y and v.self == v and v[v.x] == "a table as a key")
        v.added = "in the worker"
        return v, v.x
      end, t)
      assert.are_not.equal(t, r)
      assert.equals("deep", r.a.b.c)
      assert.same({ 10, 20, 30, n = 3 }, r.list)
      assert.equals(r, r.self)
      assert.equals(r.x, r.y)
      assert.same({ 1, 2, 3 }, r.x)
      assert.equals("one", r[1])
      assert.equals("float key", r[2.5])
      assert.equals("bool key", r[true])
      assert.equals(1, r["key with spaces"])
      assert.equals("a table as a key", r[r.x])
      assert.equals("in the worker", r.added)
      assert.is_nil(t.added)  -- the caller's table is not touched
      -- shared across arguments and results too
      local p, q = corio.to_thread(function(u, v) return u, v, u == v end, shared, shared)
      assert.equals(p, q)
      -- a long array and a big string
      local long = {}
      for i = 1, 10000 do long[i] = i * 2 end
      local back, s = corio.to_thread(function(l, n) return l, ("x"):rep(n) end, long, 1 << 20)
      assert.same(long, back)
      assert.equals(1 << 20, #s)
    end)
  end)

  it("does not copy metatables", function()
    helper.run(function()
      local t = setmetatable({ v = 1 }, { __index = function() return "meta" end })
      local has_mt, v = corio.to_thread(function(u) return getmetatable(u) ~= nil, u.missing end, t)
      assert.is_false(has_mt)
      assert.is_nil(v)
    end)
  end)

  it("refuses values it cannot copy, saying where they are", function()
    helper.run(function()
      local function err_of(...)
        local ok, e = pcall(corio.to_thread, ...)
        assert.is_false(ok)
        return e
      end
      local id = function(...) return ... end
      assert.equals("corio.to_thread: argument 2: cannot copy a function", err_of(id, print))
      assert.equals("corio.to_thread: argument 3, field 'a.b': cannot copy a function",
                    err_of(id, 1, { a = { b = print } }))
      assert.equals("corio.to_thread: argument 2, field 'list[2].f': cannot copy a userdata",
                    err_of(id, { list = { {}, { f = io.stdout } } }))
      assert.equals("corio.to_thread: argument 2, field '[\"odd key\"]': cannot copy a thread",
                    err_of(id, { ["odd key"] = coroutine.create(print) }))
      assert.equals("corio.to_thread: argument 2: cannot copy a key of type function",
                    err_of(id, { [print] = 1 }))
      -- results are checked in the worker
      assert.equals("corio.to_thread: result 2, field 'f': cannot copy a function",
                    err_of(function() return 1, { f = function() end } end))
      -- tables nested too deep
      local deep = {}
      local cur = deep
      for _ = 1, 150 do cur.next = {}; cur = cur.next end
      assert.matches("nested this deep", err_of(id, deep))
      -- the pool still works
      assert.equals(5, corio.to_thread(id, 5))
    end)
  end)

  it("refuses a function with upvalues, naming the upvalue", function()
    helper.run(function()
      local x = 1
      local ok, e = pcall(corio.to_thread, function() return x end)
      assert.is_false(ok)
      assert.equals("corio.to_thread: function has upvalue 'x'; pass it as an argument", e)
      -- _ENV is fine: the worker's own globals
      assert.equals("table", corio.to_thread(function() return type(string) end))
      -- C functions cannot be sent
      ok, e = pcall(corio.to_thread, print)
      assert.is_false(ok)
      assert.matches("a Lua function expected", e)
      ok, e = pcall(corio.to_thread, 42)
      assert.is_false(ok)
      assert.matches("to_thread' (function expected, got number)", e, 1, true)
    end)
  end)

  it("raises fn's error in the awaiting task, with the worker's traceback", function()
    helper.run(function()
      local ok, e = pcall(corio.to_thread, function(n)
        local function inner() error("boom " .. n) end
        inner()
      end, 7)
      assert.is_false(ok)
      assert.matches("^.-thread_spec%.lua:%d+: boom 7\nstack traceback %(worker thread%):", e)
      assert.matches("in %a* ?function 'error'", e)
      assert.matches("thread_spec.lua:%d+: in local 'inner'", e)
      -- a table error comes back as a copy of the same table
      ok, e = pcall(corio.to_thread, function() error({ code = 42, why = { "nested" } }) end)
      assert.is_false(ok)
      assert.same({ code = 42, why = { "nested" } }, e)
      -- an error value that cannot be copied comes back as its tostring
      ok, e = pcall(corio.to_thread, function()
        error(setmetatable({ f = print }, { __tostring = function() return "custom" end }))
      end)
      assert.is_false(ok)
      assert.matches("^custom\nstack traceback", e)
      -- a job that fails does not harm the worker
      assert.equals(3, corio.to_thread(function(a) return a + 1 end, 2))
    end)
  end)

  it("fails a task that does not catch the error, traceback included", function()
    local err = helper.run_error(function()
      corio.to_thread(function() error("from the worker") end)
    end)
    assert.matches("from the worker", err)
    assert.matches("worker thread", err)
  end)

  it("lets the worker require modules with the caller's package.path", function()
    local dir = tmpdir()
    local f = assert(io.open(dir .. "/corio_thread_spec_mod.lua", "w"))
    f:write("return { answer = 42, path = package.path }\n")
    f:close()
    local saved = package.path
    package.path = dir .. "/?.lua;" .. saved
    local ok, err = pcall(helper.run, function()
      local answer, path = corio.to_thread(function()
        local m = require "corio_thread_spec_mod"
        return m.answer, m.path
      end)
      assert.equals(42, answer)
      assert.equals(package.path, path)
      -- package.cpath too, as it is at the time of each call
      local saved_c = package.cpath
      package.cpath = dir .. "/?.so;" .. saved_c
      local cpath = corio.to_thread(function() return package.cpath end)
      package.cpath = saved_c
      assert.equals(dir .. "/?.so;" .. saved_c, cpath)
      assert.equals(saved_c, corio.to_thread(function() return package.cpath end))
      -- the standard libraries are there
      assert.equals("HI", corio.to_thread(function(s) return string.upper(s) end, "hi"))
      assert.equals(3, corio.to_thread(function() return #table.pack(1, 2, 3) end))
    end)
    package.path = saved
    rmdir(dir)
    assert(ok, err)
  end)

  it("runs CPU-bound jobs in parallel", function()
    -- Each job marks that it started, then waits until another job has
    -- started too: only jobs that really run at the same time get past
    -- that (on one thread the first would time out). Then it counts primes.
    local dir = tmpdir()
    local counts = helper.run(function()
      local function job(d, i, lo, hi)
        local mark = assert(io.open(d .. "/started-" .. i, "w"))
        mark:close()
        local deadline, others = os.time() + 10, 0
        while others == 0 and os.time() < deadline do
          for k = 1, 8 do
            local g = k ~= i and io.open(d .. "/started-" .. k)
            if g then g:close(); others = others + 1 end
          end
        end
        local count = 0
        for n = math.max(lo, 2), hi - 1 do
          local p, dv = true, 2
          while dv * dv <= n do
            if n % dv == 0 then p = false; break end
            dv = dv + 1
          end
          if p then count = count + 1 end
        end
        return count, others
      end
      local tasks = {}
      for i = 1, 8 do
        tasks[i] = corio.spawn(corio.to_thread, job, dir, i, (i - 1) * 20000, i * 20000)
      end
      local res = {}
      for i = 1, 8 do
        local count, others = tasks[i]:await()
        assert.is_true(others >= 1, "job " .. i .. " never saw another job running")
        res[i] = count
      end
      return res
    end)
    rmdir(dir)
    local total = 0
    for i = 1, 8 do total = total + counts[i] end
    assert.equals(14683, total)  -- primes below 160,000
  end)

  it("stops a running infinite loop when a timeout cancels its task", function()
    helper.run(function()
      local t0 = corio.now()
      local ok, e = pcall(corio.timeout, 0.1, corio.to_thread, function() while true do end end)
      local took = corio.now() - t0
      assert.is_false(ok)
      assert.is_true(corio.TimeoutError.is(e))
      assert.is_true(took >= 0.09 and took < 1.0, "took " .. took .. " s")
      -- a loop that catches errors is stopped too: every instruction raises
      t0 = corio.now()
      ok = pcall(corio.timeout, 0.1, corio.to_thread, function()
        while true do pcall(function() while true do end end) end
      end)
      assert.is_false(ok)
      assert.is_true(corio.now() - t0 < 1.0)
      -- and so is a loop inside coroutines the job made before it was stopped
      for _, how in ipairs({ "wrap", "resume", "nested" }) do
        t0 = corio.now()
        ok = pcall(corio.timeout, 0.1, corio.to_thread, function(kind)
          local spin = function() while true do end end
          if kind == "wrap" then coroutine.wrap(spin)()
          elseif kind == "resume" then coroutine.resume(coroutine.create(spin))
          else coroutine.wrap(function() coroutine.wrap(spin)() end)() end
          while true do end
        end, how)
        assert.is_false(ok)
        assert.is_true(corio.now() - t0 < 1.0, how)
      end
      -- coroutines still work as usual in a job
      assert.same({ 1, 2, 3, "done" }, corio.to_thread(function()
        local got = {}
        local gen = coroutine.wrap(function() for i = 1, 3 do coroutine.yield(i) end return "done" end)
        for _ = 1, 4 do got[#got + 1] = gen() end
        local co = coroutine.create(function(a) error("inner " .. a) end)
        local okc, emsg = coroutine.resume(co, "x")
        assert(not okc and emsg:match("inner x$"))
        local okw, ew = pcall(coroutine.wrap(function() error("wrapped") end))
        assert(not okw and ew:match("wrapped$"))
        return got
      end))
      -- the interrupted workers are free again: every one of them takes a job
      local jobs = {}
      for i = 1, corio.workers() * 2 do jobs[i] = corio.spawn(corio.to_thread, function(x) return x end, i) end
      for i = 1, #jobs do assert.equals(i, jobs[i]:await()) end
    end)
  end)

  it("drops a queued job whose task is cancelled before it starts", function()
    local dir = tmpdir()
    helper.run(function()
      local n = corio.workers()
      -- keep every worker busy until cancelled
      local busy, marks = {}, {}
      for i = 1, n do
        marks[i] = dir .. "/busy-" .. i
        busy[i] = corio.spawn(corio.to_thread, function(path)
          assert(io.open(path, "w")):close()
          while true do end
        end, marks[i])
      end
      wait_files(marks)
      -- every worker is busy: this job waits in the queue
      local queued = corio.spawn(corio.to_thread, function(path)
        assert(io.open(path, "w")):close()
        return "ran"
      end, dir .. "/ran")
      corio.sleep(0.05)
      assert.is_true(queued:cancel())
      helper.cancelled_await(queued)
      for i = 1, n do busy[i]:cancel() end
      for i = 1, n do helper.cancelled_await(busy[i]) end
      -- the queue is first come first served: once a new job has run on
      -- every worker, the dropped one would have run before them
      local after = {}
      for i = 1, n do after[i] = corio.spawn(corio.to_thread, function() return true end) end
      for i = 1, n do assert.is_true(after[i]:await()) end
      assert.is_false(helper.exists(dir .. "/ran"))
    end)
    rmdir(dir)
  end)

  it("interrupts a job still running when the run ends", function()
    local t0 = os.time()
    helper.run(function()
      corio.spawn(corio.to_thread, function() while true do end end)
      corio.sleep(0.05)
      -- main returns: the run cancels the task, which interrupts the job
    end)
    assert.is_true(os.time() - t0 <= 3)
    -- and the next run finds the pool ready
    assert.equals(2, helper.run(function() return corio.to_thread(function() return 2 end) end))
  end)

  it("is a checkpoint: a cancelled task does not start a job", function()
    helper.run(function()
      local t = corio.spawn(function()
        corio.current_task():cancel()
        corio.to_thread(function() return 1 end)
        error("not reached")
      end)
      helper.cancelled_await(t)
    end)
  end)

  it("works with many jobs in flight and new closures each time", function()
    helper.run(function()
      local tasks = {}
      for i = 1, 500 do
        -- a fresh closure for each job: dumped again, loaded again
        tasks[i] = corio.spawn(corio.to_thread, function(x) return x * x end, i)
      end
      local sum = 0
      for i = 1, 500 do sum = sum + tasks[i]:await() end
      assert.equals(500 * 501 * 1001 // 6, sum)
    end)
  end)

  it("needs a task", function()
    assert.has_error(function() corio.to_thread(function() end) end,
      "corio.to_thread: not inside a task (start one with corio.run)")
  end)
end)

describe("corio.workers", function()
  it("reports the pool's size and checks a new one", function()
    local n = corio.workers()
    assert.equals("integer", math.type(n))
    assert.is_true(n >= 1)
    for _, bad in ipairs({ 0, -1, 1.5, "x", 1025 }) do
      local ok, e = pcall(corio.workers, bad)
      assert.is_false(ok)
      assert.matches("^corio.workers: the size must be a whole number from 1 to 1024", e)
    end
    -- this file's jobs have started the pool: its size is fixed now
    assert.equals(n, corio.workers(n))
    local ok, e = pcall(corio.workers, n + 1)
    assert.is_false(ok)
    assert.matches("corio.workers: the pool is in use with " .. n .. " threads", e, 1, true)
  end)

  it("sets the size before the first job; threads start as jobs need them", function()
    local script = helper.write_tmp([[
      local corio = require "corio"
      local function threads()
        local f = assert(io.open("/proc/self/status"))
        local n = tonumber(f:read("a"):match("Threads:%s*(%d+)"))
        f:close()
        return n
      end
      print(corio.workers(3))
      local before = threads()
      corio.to_thread(function() end)
      local one = threads()
      local jobs = {}
      for i = 1, 6 do jobs[i] = corio.spawn(corio.to_thread, function(x) return x end, i) end
      for i = 1, 6 do jobs[i]:await() end
      print(corio.workers(), pcall(corio.workers, 5))
      print("threads", one - before, threads() - before)
    ]])
    local p = assert(io.popen("timeout 20 " .. helper.quote(helper.CORIO) .. " " .. helper.quote(script) .. " 2>&1"))
    local out = p:read("a")
    p:close()
    os.remove(script)
    assert.matches("^3\n3\tfalse\tcorio.workers: the pool is in use with 3 threads", out)
    assert.matches("\nthreads\t1\t3\n$", out)
  end)
end)
