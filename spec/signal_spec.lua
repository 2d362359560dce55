-- Signals (DESIGN.md "I/O"): corio.signal receivers. The specs signal their
-- own process (with kill(1), run through corio.run_process).
local corio = require "corio"
local helper = require "helper"

local function mypid()
  local f = assert(io.open("/proc/self/stat"))
  local s = f:read("l")
  f:close()
  return tonumber(s:match("^(%d+)"))
end

local ME = tostring(mypid())

-- send sig to this process (returns once kill(1) has exited)
local function raise(sig)
  assert.equals(0, (corio.run_process({ "kill", "-" .. sig, ME })))
end

-- wait (on the loop, a bounded number of turns) until pred() holds
local function until_true(pred)
  for _ = 1, 2000 do
    if pred() then return true end
    corio.sleep(0.005)
  end
  return pred()
end

describe("corio.signal", function()
  it("delivers SIGTERM to two receivers", function()
    local a, b = helper.run(function()
      local r1 <close> = assert(corio.signal("SIGTERM"))
      local r2 <close> = assert(corio.signal("TERM"))
      assert.equals("signal receiver SIGTERM (open, 0 pending)", tostring(r1))
      return corio.gather(function() return r1:wait() end, function()
        helper.settle()
        raise("TERM")
        return r2:wait()
      end)
    end)
    assert.equals("SIGTERM", a)
    assert.equals("SIGTERM", b)
  end)

  it("counts deliveries between waits, and a cancelled wait takes none", function()
    helper.run(function()
      local r <close> = assert(corio.signal("SIGUSR1"))
      local t = corio.spawn(r.wait, r)
      helper.settle()
      t:cancel()
      helper.cancelled_await(t)
      for _ = 1, 3 do
        raise("USR1")
        assert.is_true(until_true(function() return r:pending() >= 1 end))
      end
      assert.is_true(until_true(function() return r:pending() == 3 end))
      assert.equals("signal receiver SIGUSR1 (open, 3 pending)", tostring(r))
      for _ = 1, 3 do assert.equals("SIGUSR1", r:wait()) end
      assert.equals(0, r:pending())
    end)
  end)

  it("iterates over deliveries until the receiver is closed", function()
    local seen = helper.run(function()
      local r = assert(corio.signal("SIGUSR2"))
      local seen = {}
      corio.gather(function()
        for sig in r do seen[#seen + 1] = sig end
      end, function()
        helper.settle()
        raise("USR2")
        assert.is_true(until_true(function() return #seen == 1 end))
        raise("USR2")
        assert.is_true(until_true(function() return #seen == 2 end))
        r:close()  -- ends the loop
      end)
      assert.is_nil(r:wait())
      r:close()  -- again: nothing
      assert.equals("signal receiver SIGUSR2 (closed)", tostring(r))
      return seen
    end)
    assert.same({ "SIGUSR2", "SIGUSR2" }, seen)
  end)

  it("wakes a waiter with nil when the receiver closes, and closes at the end of its scope", function()
    helper.run(function()
      local r = assert(corio.signal("SIGHUP"))
      local t = corio.spawn(r.wait, r)
      helper.settle()
      r:close()
      assert.is_nil(t:await())
      local kept
      do
        local s <close> = assert(corio.signal("SIGHUP"))
        kept = s
      end
      assert.is_nil(kept:wait())
      -- a receiver left open is closed by the run's end
      corio.signal("SIGHUP")
    end)
  end)

  it("takes Ctrl-C over from corio.run while a SIGINT receiver is open", function()
    local err = helper.run_error(function()
      do
        local r <close> = assert(corio.signal("SIGINT"))
        raise("INT")
        assert.equals("SIGINT", r:wait())  -- the main task was not cancelled
      end
      -- closed: SIGINT cancels the main task again
      raise("INT")
      corio.sleep(30)
    end)
    assert.is_true(corio.is_cancelled(err))
    assert.equals("cancelled: interrupted (SIGINT)", tostring(err))
  end)

  it("a task waiting only on a receiver is not a deadlock", function()
    local sig = helper.run(function()
      local r <close> = assert(corio.signal("SIGUSR1"))
      corio.spawn(function()
        corio.sleep(0.05)
        raise("USR1")
      end)
      return r:wait()
    end)
    assert.equals("SIGUSR1", sig)
  end)

  it("returns nil, msg, code for an uncatchable signal and raises for misuse", function()
    helper.run(function()
      assert.same({ nil, "EINVAL: invalid argument", "EINVAL" }, { corio.signal("SIGKILL") })
      assert.has_error(function() corio.signal("SIGNOPE") end, "corio.signal: unknown signal 'SIGNOPE'")
      assert.has_error(function() corio.signal({}) end,
                       "corio.signal: a signal name (\"SIGTERM\") expected, got table")
      local r <close> = assert(corio.signal(10))
      for _, m in ipairs({ "wait", "close", "pending" }) do
        local ok, e = pcall(r[m], 42)
        assert.is_false(ok)
        assert.truthy(e:find("bad self to 'receiver:" .. m .. "' (SignalReceiver expected, got number)", 1, true), e)
      end
    end)
    assert.has_error(function() corio.signal("SIGTERM") end,
                     "corio.signal: no running loop (start one with corio.run)")
  end)
end)
