local corio = require "corio"
local helper = require "helper"

-- Count how often another task got to run: proves that a sleep inside a user
-- coroutine really suspended the task (went to the scheduler) instead of
-- being handed to the coroutine's consumer.
local function ticker()
  local state = { ticks = 0, stop = false }
  state.task = corio.spawn(function()
    while not state.stop do
      state.ticks = state.ticks + 1
      corio.sleep(0)
    end
  end)
  return state
end

describe("coroutine.wrap inside a task", function()
  it("a generator that sleeps between its yields gives the consumer only its own values", function()
    local got, ticks
    helper.run(function()
      local tk = ticker()
      local gen = coroutine.wrap(function(first)
        coroutine.yield(first)
        for i = 1, 3 do
          corio.sleep(0)
          corio.sleep(0.001)
          coroutine.yield(i)
        end
        return "last"
      end)
      got = {}
      got[1] = gen("start")
      for i = 2, 5 do got[i] = gen() end
      tk.stop = true
      tk.task:await()
      ticks = tk.ticks
    end)
    assert.same({ "start", 1, 2, 3, "last" }, got)
    assert.truthy(ticks >= 3, "other task ran only " .. tostring(ticks) .. " times")
  end)

  it("works as a for-loop iterator", function()
    local got = {}
    helper.run(function()
      local function range(n)
        return coroutine.wrap(function()
          for i = 1, n do
            corio.sleep(0)
            coroutine.yield(i, i * i)
          end
        end)
      end
      for i, sq in range(4) do got[#got + 1] = { i, sq } end
    end)
    assert.same({ { 1, 1 }, { 2, 4 }, { 3, 9 }, { 4, 16 } }, got)
  end)

  it("passes values in both directions across sleeps", function()
    local got = {}
    helper.run(function()
      local gen = coroutine.wrap(function(a)
        local b = coroutine.yield(a + 1)
        local slept = corio.sleep(0.001, "slept")
        local c = coroutine.yield(b + 1, slept)
        return c * 10
      end)
      got[1] = table.pack(gen(1))
      got[2] = table.pack(gen(10))
      got[3] = table.pack(gen(5))
    end)
    assert.equal(1, got[1].n)
    assert.equal(2, got[1][1])
    assert.equal(2, got[2].n)
    assert.equal(11, got[2][1])
    assert.equal("slept", got[2][2])
    assert.equal(1, got[3].n)
    assert.equal(50, got[3][1])
  end)

  it("nested generators that both sleep work", function()
    local got = {}
    helper.run(function()
      local inner = coroutine.wrap(function()
        for i = 1, 3 do corio.sleep(0); coroutine.yield(i) end
      end)
      local outer = coroutine.wrap(function()
        for _ = 1, 3 do
          local v = inner()
          corio.sleep(0.001)
          coroutine.yield(v * 100)
        end
      end)
      for i = 1, 3 do got[i] = outer() end
    end)
    assert.same({ 100, 200, 300 }, got)
  end)

  it("an await inside a generator may wait on another task's future", function()
    local got
    helper.run(function()
      local f = corio.future()
      corio.spawn(function() corio.sleep(0.005); f:set_result("from future") end)
      local gen = coroutine.wrap(function()
        coroutine.yield(f:await())
      end)
      got = gen()
    end)
    assert.equal("from future", got)
  end)

  it("errors inside the generator after a sleep propagate to the caller", function()
    local e = {}
    local got_table, got_string
    helper.run(function()
      local g1 = coroutine.wrap(function() corio.sleep(0); error(e) end)
      local ok
      ok, got_table = pcall(g1)
      assert.is_false(ok)
      local g2 = coroutine.wrap(function() corio.sleep(0); error("gen failed") end)
      ok, got_string = pcall(function() return g2() end)
      assert.is_false(ok)
    end)
    assert.equal(e, got_table)
    assert.truthy(got_string:find("gen failed", 1, true), got_string)
  end)
end)

describe("coroutine.resume inside a task", function()
  it("resumes a coroutine that sleeps", function()
    local r1, r2, st1, st2, ticks
    helper.run(function()
      local tk = ticker()
      local co = coroutine.create(function(a)
        local x = corio.sleep(0.002, "s")
        corio.sleep(0)
        local y = coroutine.yield(a + 1, x)
        corio.sleep(0)
        return y * 2
      end)
      r1 = table.pack(coroutine.resume(co, 1))
      st1 = coroutine.status(co)
      r2 = table.pack(coroutine.resume(co, 5))
      st2 = coroutine.status(co)
      tk.stop = true
      tk.task:await()
      ticks = tk.ticks
    end)
    assert.equal(3, r1.n)
    assert.is_true(r1[1])
    assert.equal(2, r1[2])
    assert.equal("s", r1[3])
    assert.equal("suspended", st1)
    assert.equal(2, r2.n)
    assert.is_true(r2[1])
    assert.equal(10, r2[2])
    assert.equal("dead", st2)
    assert.truthy(ticks >= 2, "other task ran only " .. tostring(ticks) .. " times")
  end)

  it("returns false and the error when the coroutine fails after a sleep", function()
    local e = {}
    local ok, err, st
    helper.run(function()
      local co = coroutine.create(function()
        corio.sleep(0.001)
        error(e)
      end)
      ok, err = coroutine.resume(co)
      st = coroutine.status(co)
    end)
    assert.is_false(ok)
    assert.equal(e, err)
    assert.equal("dead", st)
  end)

  it("a sleep inside pcall inside a coroutine works", function()
    local r
    helper.run(function()
      local co = coroutine.create(function()
        local ok, v = pcall(corio.sleep, 0.001, "v")
        coroutine.yield(ok, v)
      end)
      r = table.pack(coroutine.resume(co))
      coroutine.close(co)
    end)
    assert.equal(3, r.n)
    assert.is_true(r[1])
    assert.is_true(r[2])
    assert.equal("v", r[3])
  end)
end)

describe("ordinary coroutine behaviour is unchanged", function()
  local function check_plain()
    -- status, running, isyieldable
    local main_co = coroutine.running()
    local inside = {}
    local co
    co = coroutine.create(function(...)
      inside.args = table.pack(...)
      inside.status_self = coroutine.status(co)
      inside.running = coroutine.running()
      inside.yieldable = coroutine.isyieldable()
      inside.main_status = coroutine.status(main_co)
      local v = coroutine.yield("y1")
      return "ret", v
    end)
    assert.equal("suspended", coroutine.status(co))
    local r = table.pack(coroutine.resume(co, "a", nil))
    assert.same({ true, "y1", n = 2 }, r)
    assert.equal(2, inside.args.n)
    assert.equal("a", inside.args[1])
    assert.equal("running", inside.status_self)
    assert.equal(co, inside.running)
    assert.is_true(inside.yieldable)
    assert.equal("normal", inside.main_status)
    assert.equal("suspended", coroutine.status(co))
    r = table.pack(coroutine.resume(co, "v"))
    assert.same({ true, "ret", "v", n = 3 }, r)
    assert.equal("dead", coroutine.status(co))

    -- dead and non-suspended coroutines
    local ok, msg = coroutine.resume(co)
    assert.is_false(ok)
    assert.equal("cannot resume dead coroutine", msg)
    local self_co = coroutine.create(function()
      return coroutine.resume(coroutine.running())
    end)
    local r2 = table.pack(coroutine.resume(self_co))
    assert.same({ true, false, "cannot resume non-suspended coroutine", n = 3 }, r2)

    -- error inside a coroutine
    local e = {}
    local eco = coroutine.create(function() error(e) end)
    ok, msg = coroutine.resume(eco)
    assert.is_false(ok)
    assert.equal(e, msg)
    assert.equal("dead", coroutine.status(eco))

    -- bad arguments raise as before
    local okb, errb = pcall(coroutine.resume, 42)
    assert.is_false(okb)
    assert.truthy(tostring(errb):find("bad argument #1", 1, true), tostring(errb))
    okb, errb = pcall(coroutine.wrap, 42)
    assert.is_false(okb)
    assert.truthy(tostring(errb):find("bad argument #1", 1, true), tostring(errb))

    -- wrap: values, error propagation with position, dead wrap
    local gen = coroutine.wrap(function(a) local b = coroutine.yield(a * 2); return b + 1 end)
    assert.equal(4, gen(2))
    assert.equal(8, gen(7))
    local okd, errd = pcall(function() return gen() end)
    assert.is_false(okd)
    assert.truthy(errd:find("cannot resume dead coroutine", 1, true), errd)
    local wgen = coroutine.wrap(function() error("oops") end)
    local okw, errw = pcall(function() return wgen() end)
    assert.is_false(okw)
    -- as standard Lua: the caller's position, then the error's own position
    assert.truthy(errw:match("^[^\n]-coroutine_spec%.lua:%d+: [^\n]-coroutine_spec%.lua:%d+: oops$"), errw)
    local tgen = coroutine.wrap(function() error(e) end)
    local okt, errt = pcall(tgen)
    assert.is_false(okt)
    assert.equal(e, errt)

    -- close
    local closed = false
    local cco = coroutine.create(function()
      local _ <close> = setmetatable({}, { __close = function() closed = true end })
      coroutine.yield()
    end)
    coroutine.resume(cco)
    assert.same({ true, n = 1 }, table.pack(coroutine.close(cco)))
    assert.is_true(closed)
    assert.equal("dead", coroutine.status(cco))
    local xco = coroutine.create(function() error(e) end)
    coroutine.resume(xco)
    local rc = table.pack(coroutine.close(xco))
    assert.equal(2, rc.n)
    assert.is_false(rc[1])
    assert.equal(e, rc[2])
    local okc, errc = pcall(coroutine.close, coroutine.running())
    assert.is_false(okc)
    assert.truthy(tostring(errc):find("cannot close a running coroutine", 1, true), tostring(errc))

    -- yield across pcall inside a coroutine
    local pco = coroutine.create(function()
      local okp, v = pcall(function() return coroutine.yield("in pcall") end)
      return okp, v
    end)
    assert.same({ true, "in pcall", n = 2 }, table.pack(coroutine.resume(pco)))
    assert.same({ true, true, "back", n = 3 }, table.pack(coroutine.resume(pco, "back")))

    -- isyieldable is false inside a C boundary
    local in_sort
    local sco = coroutine.create(function()
      table.sort({ 2, 1 }, function(a, b) in_sort = coroutine.isyieldable(); return a < b end)
    end)
    assert.is_true((coroutine.resume(sco)))
    assert.is_false(in_sort)
  end

  it("outside a run", function()
    check_plain()
    local okm, errm = pcall(coroutine.yield)
    if coroutine.isyieldable() then return end  -- busted itself may run us in a coroutine
    assert.is_false(okm)
    assert.truthy(tostring(errm):find("outside a coroutine", 1, true), tostring(errm))
  end)

  it("inside a task", function()
    local task_co, is_main, yieldable
    helper.run(function()
      check_plain()
      task_co, is_main = coroutine.running()
      yieldable = coroutine.isyieldable()
    end)
    assert.equal("thread", type(task_co))
    assert.is_false(is_main)
    assert.is_true(yieldable)
  end)
end)

describe("corio.coroutine", function()
  it("offers the coroutine functions, the same ones corio installed", function()
    assert.equal("table", type(corio.coroutine))
    for _, name in ipairs({ "create", "resume", "yield", "status", "wrap",
                            "isyieldable", "running", "close" }) do
      assert.equal("function", type(corio.coroutine[name]), name)
    end
    assert.equal(coroutine.resume, corio.coroutine.resume)
    assert.equal(coroutine.wrap, corio.coroutine.wrap)
  end)

  it("its wrap and resume forward awaits", function()
    local got, r
    helper.run(function()
      local cc = corio.coroutine
      local gen = cc.wrap(function()
        for i = 1, 2 do corio.sleep(0.001); cc.yield(i) end
      end)
      got = { gen(), gen() }
      local co = cc.create(function() return corio.sleep(0.001, "r") end)
      r = table.pack(cc.resume(co))
    end)
    assert.same({ 1, 2 }, got)
    assert.same({ true, "r", n = 2 }, r)
  end)
end)
