-- tcp_frames.lua: SOAK_CONNS (1000) TCP connections for SOAK_SECS (60) seconds,
-- each sending frames of 1 B to 64 KiB (random sizes, contents derived from the
-- connection, the frame's number and a per-connection random block) that the
-- server checks byte for byte and answers with a frame of its own, which the
-- client checks in turn. Zero lost or corrupt bytes; the process's RSS (after a
-- full collection) may grow less than 10% between the 10 s mark and the end.
package.path = arg[0]:gsub("[^/]*$", "") .. "?.lua;" .. package.path
local corio = require "corio"
local common = require "common"

local CONNS = common.env_num("SOAK_CONNS", 1000)
local SECS = common.env_num("SOAK_SECS", 60)
local MARK = math.min(10, SECS / 6)
local MAXF = 65536

math.randomseed(common.env_num("SOAK_SEED", os.time()))
local blocks = {}
local function block(id)
  local b = blocks[id]
  if not b then
    local t = {}
    for i = 1, 256 do t[i] = string.char(math.random(0, 255)) end
    b = table.concat(t)
    blocks[id] = b
  end
  return b
end

-- the payload of frame seq on connection id, n bytes; dir 1 client->server, 2 back
local function payload(id, seq, n, dir)
  local b = block(id)
  local r = (seq * 7 + dir * 131) % 256 + 1
  local base = b:sub(r) .. b:sub(1, r - 1)
  local head = string.pack(">I4I4B", id, seq, dir)
  local s = head .. base:rep(n // 256 + 1)
  return s:sub(1, n)
end

local stats = { sent = 0, recv = 0, frames = 0, bad = 0, lost = 0 }

local function read_frame(s)
  local h = s:read_exactly(4)
  if not h then return nil end
  local n = string.unpack(">I4", h)
  return s:read_exactly(n), n
end

local srv = assert(corio.serve("127.0.0.1", 0, function(s)
  local id = string.unpack(">I4", assert(s:read_exactly(4)))
  local seq = 0
  while true do
    local data, n = read_frame(s)
    if not data then break end
    seq = seq + 1
    if data ~= payload(id, seq, n, 1) then stats.bad = stats.bad + 1 end
    local m = math.random(1, MAXF)
    if not s:write(string.pack(">I4", m), payload(id, seq, m, 2)) then break end
  end
end, { backlog = 4096 }))
local _, port = srv:address()

local stop = false
local function client(id)
  local s <close> = assert(corio.connect("127.0.0.1", port))
  assert(s:write(string.pack(">I4", id)))
  local seq = 0
  while not stop do
    seq = seq + 1
    local n = math.random(1, MAXF)
    assert(s:write(string.pack(">I4", n), payload(id, seq, n, 1)))
    stats.sent = stats.sent + n
    local data, m = read_frame(s)
    if not data then stats.lost = stats.lost + 1; break end
    if data ~= payload(id, seq, m, 2) then stats.bad = stats.bad + 1 end
    stats.recv = stats.recv + m
    stats.frames = stats.frames + 1
  end
end

local t0 = corio.now()
local tasks = {}
for id = 1, CONNS do tasks[id] = corio.spawn(client, id) end
corio.sleep(MARK)
collectgarbage("collect")
local rss1 = common.rss_kib()
corio.sleep(SECS - MARK)
collectgarbage("collect")
local rss2 = common.rss_kib()
stop = true
local failed = 0
for _, t in ipairs(tasks) do
  local ok = pcall(t.await, t)
  if not ok then failed = failed + 1 end
end
srv:close()
srv:wait_closed()
local el = corio.now() - t0
local growth = (rss2 - rss1) / rss1 * 100
common.report("tcp_frames", stats.bad == 0 and stats.lost == 0 and failed == 0 and growth < 10,
  "%d conns %.0f s: %d frames each way, %.1f MiB sent, %.1f MiB back, %d corrupt, %d lost, "
  .. "%d clients failed; RSS %.1f MiB at %.0f s, %.1f MiB at end (%+.1f%%)",
  CONNS, el, stats.frames, stats.sent / 2^20, stats.recv / 2^20, stats.bad, stats.lost, failed,
  rss1 / 1024, MARK, rss2 / 1024, growth)
