-- The runtime's test modes (spec/modes.sh): CORIO_SHUFFLE shuffles each batch
-- of ready tasks but keeps the orders corio documents; CORIO_GC_STRESS=1
-- collects before every step. Under spec/modes.sh (CORIO_EXPECT_MODE set), the
-- last part checks that the mode is really on in this process.
local corio = require "corio"
local helper = require "helper"

-- prints the order in which 20 spawned tasks start, then the order in which
-- tasks made to wait one after the other (1 to 10) resume, for each kind of
-- wait whose wake-up order corio documents
local ORDERS = [[
local corio = require "corio"
local out, ts = {}, {}
for i = 1, 20 do ts[i] = corio.spawn(function() out[#out + 1] = i end) end
for i = 1, 20 do ts[i]:await() end
print("spawn " .. table.concat(out, " "))
local function in_order(name, wait, wake)
  local started, got = 0, {}
  for i = 1, 10 do
    ts[i] = corio.spawn(function()
      started = i
      local v = wait() or i
      got[#got + 1] = v
    end)
    while started < i do corio.sleep(0) end
  end
  corio.sleep(0)
  wake()
  for i = 1, 10 do ts[i]:await() end
  print(name .. " " .. table.concat(got, " "))
end
in_order("sleep", function() corio.sleep(0.02) end, function() end)
local f = corio.future()
in_order("future", function() f:await() end, function() f:set_result(true) end)
local q = corio.queue()
in_order("queue", function() return q:get() end,
         function() for i = 1, 10 do q:put(i) end end)
local e = corio.event()
in_order("event", function() e:wait() end, function() e:set() end)
]]

local ONE_TO_TEN = "1 2 3 4 5 6 7 8 9 10"

-- under spec/modes.sh (CORIO_EXPECT_MODE set): only the check that the mode
-- is on in this very process (the rest runs with the plain suite)
local mode = os.getenv("CORIO_EXPECT_MODE")

describe("test modes", function()
  if mode then
    it("are on in this process: " .. mode, function()
      if mode == "generational" or mode == "incremental" then
        assert.equals(mode, collectgarbage(mode))  -- the mode it was in
      elseif mode == "gc" then  -- a collection before every step
        local seen = setmetatable({}, { __mode = "v" })
        helper.run(function()
          seen[1] = {}
          corio.sleep(0)
          assert.is_nil(seen[1])
        end)
      elseif mode == "shuffle" then  -- 20 tasks do not start in spawn order
        local out = {}
        helper.run(function()
          local ts = {}
          for i = 1, 20 do ts[i] = corio.spawn(function() out[#out + 1] = i end) end
          for i = 1, 20 do ts[i]:await() end
        end)
        assert.are_not.equal("1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20",
                             table.concat(out, " "))
      else
        error("CORIO_EXPECT_MODE: unknown mode " .. mode)
      end
    end)
    return
  end

  local _, _, file, cleanup = helper.tmpfiles()
  after_each(cleanup)

  -- the output (stdout and stderr) of the command running source, with the
  -- environment variables in env added, the modes' own removed first
  local function command(env, source)
    local p = assert(io.popen(("timeout 60 env -u CORIO_SHUFFLE -u CORIO_SHUFFLE_SHOWN "
      .. "-u CORIO_GC_STRESS %s %s %s 2>&1"):format(env, helper.quote(helper.CORIO),
      file(source)), "r"))
    local out = p:read("a")
    local _, _, code = p:close()
    assert.is_true(code == 0, out)
    return out
  end

  -- the orders the script prints, and what corio said on stderr
  local function orders(env)
    local out = command(env, ORDERS)
    local res = {}
    for name, list in out:gmatch("(%a+) ([%d ]+)\n") do res[name] = list end
    res.said = {}
    for line in out:gmatch("corio: [^\n]*") do res.said[#res.said + 1] = line end
    return res
  end

  local function permutation(list, n)
    local seen, count = {}, 0
    for k in list:gmatch("%d+") do
      k = tonumber(k)
      assert.is_nil(seen[k])
      seen[k] = true
      count = count + 1
    end
    assert.equals(n, count)
  end

  it("runs tasks in the order they became ready when CORIO_SHUFFLE is unset", function()
    local res = orders("")
    assert.equals("1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20", res.spawn)
    assert.same({}, res.said)
  end)

  it("shuffles with CORIO_SHUFFLE=seed, the same way for the same seed, and says the seed once", function()
    local a, b, c = orders("CORIO_SHUFFLE=7"), orders("CORIO_SHUFFLE=7"), orders("CORIO_SHUFFLE=8")
    permutation(a.spawn, 20)
    permutation(c.spawn, 20)
    assert.are_not.equal("1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20", a.spawn)
    assert.equals(a.spawn, b.spawn)
    assert.are_not.equal(a.spawn, c.spawn)
    assert.same({ "corio: CORIO_SHUFFLE=7" }, a.said)
  end)

  it("keeps the documented orders: timers, a future's waiters, FIFO wake-up", function()
    for _, seed in ipairs({ "1", "2", "3", "random" }) do
      local res = orders("CORIO_SHUFFLE=" .. seed)
      assert.equals(ONE_TO_TEN, res.sleep)
      assert.equals(ONE_TO_TEN, res.future)
      assert.equals(ONE_TO_TEN, res.queue)
      assert.equals(ONE_TO_TEN, res.event)
      assert.equals(1, #res.said)
    end
  end)

  it("picks a seed and says it with CORIO_SHUFFLE=random", function()
    local res = orders("CORIO_SHUFFLE=random")
    assert.equals(1, #res.said)
    local seed = assert(res.said[1]:match("^corio: CORIO_SHUFFLE=(%d+)$"), res.said[1])
    assert.equals(res.spawn, orders("CORIO_SHUFFLE=" .. seed).spawn)
  end)

  it("ignores a CORIO_SHUFFLE that is not a number, and says so", function()
    local res = orders("CORIO_SHUFFLE=soon")
    assert.equals("1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20", res.spawn)
    assert.equals(1, #res.said)
    assert.truthy(res.said[1]:find("not shuffling", 1, true))
  end)

  it("collects before every step with CORIO_GC_STRESS=1", function()
    local script = [[
      local corio = require "corio"
      local seen = setmetatable({}, { __mode = "v" })
      seen[1] = {}
      corio.sleep(0)  -- a step boundary: the table is gone under the stress mode
      print(seen[1] == nil)
    ]]
    assert.equals("true\n", command("CORIO_GC_STRESS=1", script))
  end)
end)
