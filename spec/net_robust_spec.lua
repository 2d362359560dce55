-- Standard streams made again while the earlier one on the same fd is still
-- closing (README "corio.stdin([opts]), corio.stdout([opts]),
-- corio.stderr([opts])"): the new stream's bytes come after every byte of
-- the old one, and the fd is left as it was. The corio command runs each
-- script under `timeout`, its output on a pipe, a regular file or a socket.
-- (The accept path out of memory is tested in C: spec/c/host_accept_oom.c.)
local helper = require "helper"
local CORIO, exists, quote = helper.CORIO, helper.exists, helper.quote

local _, tmpname, file, cleanup = helper.tmpfiles()

-- sh(cmd, source): the script `source` run by `sh -c cmd` (helper.shell)
local slurp, sh = helper.slurp, helper.shell(file)

if not exists(CORIO) then
  describe("standard streams made again", function()
    pending("no corio command at " .. CORIO .. " (set CORIO_BIN to the build's bin/corio)")
  end)
  return
end

-- 4 MiB in 128 writes of 32 KiB, each a different byte: more than the
-- reader takes before the script goes on, and more writes than a file
-- stream hands to one uv_fs_write
local function big()
  local parts = {}
  for i = 1, 128 do parts[i] = string.rep(string.char(64 + i % 26), 32768) end
  return table.concat(parts)
end

-- The reader of a pipe waits at a gate (a FIFO) until the script opens it,
-- so what the script writes stays queued until then: gated(cmd) runs
-- `cmd | cat` that way, GATE in cmd being the FIFO's path. If the script
-- never opens the gate, the reader starts after 20 s.
local function gated(cmd, source)
  local gate = tmpname()
  os.remove(gate)
  assert(os.execute("mkfifo " .. quote(gate)))
  return sh(cmd:gsub("GATE", gate) .. " | { timeout 20 sh -c " ..
            quote("read _ <" .. quote(gate)) .. "; cat; }", source)
end

-- open_gate(path): in a script, lets the reader go
local OPEN_GATE = [[
local function open_gate(path)
  local f = assert(io.open(path, "w"))
  f:write("go\n")
  f:close()
end
]]

-- The first stream on the fd (arguments: "stdout" or "stderr", and the
-- gate or nothing) queues big() with no backpressure and is closed by a
-- task of its own, which waits for the flush; meanwhile the main task
-- asks for the stream again (a new one, once the old one is done with the
-- fd) and writes "second" at once; a third call gives the new one back.
local SECOND = OPEN_GATE .. [[
local corio = require "corio"
local which, gate = ...
local open = corio[which]
local first = open { high_water = 1 << 30 }
for i = 1, 128 do assert(first:write(string.rep(string.char(64 + i % 26), 32768))) end
local closer = corio.spawn(function() return first:close() end)
corio.sleep(0)  -- the closer runs: the stream is closing, its bytes queued
assert(tostring(first):match("%(closing%)"), tostring(first))
if gate then open_gate(gate) end
local second = open()
assert(second ~= first)
assert(second:write("second\n"))
assert(closer:await() == true)
assert(open() == second)
assert(second:close())
]]

describe("standard streams made again", function()
  after_each(cleanup)

  it("stdout on a pipe: the new stream's bytes come after the closing one's", function()
    local errf = tmpname()
    local out, code = gated("CORIO SCRIPT stdout GATE 2>" .. errf, SECOND)
    assert.equals(0, code, slurp(errf))
    assert.equals(#big() + 7, #out)
    assert.is_true(out == big() .. "second\n", "bytes out of order")
  end)

  it("stderr likewise (its errors would show in the output)", function()
    local out, code = gated("CORIO SCRIPT stderr GATE 2>&1 >/dev/null", SECOND)
    assert.equals(0, code, out:sub(-300))
    assert.equals(#big() + 7, #out)
    assert.is_true(out == big() .. "second\n", "bytes out of order")
  end)

  it("stdout on a regular file: the queued writes go first", function()
    local outf, errf = tmpname(), tmpname()
    local _, code = sh("CORIO SCRIPT stdout >" .. outf .. " 2>" .. errf, SECOND)
    assert.equals(0, code, slurp(errf))
    local got = slurp(outf)
    assert.equals(#big() + 7, #got)
    assert.is_true(got == big() .. "second\n", "bytes out of order")
  end)

  it("closed while its close completes: the next one waits, the socket stays blocking", function()
    local runner = helper.socketpair_runner(file)
    if runner == nil then
      pending("no python3 to make a socketpair")
      return
    end
    -- stdout on a socket: the stream makes the shared description
    -- non-blocking and puts its flags back when its handle has closed
    local src = [[
local corio = require "corio"
local first = corio.stdout()
assert(first:write("first\n"))
assert(first:close())  -- nothing left queued: closed at once
local second = corio.stdout()
assert(second ~= first)
assert(second:write("second\n"))
assert(second:close())
local third = corio.stdout()  -- and again, now that the loop went round
assert(third:write("third\n"))
]]
    local errf = tmpname()
    local out = sh(runner .. " CORIO SCRIPT 2>" .. errf, src)
    assert.equals("status 0 nonblock 0\nfirst\nsecond\nthird\n", out, slurp(errf))
  end)

  it("where it cannot wait (a done callback), nil and EBUSY while the old one closes", function()
    local src = OPEN_GATE .. [[
local corio = require "corio"
local gate = ...
local first = corio.stdout { high_water = 1 << 30 }
for _ = 1, 128 do first:write(string.rep("x", 32768)) end
local closer = corio.spawn(function() return first:close() end)
local got
local marker = corio.spawn(function() end)
marker:add_done_callback(function()
  got = table.pack(corio.stdout())
end)
marker:await()
open_gate(gate)
assert(closer:await() == true)
corio.stderr():write(tostring(got[1]), " ", tostring(got[2]), " ", tostring(got[3]), "\n")
local again = corio.stdout()  -- in a task, once the old one is closed: a new one
assert(again ~= first and again:write("end\n"))
]]
    local errf = tmpname()
    local out, code = gated("CORIO SCRIPT GATE 2>" .. errf, src)
    assert.equals(0, code, slurp(errf))
    assert.equals(128 * 32768 + 4, #out)
    assert.equals("end\n", out:sub(-4))
    assert.equals("nil EBUSY: resource busy or locked EBUSY\n", slurp(errf))
  end)

  it("stdin again while a read of the old one is under way on a file", function()
    -- a file's read runs in libuv's thread pool; the old stream closes
    -- while it does, and the new one starts reading once it has ended
    local src = [[
local corio = require "corio"
local first = corio.stdin()
local reader = corio.spawn(function() return first:read(10) end)
corio.sleep(0)  -- the reader waits: its read is under way
first:close()
local d, msg = reader:await()
assert(d == nil and msg == "closed", tostring(msg))
local second = corio.stdin()
assert(second ~= first)
local rest = second:read_all()
corio.stdout():write(tostring(second), " ", type(rest), "\n")
]]
    local inp = file(string.rep("i", 100000))
    local out, code = sh("CORIO SCRIPT <" .. inp, src)
    assert.equals(0, code, out)
    assert.equals("file stream fd 0 (open) string\n", out)
  end)
end)
