-- TCP under load (DESIGN.md "I/O"): a thousand connections at once, 64 MiB
-- through a server with hashes on both sides, and a server out of file
-- descriptors (EMFILE) in a process of its own. Loopback only.
local corio = require "corio"
local helper = require "helper"

local CORIO, exists, quote = helper.CORIO, helper.exists, helper.quote

local function shell(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  return out
end

local write_file = helper.write_tmp

-- ------------------------------------------------------------ 1,000 at once

-- a chunk returning the test's main function, so that it runs in this
-- process or, when the fd limit is too low here, under the corio command
-- in a shell that raised it
local THOUSAND = [[
local corio = require "corio"
return function()
  local N, LINES = 1000, 3
  local live, peak = 0, 0
  local srv = assert(corio.serve("127.0.0.1", 0, function(s)
    live = live + 1
    peak = math.max(peak, live)
    while true do
      local line = s:read_line()
      if not line then break end
      assert(s:write(line, "\n"))
    end
    live = live - 1
  end, { backlog = 1024 }))
  local host, port = srv:address()
  local connected, exchanged = corio.barrier(N), corio.barrier(N)
  local at_peak
  local fns = {}
  for i = 1, N do
    fns[i] = function()
      local c = assert(corio.connect(host, port))
      connected:wait()  -- every client holds its connection open here
      for k = 1, LINES do
        assert(c:write("client ", i, " line ", k, "\n"))
        local got = c:read_line()
        assert(got == ("client %d line %d"):format(i, k), got)
      end
      if exchanged:wait() == N then  -- the last one in: every handler is live
        at_peak = { live, tostring(srv) }
      end
      assert(c:close())
      return i
    end
  end
  local done = corio.gather(fns)
  assert(#done == N)
  srv:close()
  srv:wait_closed()
  assert(at_peak[1] == N, "live handlers at the peak: " .. at_peak[1])
  assert(at_peak[2]:find("(" .. N .. " connections)", 1, true), at_peak[2])
  assert(live == 0, "handlers still counted: " .. live)
  return ("%d connections, %d live at once"):format(N, peak)
end
]]

local function fd_limit()
  return tonumber(shell("ulimit -n"):match("%d+")) or math.huge
end

-- ------------------------------------------------------------ hashing

-- 64-bit FNV-1a over little-endian 8-byte words (integers wrap), fed in
-- pieces of any size; the length is mixed in at the end. Lost, duplicated
-- or reordered bytes change it.
local PRIME, OFFSET = 0x100000001b3, -3750763034362895579  -- 0xcbf29ce484222325
local unpack = string.unpack

local function hasher()
  local h, n, rest = OFFSET, 0, ""
  local H = {}
  function H.add(s)
    n = n + #s
    if #rest > 0 then s = rest .. s end
    local full = #s - #s % 8
    local i = 1
    while i + 63 <= full do
      local a, b, c, d, e, f, g, k = unpack("<i8i8i8i8i8i8i8i8", s, i)
      h = (h ~ a) * PRIME
      h = (h ~ b) * PRIME
      h = (h ~ c) * PRIME
      h = (h ~ d) * PRIME
      h = (h ~ e) * PRIME
      h = (h ~ f) * PRIME
      h = (h ~ g) * PRIME
      h = (h ~ k) * PRIME
      i = i + 64
    end
    while i + 7 <= full do
      h = (h ~ unpack("<i8", s, i)) * PRIME
      i = i + 8
    end
    rest = s:sub(full + 1)
  end
  function H.finish()  -- -> hash, length
    if #rest > 0 then
      h = (h ~ unpack("<i8", rest .. string.rep("\0", 8 - #rest))) * PRIME
    end
    return h ~ n, n
  end
  return H
end

-- `count` distinct 64 KiB chunks of pseudo-random bytes (xorshift64),
-- the same every run
local CHUNK = 65536
local function make_chunks(count)
  local x = 0x2545F4914F6CDD1D
  local fmt = "<" .. string.rep("i8", CHUNK // 8)
  local chunks, words = {}, {}
  for c = 1, count do
    for w = 1, CHUNK // 8 do
      x = x ~ (x << 13)
      x = x ~ (x >> 7)
      x = x ~ (x << 17)
      words[w] = x
    end
    chunks[c] = string.pack(fmt, table.unpack(words))
  end
  return chunks
end

describe("a server under load", function()
  it("serves 1,000 connections open at the same time", function()
    if fd_limit() >= 2100 then
      local summary = helper.run(assert(load(THOUSAND, "=thousand"))())
      assert.equals("1000 connections, 1000 live at once", summary)
      return
    end
    -- too few descriptors here: raise the soft limit in a shell of its own
    if not exists(CORIO) then
      pending("ulimit -n is below 2100 and there is no corio command at " .. CORIO)
      return
    end
    local path = write_file("print((function() " .. THOUSAND .. " end)()())\n")
    local out = shell("sh -c " .. quote("ulimit -n 4096 2>/dev/null || { echo NOLIMIT; exit 0; }; " ..
                      "timeout 60 " .. quote(CORIO) .. " " .. quote(path)) .. " 2>&1")
    os.remove(path)
    if out:find("^NOLIMIT") then
      pending("ulimit -n is below 2100 and cannot be raised to 4096 (the hard limit)")
      return
    end
    assert.equals("1000 connections, 1000 live at once\n", out)
  end)

  it("moves 64 MiB through an echo server, hashes matching on both sides", function()
    local CLIENTS = 4
    local PER = 16 * 1024 * 1024  -- per client, each way (about 1.5 s, under ASan too)
    local chunks = make_chunks(16)
    helper.run(function()
      local seen = {}  -- what the server received from each client: hash, length
      local srv = assert(corio.serve("127.0.0.1", 0, function(s)
        local id = tonumber(s:read_line())
        local h = hasher()
        while true do
          local d = s:read()
          if not d then break end
          h.add(d)
          assert(s:write(d))
        end
        seen[id] = { h.finish() }
      end))  -- the handler returns: its stream flushes, then closes
      local host, port = srv:address()
      local fns = {}
      for i = 1, CLIENTS do
        fns[i] = function()
          local c = assert(corio.connect(host, port))
          assert(c:write(i, "\n"))
          local reader = corio.spawn(function()
            local h = hasher()
            while true do
              local d = c:read()
              if not d then break end
              h.add(d)
            end
            return { h.finish() }
          end)
          local h = hasher()
          for k = 1, PER // CHUNK do
            local chunk = chunks[(k * 7 + i * 5) % #chunks + 1]
            h.add(chunk)
            assert(c:write(chunk))
          end
          assert(c:shutdown())
          local back = reader:await()
          assert(c:close())
          return { sent = { h.finish() }, back = back }
        end
      end
      local results = corio.gather(fns)
      srv:close()
      srv:wait_closed()
      local hashes = {}
      for i = 1, CLIENTS do
        local r = results[i]
        assert.same({ r.sent[1], PER }, r.sent)
        assert.same(r.sent, r.back)   -- what came back
        assert.same(r.sent, seen[i])  -- what the server got
        hashes[r.sent[1]] = true
      end
      local distinct = 0
      for _ in pairs(hashes) do distinct = distinct + 1 end
      assert.equals(CLIENTS, distinct)  -- each client sent its own sequence
    end)
  end)

  -- ------------------------------------------------------------ EMFILE

  -- the server: echoes lines; "quit" closes it, and the script ends once
  -- every handler has finished
  local EMFILE_SERVER = [[
local corio = require "corio"
local srv
srv = assert(corio.serve("127.0.0.1", 0, function(s)
  while true do
    local line = s:read_line()
    if not line then break end
    if line == "quit" then srv:close() end
    s:write(line, "\n")
  end
end))
local _, port = srv:address()
print(port)
io.stdout:flush()
if corio.move_on_after(60, srv.wait_closed, srv) then print("closed") end
]]

  -- user + system CPU seconds of a process so far (/proc/PID/stat)
  local TICK = tonumber(shell("getconf CLK_TCK"):match("%d+")) or 100
  local function cpu_seconds(pid)
    local f = io.open("/proc/" .. pid .. "/stat")
    if not f then return nil end
    local stat = f:read("a")
    f:close()
    local fields = {}
    for w in stat:match("%) (.*)$"):gmatch("%S+") do fields[#fields + 1] = w end
    return (tonumber(fields[12]) + tonumber(fields[13])) / TICK  -- utime, stime
  end

  -- connect, send a line, read it back: the stream if it echoes, else nil
  -- (refused, reset, or closed by the server with no answer)
  local function echoing(host, port, line)
    local c = corio.connect(host, port)
    if not c then return nil end
    local ok, got = pcall(corio.timeout, 10, function()
      if not c:write(line, "\n") then return nil end
      return c:read_line()
    end)
    if ok and got == line then return c end
    c:abort()
    return nil
  end

  it("keeps serving out of file descriptors (EMFILE), without spinning, and accepts again", function()
    if not exists(CORIO) then
      pending("no corio command at " .. CORIO .. " (set CORIO_BIN to the build's bin/corio)")
      return
    end
    local script, errfile = write_file(EMFILE_SERVER), os.tmpname()
    -- the shell prints its pid, then becomes the server (exec), with 64 fds;
    -- the server gives up by itself after a minute
    local p = assert(io.popen("sh -c " .. quote("echo $$; ulimit -n 64 && exec " ..
      quote(CORIO) .. " " .. quote(script) .. " 2>" .. quote(errfile))))
    local pid = p:read("l")
    local port = tonumber(p:read("l"))
    local ok, err = pcall(function()
      assert(port, "the server did not start")
      helper.run(function()
        -- fill: one connection at a time until the server cannot take one
        local held = {}
        for i = 1, 200 do
          local c = echoing("127.0.0.1", port, "hello " .. i)
          if not c then break end
          held[#held + 1] = c
        end
        assert.is_true(#held >= 10 and #held < 64, "held " .. #held)
        -- overload: for about a second new connections are closed without
        -- an answer while the held ones still echo, and the server does not
        -- spin on the connections it cannot take
        local cpu0, t0 = cpu_seconds(pid), corio.now()
        local refused = 0
        for round = 1, 20 do
          if not echoing("127.0.0.1", port, "extra " .. round) then refused = refused + 1 end
          local c = held[round % #held + 1]
          assert(c:write("still " .. round .. "\n"))
          assert.equals("still " .. round, c:read_line())
          corio.sleep(0.05)
        end
        local cpu, wall = cpu_seconds(pid) - cpu0, corio.now() - t0
        assert.equals(20, refused)
        assert.is_true(wall >= 1)
        assert.is_true(cpu < 0.5 * wall, ("the server used %.2f s of CPU in %.2f s"):format(cpu, wall))
        -- connections close: the server accepts again (within its 100 ms
        -- backoff, a few tries)
        for i = 1, 10 do
          held[i]:close()
        end
        local back
        for i = 1, 100 do
          back = echoing("127.0.0.1", port, "again " .. i)
          if back then break end
          corio.sleep(0.05)
        end
        assert.is_truthy(back, "the server never accepted again")
        assert(back:write("quit\n"))
        assert.equals("quit", back:read_line())
        back:close()
        for i = 11, #held do held[i]:close() end
      end)
    end)
    if not ok and pid then os.execute("kill " .. pid .. " 2>/dev/null") end
    local rest = p:read("a")
    p:close()
    local f = io.open(errfile)
    local errs = f and f:read("a") or ""
    if f then f:close() end
    os.remove(script)
    os.remove(errfile)
    if not ok then error(err, 0) end
    assert.equals("closed\n", rest)
    local n = 0
    for line in errs:gmatch("[^\n]+") do
      if line:find("too many open files", 1, true) then n = n + 1 end
    end
    -- libuv takes the connections it cannot give a descriptor on one it
    -- keeps in reserve and closes them, without telling the server; only
    -- when that reserve is gone does the server hear of EMFILE, and then it
    -- says so once and pauses its accepts (tcp.c)
    assert.is_true(n <= 1, errs)
  end)
end)
