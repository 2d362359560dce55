-- corio.stdin(), corio.stdout(), corio.stderr() (README "I/O: Unix sockets,
-- pipes and standard streams"): the corio command runs a script with its
-- standard streams on pipes, regular files, /dev/null and a terminal, and
-- the bytes are checked exactly. Each run is under `timeout`.
local helper = require "helper"
local CORIO, exists, quote = helper.CORIO, helper.exists, helper.quote

-- tmpname() and file(content) -> paths of new temporary files (the second
-- holding content), all removed by cleanup()
local _, tmpname, file, cleanup = helper.tmpfiles()

-- sh(cmd, source): the script `source` run by `sh -c cmd` (helper.shell)
local slurp, sh = helper.slurp, helper.shell(file)

local function checksum(s)
  local sum = 0
  for i = 1, #s, 4096 do
    local b = { s:byte(i, math.min(i + 4095, #s)) }
    for j = 1, #b do sum = sum + b[j] * ((i + j) % 251 + 1) end
  end
  return sum % 4294967296
end

if not exists(CORIO) then
  describe("standard streams", function()
    pending("no corio command at " .. CORIO .. " (set CORIO_BIN to the build's bin/corio)")
  end)
  return
end

-- copies stdin to stdout line by line, numbered; then reports on stderr
local NUMBER = [[
local corio = require "corio"
local inp, out = corio.stdin(), corio.stdout()
assert(inp == corio.stdin() and out == corio.stdout())
local n = 0
for line in inp:lines() do
  n = n + 1
  out:write(n, ": ", line, "\n")
end
assert(inp:read() == nil)  -- still at the end
corio.stderr():write("kinds: ", tostring(inp), ", ", tostring(out), "\n")
]]

-- a binary-safe copy of stdin to stdout in reads of up to 1000 bytes
local COPY = [[
local corio = require "corio"
local inp, out = corio.stdin(), corio.stdout()
while true do
  local data = inp:read(1000)
  if not data then break end
  out:write(data)
end
]]

-- 6 MiB of patterned bytes on stdout, never closed: the run's end flushes it
local BIG = [[
local corio = require "corio"
local out = corio.stdout()
for i = 1, 96 do out:write(string.rep(string.char(i % 256), 65535), "\n") end
]]

local function big()
  local parts = {}
  for i = 1, 96 do parts[i] = string.rep(string.char(i % 256), 65535) .. "\n" end
  return table.concat(parts)
end

describe("standard streams", function()
  after_each(cleanup)

  it("stdin and stdout on pipes: lines, numbered, and the kinds", function()
    local errf = tmpname()
    local out, code = sh("printf 'one\\ntwo\\r\\n\\nlast' | CORIO SCRIPT 2>" .. errf .. " | cat", NUMBER)
    assert.equals(0, code)
    assert.equals("1: one\n2: two\n3: \n4: last\n", out)
    assert.equals("kinds: pipe stream fd 0 (open), pipe stream fd 1 (open)\n", slurp(errf))
  end)

  it("stdin and stdout on regular files", function()
    local inp, outf, errf = file("alpha\nbeta\n"), tmpname(), tmpname()
    local _, code = sh("CORIO SCRIPT <" .. inp .. " >" .. outf .. " 2>" .. errf, NUMBER)
    assert.equals(0, code)
    assert.equals("1: alpha\n2: beta\n", slurp(outf))
    assert.equals("kinds: file stream fd 0 (open), file stream fd 1 (open)\n", slurp(errf))
    -- appending (>>) writes at the end
    local _, code2 = sh("CORIO SCRIPT <" .. inp .. " >>" .. outf .. " 2>/dev/null", NUMBER)
    assert.equals(0, code2)
    assert.equals("1: alpha\n2: beta\n1: alpha\n2: beta\n", slurp(outf))
  end)

  it("stdin from /dev/null is at its end at once", function()
    local out, code = sh("CORIO SCRIPT </dev/null 2>&1", NUMBER)
    assert.equals(0, code)
    assert.equals("kinds: file stream fd 0 (open), pipe stream fd 1 (open)\n", out)
  end)

  it("copies binary data exactly, through pipes and files", function()
    local bytes = {}
    for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
    local data = string.rep(table.concat(bytes), 4096) .. "\0\r\n\0"  -- 1 MiB and a bit
    local inp, outf = file(data), tmpname()
    local out, code = sh("cat " .. inp .. " | CORIO SCRIPT | cat", COPY)
    assert.equals(0, code)
    assert.equals(#data, #out)
    assert.equals(checksum(data), checksum(out))
    local _, code2 = sh("CORIO SCRIPT <" .. inp .. " >" .. outf, COPY)
    assert.equals(0, code2)
    local got = slurp(outf)
    assert.equals(#data, #got)
    assert.equals(checksum(data), checksum(got))
  end)

  it("a large output nobody closed is complete at exit: to a pipe, a slow reader, a file", function()
    local want = big()
    local out, code = sh("CORIO SCRIPT | cat", BIG)
    assert.equals(0, code)
    assert.equals(#want, #out)
    assert.equals(checksum(want), checksum(out))
    -- the reader starts late: the exit waits for it, as a blocking write would
    local out2 = sh("CORIO SCRIPT | (sleep 1.5; cat)", BIG)
    assert.equals(#want, #out2)
    assert.equals(checksum(want), checksum(out2))
    local outf = tmpname()
    local _, code3 = sh("CORIO SCRIPT >" .. outf, BIG)
    assert.equals(0, code3)
    local got = slurp(outf)
    assert.equals(#want, #got)
    assert.equals(checksum(want), checksum(got))
  end)

  it("closing stdout flushes it first; print before it comes first", function()
    local src = [[
local corio = require "corio"
print("printed before")
local out = corio.stdout()
out:write(string.rep("z", 3 * 1024 * 1024), "\n")
assert(out:close())
assert(tostring(out) == "pipe stream (closed)" or tostring(out) == "file stream (closed)")
io.write("after close\n")
io.stdout:flush()
local again = corio.stdout()  -- a new stream on fd 1
assert(again ~= out)
again:write("again\n")
]]
    local want = "printed before\n" .. string.rep("z", 3 * 1024 * 1024) .. "\nafter close\nagain\n"
    local out, code = sh("CORIO SCRIPT | cat", src)
    assert.equals(0, code)
    assert.equals(#want, #out)
    assert.equals(want, out)
    local outf = tmpname()
    sh("CORIO SCRIPT >" .. outf, src)
    assert.equals(want, slurp(outf))
  end)

  it("stderr works, and a script that fails still gets its output out", function()
    local src = [[
local corio = require "corio"
corio.stdout():write(string.rep("o", 1000000))
corio.stderr():write("to stderr\n")
error("failed on purpose")
]]
    local errf = tmpname()
    local out = sh("(CORIO SCRIPT 2>" .. errf .. "; echo \"status $?\" >>" .. errf .. ") | cat", src)
    assert.equals(string.rep("o", 1000000), out)
    local err = slurp(errf)
    assert.matches("^to stderr\n", err)
    assert.matches("failed on purpose", err)
    assert.matches("status 1\n$", err)
  end)

  it("closing stdin on a file while a read is under way wakes the reader, and reads no more", function()
    local big_file = file(string.rep("0123456789abcdef", 8 * 65536))   -- 8 MiB
    local out, code = sh("CORIO SCRIPT < " .. quote(big_file), [[
local corio = require "corio"
local closed = 0
for _ = 1, 300 do
  local s = corio.stdin()
  local reader = corio.spawn(function()
    local d, msg = s:read(10)
    if d == nil then return d, msg end
    return s:read_all()
  end)
  corio.sleep(0)
  s:close()
  local d, msg = reader:await()
  if d == nil and msg == "closed" then closed = closed + 1 end
end
print("closed", closed)
]])
    assert.equals(0, code, out)
    local n = tonumber(out:match("closed%s+(%d+)"))
    assert.is_true(n ~= nil and n > 0, out)
  end)

  it("read_line, read_exactly and read_all over stdin; EOF", function()
    local src = [[
local corio = require "corio"
local inp = corio.stdin()
local out = corio.stdout()
out:write(inp:read_line(), "|", inp:read_exactly(3), "|", inp:read_until(";"), "|")
local rest = inp:read_all()
out:write(#rest, "|", tostring(inp:read_line()), "|", tostring(inp:read()), "\n")
]]
    local data = "first line\nabcdef;" .. string.rep("r", 200000)
    local inp = file(data)
    local want = "first line|abc|def|200000|nil|nil\n"
    assert.equals(want, (sh("CORIO SCRIPT <" .. inp, src)))
    assert.equals(want, (sh("cat " .. inp .. " | CORIO SCRIPT", src)))
  end)

  it("os.exit in a task loses nothing queued on stdout: 100,000 lines through a pipe, to a file", function()
    local src = [[
local corio = require "corio"
local out, err = corio.stdout(), corio.stderr()
for i = 1, 100000 do out:write("line ", i, "\n") end
err:write("done\n")
os.exit(3)
]]
    local out, code = sh("CORIO SCRIPT 2>&1 | (sleep 0.5; cat)", src)
    local n, last = 0, nil
    for line in out:gmatch("[^\n]+") do
      if line ~= "done" then
        n = n + 1
        last = line
      end
    end
    assert.equals(100000, n)
    assert.equals("line 100000", last)
    assert.truthy(out:find("done\n", 1, true))
    assert.equals(0, code)  -- the pipeline's status is cat's
    local outf = tmpname()
    local _, code2 = sh("CORIO SCRIPT >" .. outf .. " 2>/dev/null", src)
    assert.equals(3, code2)
    local got = slurp(outf)
    assert.equals(100000, select(2, got:gsub("\n", "")))
    assert.equals("line 100000\n", got:sub(-12))
  end)

  it("stdin closed after a read_line and opened again loses no read-ahead: a pipe, a file", function()
    local src = [[
local corio = require "corio"
local inp = corio.stdin()
local first = inp:read_line()
inp:close()
local again = corio.stdin()
local rest = again:read_all()
again:close()
io.write(first, "|", #rest, "|", rest:sub(1, 6), "\n")
]]
    local lines = {}
    for i = 1, 20000 do lines[i] = ("%06d"):format(i) end
    local input = file(table.concat(lines, "\n") .. "\n")
    local want = "000001|" .. (20000 - 1) * 7 .. "|000002\n"
    assert.equals(want, (sh("cat " .. input .. " | CORIO SCRIPT", src)))
    assert.equals(want, (sh("CORIO SCRIPT <" .. input, src)))
    -- a file's offset is put back: what reads the fd after corio finds the rest
    local src2 = [[
local corio = require "corio"
local inp = corio.stdin()
io.write(inp:read_line(), "\n")
inp:close()
]]
    local out = sh("(CORIO SCRIPT; head -n 1) <" .. input, src2)
    assert.equals("000001\n000002\n", out)
  end)

  it("leaves the shell's descriptors blocking, while it runs and after", function()
    -- O_NONBLOCK is 04000 in the octal flags of /proc/<pid>/fdinfo
    local src = [[
local corio = require "corio"
corio.stdout():write("x\n")
corio.stdin()
os.execute("grep '^flags' /proc/self/fdinfo/0 /proc/self/fdinfo/1 >&2")
]]
    local errf = tmpname()
    local out = sh("printf 'in' | (CORIO SCRIPT 2>" .. errf ..
      "; grep '^flags' /proc/self/fdinfo/0 /proc/self/fdinfo/1) | cat", src)
    local flags = {}
    for octal in (slurp(errf) .. out):gmatch("flags:%s*(%d+)") do
      flags[#flags + 1] = tonumber(octal, 8)
    end
    assert.equals(4, #flags, slurp(errf) .. out)
    for _, f in ipairs(flags) do assert.equals(0, f & tonumber("4000", 8)) end
  end)

  it("a standard fd the parent closed reads and writes as /dev/null", function()
    local src = [[
local corio = require "corio"
local inp = corio.stdin()
print(inp, inp:read())
corio.stderr():write("lost\n")
]]
    local out, code = sh("CORIO SCRIPT <&- 2>&-", src)
    assert.equals(0, code)
    assert.equals("file stream fd 0 (open)\tnil\n", out)
  end)

  -- on_socketpair(input, source) -> what the script wrote to stdout (after
  -- the runner's status line) and to stderr, with stdout (and, given input,
  -- stdin) on a socket; nil when there is no python3 (the spec is pending)
  local function on_socketpair(input, source)
    local runner = helper.socketpair_runner(file, input)
    if runner == nil then
      pending("no python3 to make a socketpair")
      return nil
    end
    local errf = tmpname()
    return sh(runner .. " CORIO SCRIPT 2>" .. errf, source), slurp(errf)
  end

  it("stdin and stdout on a socket (a socketpair), whose flags are put back", function()
    local out, err = on_socketpair("one\ntwo\n", NUMBER)
    if out == nil then return end
    assert.equals("status 0 nonblock 0\n1: one\n2: two\n", out)
    assert.equals("kinds: unix stream fd 0 (open), unix stream fd 1 (open)\n", err)
  end)

  it("a task cancelled while it waits for a closed stdout to let go is cancelled there", function()
    -- on a socket, a closed stream holds the fd until its close callback puts
    -- the flags back: corio.stdout() waits for that, and a cancellation that
    -- comes once the wait is over but before the task resumes is raised at
    -- corio.stdout(), not at the task's next checkpoint
    local out, err = on_socketpair("", [[
local corio = require "corio"
local out = corio.stdout()
local got, b
corio.spawn(function() assert(out:close()) end)
b = corio.spawn(function()
  got = corio.stdout()
  return "ran on"
end)
corio.spawn(function() b:cancel("stop") end)
local ok, err = pcall(b.await, b)
io.stderr:write(tostring(ok), " ", tostring(got), " ", tostring(err), "\n")
]])
    if out == nil then return end
    assert.equals("status 0 nonblock 0\n", out)
    assert.equals("false nil cancelled: stop\n", err)
  end)

  it("options: limit for line reads, the same stream again with new ones", function()
    local src = [[
local corio = require "corio"
local inp = corio.stdin { limit = 200000 }
local out = corio.stdout()
out:write(#inp:read_line(), "\n")
assert(corio.stdin { limit = 10 } == inp)
local none, msg = inp:read_line()
out:write(tostring(none), " ", msg, "\n")
out:write(inp:read_exactly(13), "\n")
]]
    local inp = file(string.rep("a", 150000) .. "\n0123456789abc\n")
    assert.equals("150000\nnil limit exceeded\n0123456789abc\n", (sh("CORIO SCRIPT <" .. inp, src)))
  end)

  it("stdout on a terminal", function()
    if os.execute("script -qec true /dev/null >/dev/null 2>&1") ~= true then
      pending("no `script` command to run under a terminal")
      return
    end
    local src = [[
local corio = require "corio"
local out = corio.stdout()
out:write(tostring(out), "\n")
out:write(string.rep("t", 100000), "\n")
]]
    local out = sh("script -qec 'CORIO SCRIPT' /dev/null </dev/null", src)
    out = out:gsub("\r\n", "\n")
    assert.matches("^tty stream fd 1 %(open%)\n", out)
    local ts = out:match("\n(t+)\n")
    assert.equals(100000, ts and #ts)
  end)
end)
