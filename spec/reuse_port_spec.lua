-- corio.serve with reuse_port (README "I/O: TCP"): SO_REUSEPORT on the
-- listener, so several servers (in one process or in several) accept on one
-- port and the kernel spreads the connections among them.
local corio = require "corio"
local helper = require "helper"
local run, CORIO, exists = helper.run, helper.CORIO, helper.exists

-- ask(port) -> the first line the server at port sends
local function ask(port)
  local c = assert(corio.connect("127.0.0.1", port))
  local line = c:read_line()
  c:close()
  return line
end

-- name(id) -> a handler that sends id and closes
local function name(id)
  return function(s) s:write(id .. "\n") end
end

-- spread(port, n) -> the set of answers to n connections
local function spread(port, n)
  local seen = {}
  for _ = 1, n do
    local line = ask(port)
    if line then seen[line] = (seen[line] or 0) + 1 end
  end
  return seen
end

describe("corio.serve reuse_port", function()
  it("without it, a second server on the port fails with EADDRINUSE", function()
    run(function()
      local a = assert(corio.serve("127.0.0.1", 0, name("a")))
      local _, port = a:address()
      assert.same({ nil, "EADDRINUSE: address already in use", "EADDRINUSE" },
                  { corio.serve("127.0.0.1", port, name("b")) })
      a:close()
      -- reuse_port on one side only is not enough either
      local c = assert(corio.serve("127.0.0.1", 0, name("c"), { reuse_port = true }))
      local _, port2 = c:address()
      local _, _, code = corio.serve("127.0.0.1", port2, name("d"))
      assert.equal("EADDRINUSE", code)
      c:close()
    end)
  end)

  it("lets two servers in one process accept on one port", function()
    run(function()
      local a = assert(corio.serve("127.0.0.1", 0, name("a"), { reuse_port = true }))
      local _, port = a:address()
      local b = assert(corio.serve("127.0.0.1", port, name("b"), { reuse_port = true }))
      assert.same({ "127.0.0.1", port }, { b:address() })
      -- the kernel picks a listener by a hash of each connection's ports:
      -- 64 connections all on one side would be a 2^-63 chance
      local seen = spread(port, 64)
      assert.is_true((seen.a or 0) > 0 and (seen.b or 0) > 0)
      assert.equal(64, seen.a + seen.b)
      -- once one closes, the other takes every connection
      a:close()
      assert.same({ b = 8 }, spread(port, 8))
      b:close()
    end)
  end)

  if not exists(CORIO) then
    pending("no corio command at " .. CORIO .. " (set CORIO_BIN to the build's bin/corio)")
    return
  end

  it("lets two processes accept on one port", function()
    local script = helper.write_tmp([[
local corio = require "corio"
local srv = assert(corio.serve("127.0.0.1", tonumber(arg[1]), function(s)
  s:write("child\n")
end, { reuse_port = true }))
print("ready")
io.stdout:flush()
corio.stdin():read_all()  -- until the parent closes our stdin
srv:close()
]])
    local ok, err = pcall(run, function()
      local srv = assert(corio.serve("127.0.0.1", 0, name("parent"), { reuse_port = true }))
      local _, port = srv:address()
      local p = assert(corio.exec({ CORIO, script, tostring(port) },
                                  { stdin = "pipe", stdout = "pipe" }))
      assert.equal("ready", corio.timeout(30, p.stdout.read_line, p.stdout))
      local seen = corio.timeout(30, spread, port, 64)
      assert.is_true((seen.parent or 0) > 0 and (seen.child or 0) > 0)
      assert.equal(64, seen.parent + seen.child)
      p.stdin:close()
      assert.same({ 0 }, { corio.timeout(30, p.wait, p) })
      p.stdout:close()
      srv:close()
    end)
    os.remove(script)
    assert(ok, err)
  end)
end)
