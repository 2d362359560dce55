-- corio.run's collector option ({gc = ...}) and the command's --gc: the
-- setting holds during the run, and the collector's mode, parameters and
-- running state are put back when the run ends, however it ends.
local corio = require "corio"
local helper = require "helper"

-- the collector's mode, read as Lua allows it (setting a mode returns the
-- one it replaces), then put back
local function mode()
  local m = collectgarbage("incremental")
  collectgarbage(m)
  return m
end

-- pause and step multiplier, read the same way
local function params()
  local p = collectgarbage("setpause", 100)
  collectgarbage("setpause", p)
  local s = collectgarbage("setstepmul", 100)
  collectgarbage("setstepmul", s)
  return p, s
end

-- the collector as the spec found it, for after_each
local saved_mode, saved_pause, saved_stepmul
local function save()
  saved_mode = mode()
  saved_pause, saved_stepmul = params()
end
local function restore()
  collectgarbage(saved_mode)
  collectgarbage("setpause", saved_pause)
  collectgarbage("setstepmul", saved_stepmul)
  collectgarbage("restart")
end

local function during(opts)
  return corio.run(opts, function()
    local p, s = params()
    return mode(), p, s, collectgarbage("isrunning")
  end)
end

describe("corio.run's gc option", function()
  before_each(save)
  after_each(restore)

  it("runs in generational mode and puts incremental back", function()
    collectgarbage("incremental")
    collectgarbage("setpause", 160)
    collectgarbage("setstepmul", 120)
    assert.equal("generational", (during({ gc = "generational" })))
    assert.equal("incremental", mode())
    local p, s = params()
    assert.equal(160, p)
    assert.equal(120, s)
  end)

  it("runs in incremental mode and puts generational back", function()
    collectgarbage("generational")
    assert.equal("incremental", (during({ gc = "incremental" })))
    assert.equal("generational", mode())
  end)

  it("takes a pause and a step multiplier, then puts the user's back", function()
    collectgarbage("generational")
    collectgarbage("setpause", 200)
    collectgarbage("setstepmul", 100)
    local m, p, s = during({ gc = { pause = 400, stepmul = 300 } })
    assert.equal("incremental", m)
    assert.equal(400, p)
    assert.equal(300, s)
    assert.equal("generational", mode())
    p, s = params()
    assert.equal(200, p)
    assert.equal(100, s)
  end)

  it("keeps a parameter left out of the table", function()
    collectgarbage("setpause", 240)
    local m, p, s = during({ gc = { stepmul = 200 } })
    assert.equal("incremental", m)
    assert.equal(240, p)
    assert.equal(200, s)
  end)

  it("puts the settings back when main fails, and when main changed them", function()
    collectgarbage("incremental")
    collectgarbage("setpause", 180)
    local ok, err = pcall(corio.run, { gc = "generational" }, function()
      collectgarbage("setpause", 900)
      collectgarbage("stop")
      corio.sleep(0)
      error("boom")
    end)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("boom", 1, true))
    assert.equal("incremental", mode())
    assert.equal(180, (params()))
    assert.is_true(collectgarbage("isrunning"))
  end)

  it("leaves a stopped collector stopped, and stopped after the run", function()
    collectgarbage("stop")
    local _, _, _, running = during({ gc = "generational" })
    assert.is_false(running)
    assert.is_false(collectgarbage("isrunning"))
  end)

  it("with gc = \"keep\" does not touch the collector", function()
    collectgarbage("incremental")
    collectgarbage("setpause", 220)
    local m, p = during({ gc = "keep" })
    assert.equal("incremental", m)
    assert.equal(220, p)
    m = corio.run({ gc = "keep" }, function()
      collectgarbage("generational")  -- the run's own business under keep
      return mode()
    end)
    assert.equal("generational", m)
    assert.equal("generational", mode())
  end)

  it("passes main its arguments after the options, and main's results back", function()
    local a, b = corio.run({ gc = "generational" }, function(x, y) return y, x end, 1, { 2 })
    assert.same({ 2 }, a)
    assert.equal(1, b)
    assert.equal(7, corio.run({}, function() return 7 end))
  end)

  it("without options runs in the documented default (generational)", function()
    collectgarbage("incremental")
    assert.equal("generational", helper.run(mode))
    assert.equal("incremental", mode())
  end)

  it("raises for bad values, naming corio.run", function()
    local bad = {
      { { gc = "fast" }, 'corio.run: gc must be "generational", "incremental", "keep" or a table' },
      { { gc = true }, "corio.run: gc must be" },
      { { gc = { pause = 2000 } }, "corio.run: gc.pause must be an integer from 0 to 1000, got 2000" },
      { { gc = { stepmul = 1.5 } }, "corio.run: gc.stepmul must be an integer" },
      { { gc = { pause = "x" } }, "corio.run: gc.pause must be an integer" },
      { { gc = { paws = 200 } }, "corio.run: gc table: unknown field 'paws'" },
      { { gc = { 200 } }, "corio.run: gc table: a number key" },
      { { gcc = "generational" }, "corio.run: unknown option 'gcc'" },
    }
    collectgarbage("incremental")
    for _, case in ipairs(bad) do
      local ok, err = pcall(corio.run, case[1], function() end)
      assert.is_false(ok)
      assert.truthy(err:find(case[2], 1, true), err)
      assert.falsy(err:find("init.lua", 1, true), err)
      assert.equal("incremental", mode())
    end
    local ok, err = pcall(corio.run, { gc = "generational" })
    assert.is_false(ok)
    assert.truthy(err:find("bad argument #2 to 'corio.run' (function expected, got nil)", 1, true), err)
    assert.equal(0, corio.core.stats().loops)
  end)
end)

local CORIO, exists, quote = helper.CORIO, helper.exists, helper.quote

local function command(args, code)
  local p = assert(io.popen("timeout 20 " .. quote(CORIO) .. " " .. args .. " -e " .. quote(code) .. " 2>&1"))
  local out = p:read("a")
  local _, _, status = p:close()
  return out, status
end

describe("the corio command's --gc", function()
  if not exists(CORIO) then
    pending(CORIO .. " is not built")
    return
  end

  local show = [[
    local p = collectgarbage("setpause", 100)
    local s = collectgarbage("setstepmul", 100)
    local m = collectgarbage("incremental")
    print(m, p, s)
    corio.run(function() print(collectgarbage("incremental")) end)
  ]]

  it("sets the collector of the script's run", function()
    assert.equal("generational\t200\t100\nincremental\n", (command("--gc=generational", show)))
    assert.equal("incremental\t200\t100\nincremental\n", (command("--gc=incremental", show)))
    assert.equal("incremental\t400\t300\nincremental\n",
                 (command("--gc=incremental,pause=400,stepmul=300", show)))
    assert.equal("incremental\t300\t100\nincremental\n", (command("--gc=pause=300", show)))
  end)

  it("runs in the default (generational) without it", function()
    assert.equal("generational\t200\t100\nincremental\n", (command("", show)))
  end)

  it("checks the corio.run options of a nested run without changing the run's", function()
    local out, status = command("--gc=incremental",
      [[print(pcall(corio.run, {gc = "fast"}, print)) ; print(corio.run({gc = "generational"},
        function() return collectgarbage("incremental") end))]])
    assert.equal(0, status)
    assert.truthy(out:find("false\tcorio.run: gc must be", 1, true), out)
    assert.truthy(out:find("\nincremental\n", 1, true), out)
  end)

  it("rejects a bad setting", function()
    local out, status = command("--gc=fast", "print(1)")
    assert.equal(2, status)
    assert.truthy(out:find("--gc=fast: generational, incremental, keep or", 1, true), out)
    out, status = command("--gc=pause=x", "print(1)")
    assert.equal(2, status)
    assert.truthy(out:find("--gc=pause=x:", 1, true), out)
    out, status = command("--gc=pause=5000", "print(1)")
    assert.equal(1, status)
    assert.truthy(out:find("corio.run: gc.pause must be an integer from 0 to 1000", 1, true), out)
  end)
end)
