-- Burst memory (README "Tasks"): after a burst of tasks, waiters, timers or
-- connections ends, the Lua heap comes back to within 1 MB of where it was.
-- Tables never shrink as their slots empty, so the scheduler replaces the
-- ones a burst grew (the live table, the anchors of scopes) once most of
-- the burst has finished.
--
-- Each kind runs at 100,000 and at 1,000,000. Under `make test` the
-- million-sized burst of tasks runs (about 1.5 GB of memory and 10 to 40 s
-- on a loaded machine); those of waiters and timers (as long again each)
-- and of connections (minutes of connect and close) run with
-- CORIO_BURST_FULL=1. Under the sanitizer build (make test-asan), where
-- each would take several times that, every million-sized burst needs
-- CORIO_BURST_FULL=1.
local corio = require "corio"
local helper = require "helper"
local run = helper.run

local MB = 1024  -- collectgarbage("count") is in KB
local FULL = os.getenv("CORIO_BURST_FULL") == "1"
local ASAN = (package.searchpath("corio.core", package.cpath) or ""):find("build%-asan") ~= nil

local function heap()
  collectgarbage()
  collectgarbage()
  return collectgarbage("count")
end

-- measure(burst, ...) asserts that burst(...) leaves the heap within 1 MB
-- of where it was
local function measure(burst, ...)
  local before = heap()
  burst(...)
  local after = heap()
  assert.is_true(after - before < MB, ("%.0f KB stayed"):format(after - before))
end

local function tasks(n)
  local list = {}
  for i = 1, n do list[i] = corio.spawn(function() corio.sleep(0); return i end) end
  local res = corio.gather(list)
  assert.equal(n, #res)
  assert.equal(n, res[n])
end

local function waiters(n)
  local ev = corio.event()
  local list = {}
  for i = 1, n do
    list[i] = corio.spawn(function() return corio.move_on_after(0.01, ev.wait, ev) end)
  end
  local res = corio.gather(list)
  for i = 1, n do assert(res[i] == false) end
end

-- n timers at once: tasks sleeping 1 to 20 ms, then loop:call_later callbacks
local function timers(n)
  do
    local list = {}
    for i = 1, n do
      list[i] = corio.spawn(function() corio.sleep(0.001 * (1 + i % 20)); return i end)
    end
    assert.equal(n, corio.gather(list)[n])
  end
  local loop = corio.loop()
  local ev = corio.event()
  local fired = 0
  local function tick()
    fired = fired + 1
    if fired == n then ev:set() end
  end
  for i = 1, n do loop:call_later(0.001 * (1 + i % 20), tick) end
  ev:wait()
  assert.equal(n, fired)
end

-- n connections to a Unix socket server, 1,000 clients at a time, each
-- sending a line and reading it back
local function connections(path, n)
  local per = 1000
  local served = 0
  local srv = assert(corio.serve_unix(path, function(s)
    local line = s:read_line()
    if line then s:write(line .. "\n") end
    s:close()
    served = served + 1
  end, { backlog = 1024 }))
  local function burst()
    local clients = {}
    for w = 1, per do
      clients[w] = corio.spawn(function()
        for _ = 1, n // per do
          local c = assert(corio.connect_unix(path))
          assert(c:write("x\n"))
          assert(c:read_line() == "x")
          c:close()
        end
      end)
    end
    corio.gather(clients)
    helper.settle()
  end
  measure(burst)
  srv:close()
  srv:wait_closed()
  assert.equal(n, served)
end

local function sizes(full_only)
  local list = { { 100000, "100,000" } }
  if FULL or not full_only then list[2] = { 1000000, "1,000,000" } end
  return list
end

describe("after a burst", function()
  for _, size in ipairs(sizes(ASAN)) do
    local n, label = size[1], size[2]
    it("of " .. label .. " tasks the heap is back within 1 MB", function()
      run(function() measure(tasks, n) end)
    end)
  end

  for _, size in ipairs(sizes(true)) do
    local n, label = size[1], size[2]
    it("of " .. label .. " waiters that timed out the heap is back within 1 MB", function()
      run(function() measure(waiters, n) end)
    end)

    it("of " .. label .. " timers the heap is back within 1 MB", function()
      run(function() measure(timers, n) end)
    end)

    it("of " .. label .. " connections the heap is back within 1 MB", function()
      helper.in_dir(function(dir) connections(dir .. "/burst.sock", n) end)
    end)
  end

  -- corio's allocator (docs/reference.md, "Memory") gives the pages a burst
  -- emptied back to the system once the loop idles; Lua's allocator (and so
  -- the sanitizer and valgrind runs, where corio declines its own) keeps them
  it("of 200,000 tasks gives the memory back to the system once the loop idles", function()
    local core = require "corio.core"
    local function rss_kb()
      for line in io.lines("/proc/self/status") do
        local v = line:match("^VmRSS:%s+(%d+)")
        if v then return tonumber(v) end
      end
    end
    run(function()
      if core._introspect().allocator ~= "corio" then return end
      local before = rss_kb()
      tasks(200000)
      local grown = rss_kb() - before
      assert.is_true(grown > 50 * MB, ("the burst grew RSS by %d KB only"):format(grown))
      heap()
      corio.sleep(0.01)  -- a batch ends with nothing ready: the surplus goes
      local left = rss_kb() - before
      assert.is_true(left < grown / 4,
        ("%d KB of the burst's %d KB still resident"):format(left, grown))
      assert.is_true(core._introspect().released > 0)
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
