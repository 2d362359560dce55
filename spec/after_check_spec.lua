-- The after-spec check (spec/after_check.lua, docs/testing.md): what it
-- reports, and the leaks it found in corio, each fixed.
local corio = require "corio"
local helper = require "helper"
local check = require "after_check"  -- the instance busted loaded as its helper
local core = corio.core

local function has_line(lines, pattern)
  for _, line in ipairs(lines) do
    if line:find(pattern) then return true end
  end
  return false, table.concat(lines, "\n")
end

-- a task that makes a task group (never closed) with one child sleeping
-- 0.01 s, and ends before that child; awaited
local function leave_group_open()
  local t = corio.spawn(function()
    local tg = corio.task_group()
    tg:spawn(corio.sleep, 0.01)
  end)
  t:await()
end

describe("the after-spec check", function()
  it("is the one busted runs (not a second copy)", function()
    assert.equal(check, package.loaded["after_check"])
    assert.is_function(check.snapshot)
  end)

  it("finds nothing when nothing was left", function()
    local before = check.snapshot()
    helper.run(function() corio.sleep(0) end)
    assert.same({}, check.compare(before, check.snapshot()))
  end)

  it("names an fd left open, with what it points at", function()
    local path = os.tmpname()
    local before = check.snapshot()
    local f = assert(io.open(path, "rb"))
    local lines = check.compare(before, check.snapshot())
    f:close()
    os.remove(path)
    assert.is_true(has_line(lines, "^fd %d+ %(" .. path:gsub("%p", "%%%0") .. "%) opened and not closed$"))
    assert.is_true(has_line(lines, "^%d+ fds open, %d+ before$"))
  end)

  it("counts a registry entry left behind", function()
    local before = check.snapshot()
    local key = {}
    debug.getregistry()[key] = true
    local lines = check.compare(before, check.snapshot())
    debug.getregistry()[key] = nil
    assert.is_true(has_line(lines, "^registry: %d+ entries, %d+ before: registry grew by 1"))
  end)

  it("names an open loop, its live tasks and its handles by kind", function()
    local before = check.snapshot()
    local lines
    helper.run(function()
      local t = corio.spawn(corio.sleep, 10)
      helper.settle()
      lines = check.compare(before, check.snapshot())
      t:cancel()
    end)
    assert.is_true(has_line(lines, "^a loop is still open"))
    assert.is_true(has_line(lines, "^2 tasks still alive$"))
    assert.is_true(has_line(lines, "^%d+ timer handles? open on the loop$"))
  end)

  it("raises naming the test and what was left", function()
    local path = os.tmpname()
    local before = check.snapshot()
    local f = assert(io.open(path, "rb"))
    local ok, err = pcall(check.report, "some_spec.lua: a test", before)
    f:close()
    os.remove(path)
    assert.is_false(ok)
    assert.matches("^after%-spec check: some_spec%.lua: a test\nleft behind:\n  fd %d+ ", err)
  end)
end)

describe("a run's end", function()
  it("drops the scopes and task groups the run never closed", function()
    local ok = pcall(helper.run, function()
      local _ = corio.task_group()   -- never closed
      local _t = corio.timeout(10)   -- never closed either
      error("leave without closing")
    end)
    assert.is_false(ok)
    collectgarbage()
    assert.equal(0, core._introspect().side.groups)
  end)

  it("drops a never-closed group whose children ended after its maker", function()
    helper.run(function()
      leave_group_open()
      corio.sleep(0.03)
    end)
    collectgarbage()
    assert.equal(0, core._introspect().side.groups)
  end)

  it("lets go of the last error an await re-raised", function()
    helper.run(function()
      local t = corio.spawn(function() error("boom") end)
      helper.settle()
      assert.is_false(pcall(t.await, t))
    end)
    assert.same({}, core._introspect().held)
  end)
end)

describe("a task group never closed", function()
  it("lets go of its anchor once its maker and its children have ended", function()
    helper.run(function()
      leave_group_open()
      assert.equal(1, core._introspect().side.groups)  -- its child still runs
      corio.sleep(0.03)
      collectgarbage()
      assert.equal(0, core._introspect().side.groups)
    end)
  end)

  it("is anchored again by a spawn after its maker ended, while the child runs", function()
    helper.run(function()
      local tg
      corio.spawn(function() tg = corio.task_group() end):await()
      assert.equal(0, core._introspect().side.groups)
      local t = tg:spawn(function() corio.sleep(0.01); return "ok" end)
      assert.equal(1, core._introspect().side.groups)
      tg = nil  -- luacheck: ignore (only the anchor keeps the group now)
      collectgarbage()
      collectgarbage()
      assert.equal("ok", t:await())
      assert.equal(0, core._introspect().side.groups)
    end)
  end)
end)
