-- corio.connect to a name with several addresses (Happy Eyeballs, RFC
-- 8305). The name's addresses come from a test hook (core._connect_hook),
-- so nothing leaves loopback: "stall" is an address whose connect never
-- ends, as a blackholed one's would; "::1" is refused by a server that
-- listens on 127.0.0.1 only (or fails at once without IPv6).
local corio = require "corio"
local helper = require "helper"

local hook = corio.core._connect_hook

local function serve(handler)
  local srv = assert(corio.serve("127.0.0.1", 0, handler))
  local _, port = srv:address()
  return srv, port
end

local function hello(s)
  s:write("hello\n")
  s:read_all()
end

describe("corio.connect with several addresses", function()
  after_each(function()
    hook("eyeballs.test", nil)
  end)

  it("starts the next address after 250 ms when the first is blackholed; the first to connect wins", function()
    helper.run(function()
      local srv, port = serve(hello)
      hook("eyeballs.test", { "stall", "127.0.0.1" })
      local t0 = helper.wall()
      local s = assert(corio.connect("eyeballs.test", port, { timeout = 30 }))
      local took = helper.wall() - t0
      assert.equals("hello", s:read_line())
      assert.is_true(took >= 0.2, "the second address started before the delay: " .. took)
      assert.is_true(took < 10, took)
      s:close()
      srv:close()
    end)  -- helper.run: the stalled attempt was closed (no handle, no fd left)
  end)

  it("happy_eyeballs_delay sets the delay; false turns the race off", function()
    helper.run(function()
      local srv, port = serve(hello)
      hook("eyeballs.test", { "stall", "127.0.0.1" })
      local t0 = helper.wall()
      local s = assert(corio.connect("eyeballs.test", port, { happy_eyeballs_delay = 0.01 }))
      assert.is_true(helper.wall() - t0 < 5)
      assert.equals("hello", s:read_line())
      s:close()
      -- off: the second address is tried only when the first fails, so never
      local none, _, code = corio.connect("eyeballs.test", port,
        { happy_eyeballs_delay = false, timeout = 0.5 })
      assert.is_nil(none)
      assert.equals("ETIMEDOUT", code)
      -- infinity is off too; NaN and negatives raise
      none, _, code = corio.connect("eyeballs.test", port,
        { happy_eyeballs_delay = math.huge, timeout = 0.3 })
      assert.is_nil(none)
      assert.equals("ETIMEDOUT", code)
      assert.has_error(function() corio.connect("eyeballs.test", port, { happy_eyeballs_delay = 0 / 0 }) end)
      assert.has_error(function() corio.connect("eyeballs.test", port, { happy_eyeballs_delay = -1 }) end)
      assert.has_error(function() corio.connect("eyeballs.test", port, { happy_eyeballs_delay = "x" }) end)
      srv:close()
    end)
  end)

  it("a failure starts the next address at once, without the delay", function()
    helper.run(function()
      local srv, port = serve(hello)
      hook("eyeballs.test", { "::1", "127.0.0.1" })
      local t0 = helper.wall()
      local s = assert(corio.connect("eyeballs.test", port, { happy_eyeballs_delay = 20 }))
      assert.is_true(helper.wall() - t0 < 10)
      assert.equals("hello", s:read_line())
      s:close()
      srv:close()
    end)
  end)

  it("every address racing at once: one wins, the others are closed", function()
    helper.run(function()
      local conns, ended = 0, 0
      local srv, port = serve(function(s)
        conns = conns + 1
        s:read_all()
        ended = ended + 1
      end)
      hook("eyeballs.test", { "127.0.0.1", "127.0.0.1", "127.0.0.1", "stall" })
      local s = assert(corio.connect("eyeballs.test", port, { happy_eyeballs_delay = 0 }))
      assert.is_true(s:write("x"))
      corio.sleep(0.1)
      -- the losers that reached the server were closed: their handlers ended
      assert.is_true(conns >= 1)
      assert.equals(conns - 1, ended)
      s:close()
      srv:close()
      srv:wait_closed()
      assert.equals(conns, ended)
    end)
  end)

  it("all addresses stalled: the timeout ends it and nothing is left open", function()
    helper.run(function()
      hook("eyeballs.test", { "stall", "stall", "stall" })
      local s, _, code = corio.connect("eyeballs.test", 9, { timeout = 0.5, happy_eyeballs_delay = 0.05 })
      assert.is_nil(s)
      assert.equals("ETIMEDOUT", code)
      -- cancelled by a scope while attempts are under way
      local ok, err = pcall(function()
        local _ <close> = corio.timeout(0.1)
        corio.connect("eyeballs.test", 9)
      end)
      assert.is_false(ok)
      assert.is_true(corio.TimeoutError.is(err) or corio.is_cancelled(err), tostring(err))
    end)
  end)

  it("no address at all fails cleanly", function()
    helper.run(function()
      hook("eyeballs.test", {})
      local s, _, code = corio.connect("eyeballs.test", 9)
      assert.is_nil(s)
      assert.equals("EAI_NONAME", code)
    end)
  end)
end)
