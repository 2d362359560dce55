local corio = require "corio"
local helper = require "helper"

-- Every wait here is a pure timer: the tests run on corio.testing's
-- virtual clock, which jumps to the next deadline (so a 2 s sleep takes no
-- real time), and its report of leaked tasks, handles and fds.
local vrun = corio.testing.run

describe("corio.sleep", function()
  it("returns its extra arguments", function()
    local r0, r1 = vrun(function()
      return table.pack(corio.sleep(0, 1, nil, "x", nil)),
             table.pack(corio.sleep(0.005, "after"))
    end)
    assert.equal(4, r0.n)
    assert.equal(1, r0[1])
    assert.is_nil(r0[2])
    assert.equal("x", r0[3])
    assert.is_nil(r0[4])
    assert.equal(1, r1.n)
    assert.equal("after", r1[1])
  end)

  it("returns nothing when given no extra arguments", function()
    local n = vrun(function()
      return select("#", corio.sleep(0))
    end)
    assert.equal(0, n)
  end)

  it("sleeps at least the given time (on the real clock)", function()
    local d = helper.run(function()
      local t0 = corio.now()
      corio.sleep(0.03)
      return corio.now() - t0
    end)
    assert.truthy(d >= 0.028, "slept only " .. d)
    assert.truthy(d < 1, "slept " .. d)
  end)

  it("sleep(0) lets every other ready task run once", function()
    local count = 0
    local seen = {}
    vrun(function()
      local stop = false
      local t = corio.spawn(function()
        while not stop do
          count = count + 1
          corio.sleep(0)
        end
      end)
      for i = 1, 3 do
        corio.sleep(0)
        seen[i] = count
      end
      stop = true
      t:await()
    end)
    assert.same({ 1, 2, 3 }, seen)
  end)

  it("sleep(0) in a loop interleaves ready tasks round-robin", function()
    local order = {}
    vrun(function()
      local ts = {}
      for _, name in ipairs({ "a", "b", "c" }) do
        ts[#ts + 1] = corio.spawn(function()
          for i = 1, 3 do
            order[#order + 1] = name .. i
            corio.sleep(0)
          end
        end)
      end
      for _, t in ipairs(ts) do t:await() end
    end)
    -- the three start in any order (spawned together); each round then
    -- repeats the first one's order
    local first = { order[1]:sub(1, 1), order[2]:sub(1, 1), order[3]:sub(1, 1) }
    local sorted = { table.unpack(first) }
    table.sort(sorted)
    assert.same({ "a", "b", "c" }, sorted)
    local expect = {}
    for i = 1, 3 do
      for _, name in ipairs(first) do expect[#expect + 1] = name .. i end
    end
    assert.same(expect, order)
  end)

  it("a zero sleep still yields to another ready task", function()
    local ran_before_return
    vrun(function()
      local ran = false
      corio.spawn(function() ran = true end)
      corio.sleep(0)
      ran_before_return = ran
    end)
    assert.is_true(ran_before_return)
  end)

  it("a negative sleep returns promptly with its arguments", function()
    local d, v = vrun(function()
      local t0 = corio.now()
      local v = corio.sleep(-1, "neg")
      corio.sleep(-0.5)
      return corio.now() - t0, v
    end)
    assert.equal("neg", v)
    assert.truthy(d < 0.1, "negative sleep took " .. d)
  end)

  it("tasks whose sleeps end at the same time wake in FIFO order", function()
    local asked, order = {}, {}
    vrun(function()
      local ts = {}
      for i = 1, 10 do
        ts[i] = corio.spawn(function()
          asked[#asked + 1] = i  -- tasks spawned together start in any order
          corio.sleep(0.02)
          order[#order + 1] = i
        end)
      end
      for i = 1, 10 do ts[i]:await() end
    end)
    assert.equals(10, #asked)
    assert.same(asked, order)
  end)

  it("timers with equal deadlines fire FIFO (call_at with one time)", function()
    local order = {}
    vrun(function()
      local loop = corio.loop()
      local done = corio.future()
      local when = loop:time() + 0.02
      for i = 1, 20 do
        loop:call_at(when, function()
          order[#order + 1] = i
          if i == 20 then done:set_result() end
        end)
      end
      done:await()
    end)
    local expect = {}
    for i = 1, 20 do expect[i] = i end
    assert.same(expect, order)
  end)

  it("timers with equal delays fire FIFO (call_later)", function()
    local order = {}
    vrun(function()
      local loop = corio.loop()
      local done = corio.future()
      for i = 1, 20 do
        loop:call_later(0.01, function()
          order[#order + 1] = i
          if i == 20 then done:set_result() end
        end)
      end
      done:await()
    end)
    local expect = {}
    for i = 1, 20 do expect[i] = i end
    assert.same(expect, order)
  end)

  it("raises on a bad argument", function()
    vrun(function()
      local ok, err = pcall(corio.sleep, "soon")
      assert.is_false(ok)
      assert.truthy(tostring(err):find("number", 1, true), tostring(err))
      ok, err = pcall(corio.sleep)
      assert.is_false(ok)
      assert.truthy(tostring(err):find("number", 1, true), tostring(err))
      ok = pcall(corio.sleep, {})
      assert.is_false(ok)
      -- the task keeps working afterwards
      assert.equal("ok", corio.sleep(0.001, "ok"))
    end)
  end)

  it("raises outside a task with an error naming corio.sleep", function()
    local ok, err = pcall(corio.sleep, 0)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("corio.sleep", 1, true), tostring(err))
  end)

  it("raises a clear error inside a table.sort comparator (C-call boundary), and the task goes on", function()
    local err, after
    vrun(function()
      local ok
      ok, err = pcall(table.sort, { 3, 1, 2 }, function(a, b)
        corio.sleep(0)
        return a < b
      end)
      assert.is_false(ok)
      after = corio.sleep(0.001, "after")
    end)
    err = tostring(err)
    assert.truthy(err:find("C-call boundary", 1, true), err)
    assert.truthy(err:find("corio.sleep", 1, true), err)
    assert.equal("after", after)
  end)

  it("raises a clear error inside a string.gsub callback (C-call boundary), and the task goes on", function()
    local err, after, other_ran
    vrun(function()
      local other = corio.spawn(function() corio.sleep(0.001); other_ran = true end)
      local ok
      ok, err = pcall(string.gsub, "abc", "%w", function(c)
        corio.sleep(0)
        return c:upper()
      end)
      assert.is_false(ok)
      after = corio.sleep(0.005, "after")
      other:await()
    end)
    err = tostring(err)
    assert.truthy(err:find("C-call boundary", 1, true), err)
    assert.equal("after", after)
    assert.is_true(other_ran)
  end)
end)
