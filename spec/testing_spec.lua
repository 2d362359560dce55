-- corio.testing: the virtual clock, autojump, advance, wait_all_blocked,
-- the leak report, and the busted helper.
local corio = require "corio"
local helper = require "helper"
local testing = corio.testing

local wall = helper.wall

describe("corio.testing.run", function()
  it("autojumps through nested timeouts: 30 s inside 60 s takes no real time", function()
    local w0 = wall()
    local elapsed, err = testing.run(function()
      local t0 = corio.now()
      local ok, e = pcall(function()
        local outer <close> = corio.timeout(60)
        local inner <close> = corio.timeout(30)
        corio.sleep(1000)
      end)
      assert.is_false(ok)
      return corio.now() - t0, e
    end)
    local w = wall() - w0
    assert.is_true(corio.TimeoutError.is(err), tostring(err))
    assert.matches("timeout%(30%)", tostring(err))
    assert.is_true(elapsed >= 30 and elapsed < 30.5, "virtual time: " .. elapsed)
    assert.is_true(w < 5, "wall time: " .. w)
  end)

  it("orders timers on the virtual clock as on the real one", function()
    local seen = testing.run(function()
      local seen = {}
      local g <close> = corio.task_group()
      for _, d in ipairs { 3600, 5, 60, 0.5 } do
        g:spawn(function() corio.sleep(d); seen[#seen + 1] = d end)
      end
      return seen
    end)
    assert.same({ 0.5, 5, 60, 3600 }, seen)
  end)

  it("advance() moves the clock and runs what falls due, without autojump", function()
    testing.run(function()
      local fired = {}
      local t0 = corio.now()
      local g <close> = corio.task_group()
      g:spawn(function() corio.sleep(10); fired[#fired + 1] = 10 end)
      g:spawn(function() corio.sleep(20); fired[#fired + 1] = 20 end)
      testing.wait_all_blocked()
      assert.same({}, fired)
      testing.advance(15)
      assert.same({ 10 }, fired)
      assert.is_true(corio.now() - t0 >= 15)
      testing.advance(5)
      assert.same({ 10, 20 }, fired)
      assert.is_true(corio.now() - t0 < 21, "clock ran ahead: " .. (corio.now() - t0))
    end, { autojump = false })
  end)

  it("wait_all_blocked() returns once every other task waits", function()
    testing.run(function()
      local steps = 0
      local ev = corio.event()
      local t = corio.spawn(function()
        for _ = 1, 50 do steps = steps + 1; corio.sleep(0) end
        ev:wait()
      end)
      testing.wait_all_blocked()
      assert.equals(50, steps)
      ev:set()
      corio.await(t)
    end)
  end)

  it("reports a task left running, by name", function()
    local ok, err = pcall(testing.run, function()
      local t = corio.spawn(function() corio.sleep(1e6) end)
      t:set_name("forgotten")
    end)
    assert.is_false(ok)
    assert.matches("left things behind", err)
    assert.matches('task "forgotten" still running', err)
  end)

  it("reports a stream and a server left open", function()
    local ok, err = pcall(testing.run, function()
      local srv = assert(corio.serve("127.0.0.1", 0, function(s) s:read(1) end))
      local _, port = srv:address()
      local s = assert(corio.connect("127.0.0.1", port))
      testing.wait_all_blocked()
      return s
    end)
    assert.is_false(ok)
    assert.matches("tcp handles? still open", err)
  end)

  it("reports a file left open", function()
    local path = os.tmpname()
    local ok, err = pcall(testing.run, function()
      return assert(corio.fs.open(path, "r"))
    end)
    os.remove(path)
    assert.is_false(ok)
    assert.matches("fd %d+ %(" .. path:gsub("%p", "%%%0") .. "%) still open", err)
  end)

  it("keeps real I/O working beside the virtual clock", function()
    local w0 = wall()
    testing.run(function()
      local srv = assert(corio.serve("127.0.0.1", 0, function(s)
        local line = s:read_line()
        s:write(line:upper() .. "\n")
        s:close()
      end))
      local _, port = srv:address()
      local reply
      do
        local t <close> = corio.timeout(30)  -- real I/O pending: no jump
        local s = assert(corio.connect("127.0.0.1", port))
        s:write("echo\n")
        reply = s:read_line()
        s:close()
      end
      assert.equals("ECHO", reply)
      srv:close()
      srv:wait_closed()
      local t0 = corio.now()
      corio.sleep(120)  -- nothing but timers left: jumps
      assert.is_true(corio.now() - t0 >= 120)
    end)
    assert.is_true(wall() - w0 < 10, "wall time: " .. (wall() - w0))
  end)

  it("returns fn's results and raises its errors", function()
    assert.same({ 1, nil, 3 }, { testing.run(function() return 1, nil, 3 end) })
    local ok, err = pcall(testing.run, function() error("boom", 0) end)
    assert.is_false(ok)
    assert.matches("boom", tostring(err))
  end)

  it("leaves corio.run on the real clock afterwards", function()
    testing.run(function() corio.sleep(3600) end)
    local w0 = wall()
    helper.run(function()
      local t0 = corio.now()
      corio.sleep(0.2)
      local d = corio.now() - t0
      assert.is_true(d >= 0.19 and d < 5, "real sleep: " .. d)
    end)
    assert.is_true(wall() - w0 >= 0.19)
  end)

  it("raises on misuse", function()
    assert.has_error(function() testing.run(42) end,
      "corio.testing.run: bad argument #1 (function expected, got number)")
    assert.has_error(function() testing.run(function() end, { clock = "fast" }) end,
      'corio.testing.run: clock must be "virtual" or "real", got fast')
    assert.has_error(function() testing.advance(1) end,
      "corio.testing.advance: only inside corio.testing.run")
    assert.has_error(function() testing.wait_all_blocked() end,
      "corio.testing.wait_all_blocked: only inside corio.testing.run")
    testing.run(function()
      assert.has_error(function() testing.advance(1) end,
        'corio.testing.advance: the clock is real (clock = "virtual" makes it movable)')
      assert.has_error(function() testing.run(function() end) end,
        "corio.testing.run: a loop is already running")
    end, { clock = "real" })
    testing.run(function()
      assert.has_error(function() testing.advance(-1) end,
        "corio.testing.advance: bad argument #1 (seconds >= 0 expected, got -1)")
    end)
  end)
end)

describe("corio.testing.it", function()
  testing.it("runs the body as the main task, on the virtual clock", function()
    local t0 = corio.now()
    corio.sleep(86400)
    assert.is_true(corio.now() - t0 >= 86400)
  end)

  it("testing.async wraps a body for busted's it", function()
    local f = testing.async(function() corio.sleep(60); return "done" end)
    assert.equals("done", f())
  end)
end)
