-- The end of a run with streams still flushing (README "I/O: TCP"): the run's
-- shutdown flushes what nobody closed, but a peer that never reads must not
-- hold the process. Each case runs a script with the corio command under
-- `timeout`, so a hang fails the spec instead of hanging busted.
local helper = require "helper"
local CORIO, exists, quote = helper.CORIO, helper.exists, helper.quote

-- run_script(source) -> output (stdout and stderr), exit status, seconds
local function run_script(source)
  local path = helper.write_tmp(source)
  local cmd = "s=$(date +%s%N); timeout 30 " .. quote(CORIO) .. " " .. quote(path) ..
    " 2>&1; rc=$?; e=$(date +%s%N); echo \"status $rc $(( (e - s) / 1000000 ))\""
  local p = assert(io.popen("sh -c " .. quote(cmd)))
  local out = p:read("a")
  p:close()
  os.remove(path)
  local rest, rc, ms = out:match("^(.-)status (%d+) (%d+)\n$")
  assert(rest, out)
  return rest, tonumber(rc), tonumber(ms) / 1000
end

if not exists(CORIO) then
  describe("the run's shutdown with streams still flushing", function()
    pending("no corio command at " .. CORIO .. " (set CORIO_BIN to the build's bin/corio)")
  end)
  return
end

-- both ends of a connection hold 32 MiB queued and neither reads: the
-- kernel buffers fill, and each flush waits on the other forever
local STALLED = [[
local corio = require "corio"
local big = string.rep("x", 32 * 1024 * 1024)
local srv = assert(corio.serve("127.0.0.1", 0, function(s)
  s:write(big)  -- queued whole (high_water is above it); the handler returns
end, { high_water = 1 << 30 }))
local host, port = srv:address()
local c = assert(corio.connect(host, port, { high_water = 1 << 30 }))
c:write(big)    -- queued, and nobody closes c
%s
corio.sleep(0.1)
print("main done")
]]

describe("the run's shutdown with streams still flushing", function()
  it("does not wait forever on a peer that never reads", function()
    local out, rc, secs = run_script(STALLED:format(""))
    assert.equals("main done\n", out)
    assert.equals(0, rc)
    assert.is_true(secs < 30, "took " .. secs .. " s")  -- the stall rule: 1 to 2 s (30: loaded sanitizer runs took 12)
  end)

  it("still reaches the deadlock rounds when a task cannot finish", function()
    local out, rc, secs = run_script(STALLED:format([[
corio.spawn(function() corio.shield(function() corio.event():wait() end) end)
corio.spawn(function() c:close() end)  -- an explicit close, cancelled by the shutdown
]]))
    assert.equals(0, rc)
    assert.matches("^main done\n", out)
    assert.matches("deadlock", out)  -- the shielded task, woken by the rounds
    assert.is_true(secs < 30, "took " .. secs .. " s")
  end)

  it("delivers every byte to a peer that reads slowly, past the stall period", function()
    local out, rc = run_script([[
local corio = require "corio"
local N = 24 * 1024 * 1024
local srv = assert(corio.serve("127.0.0.1", 0, function(s)
  corio.shield(function()  -- the shutdown does not stop this reader
    local got = 0
    while got < N do
      local d = assert(s:read())
      got = got + #d
      corio.sleep(0.007)  -- about 3 s in all
    end
    print("got", got)
  end)
end))
local host, port = srv:address()
local c = assert(corio.connect(host, port, { high_water = 1 << 30 }))
c:write(string.rep("y", N))
print("main done")
]])
    assert.equals("main done\ngot\t" .. 24 * 1024 * 1024 .. "\n", out)
    assert.equals(0, rc)
  end)

  it("leaves an explicit close waiting until the user's timeout, then drops it at the end", function()
    local out, rc, secs = run_script(STALLED:format([[
local ok, err = pcall(corio.timeout, 0.3, c.close, c)  -- flushes: the peer never reads
print(ok, corio.TimeoutError.is(err), tostring(c))
]]))
    assert.matches("^false\ttrue\ttcp stream [^\n]*%(closing%)\nmain done\n$", out)
    assert.equals(0, rc)
    assert.is_true(secs < 10, "took " .. secs .. " s")
  end)
end)
