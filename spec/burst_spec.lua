-- Burst memory (README "Tasks"): after a burst of tasks ends, the Lua heap
-- comes back to within 1 MB of where it was. Tables never shrink as their
-- slots empty, so the scheduler replaces the ones a burst grew (the live
-- table, the anchors of scopes) once most of the burst has finished.
local corio = require "corio"
local helper = require "helper"
local run = helper.run

local N = 100000
local MB = 1024  -- collectgarbage("count") is in KB

local function heap()
  collectgarbage()
  collectgarbage()
  return collectgarbage("count")
end

describe("after a burst", function()
  it("of 100,000 tasks the heap is back within 1 MB", function()
    run(function()
      local function burst()
        local tasks = {}
        for i = 1, N do tasks[i] = corio.spawn(function() corio.sleep(0); return i end) end
        local res = corio.gather(tasks)
        assert.equal(N, #res)
        assert.equal(N, res[N])
      end
      local before = heap()
      burst()
      local after = heap()
      assert.is_true(after - before < MB, ("%.0f KB stayed"):format(after - before))
    end)
  end)

  it("of 100,000 waiters that timed out the heap is back within 1 MB", function()
    run(function()
      local function burst()
        local ev = corio.event()
        local tasks = {}
        for i = 1, N do
          tasks[i] = corio.spawn(function() return corio.move_on_after(0.01, ev.wait, ev) end)
        end
        local res = corio.gather(tasks)
        for i = 1, N do assert(res[i] == false) end
      end
      local before = heap()
      burst()
      local after = heap()
      assert.is_true(after - before < MB, ("%.0f KB stayed"):format(after - before))
    end)
  end)

  it("keeps the tasks still live when most of a burst has finished", function()
    run(function()
      local ev = corio.event()
      local quick, slow = {}, {}
      for i = 1, 20000 do
        if i % 20 == 0 then
          slow[#slow + 1] = corio.spawn(function()
            local _t <close> = corio.timeout(60)
            ev:wait()
            return i
          end)
        else
          quick[#quick + 1] = corio.spawn(function() corio.sleep(0); return i end)
        end
      end
      corio.gather(quick)
      helper.settle()
      assert.equal(1000 + 1, #corio.all_tasks())  -- the slow ones and main
      collectgarbage()
      ev:set()
      local res = corio.gather(slow)
      for k = 1, 1000 do assert.equal(20 * k, res[k]) end
      assert.equal(1, #corio.all_tasks())
    end)
  end)
end)
