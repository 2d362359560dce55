-- fd_limit.lua: a server under `ulimit -n 256` (a child process: this script run
-- with the argument "server") hit by SOAK_FD_CONNS (1000) connections in bursts of
-- 250. It keeps serving (connections beyond its fds are closed at once and retried
-- by the client until answered), uses little CPU while starved (no spinning), and
-- returns to the fd count it had before the first burst.
package.path = arg[0]:gsub("[^/]*$", "") .. "?.lua;" .. package.path
local corio = require "corio"
local common = require "common"

if arg[1] == "server" then
  local pid = common.pid()
  local srv
  srv = assert(corio.serve("127.0.0.1", 0, function(s)
    local line = s:read_line()
    if line == "FDS" then
      s:write(common.fd_count(pid), " ", os.clock(), "\n")
    elseif line == "QUIT" then
      srv:close()
    elseif line then
      corio.sleep(0.05)  -- hold the connection: the bursts overlap
      s:write("pong ", line, "\n")
    end
  end, { backlog = 1024 }))
  local _, port = srv:address()
  local out = corio.stdout()
  out:write(port, "\n")
  out:drain()
  srv:wait_closed()
  return
end

local CONNS = common.env_num("SOAK_FD_CONNS", 1000)
local BURST = 250
local bin = os.getenv("CORIO_BIN") or "corio"
local p <close> = assert(corio.exec({ "sh", "-c", 'ulimit -n 256 && exec "$0" "$1" server', bin, arg[0] },
  { stdout = "pipe" }))
local port = tonumber(assert(p.stdout:read_line()))

local function ask(line)
  local s <close> = corio.connect("127.0.0.1", port)
  if not s then return nil end
  s:write(line, "\n")
  return s:read_line()
end
local function fds()
  for _ = 1, 100 do
    local r = ask("FDS")
    if r then
      local n, cpu = r:match("(%d+) (%S+)")
      return tonumber(n), tonumber(cpu)
    end
    corio.sleep(0.05)
  end
end

local fd0, cpu0 = fds()
local served, retries, t0 = 0, 0, corio.now()
for b = 1, CONNS // BURST do
  local tg <close> = corio.task_group()
  for i = 1, BURST do
    tg:spawn(function()
      local msg = ("b%d-%d"):format(b, i)
      for _ = 1, 200 do
        if ask(msg) == "pong " .. msg then served = served + 1; return end
        retries = retries + 1
        corio.sleep(0.02)
      end
    end)
  end
end
local el = corio.now() - t0
local fd1, cpu1
for _ = 1, 50 do  -- closes may still be under way
  fd1, cpu1 = fds()
  if fd1 == fd0 then break end
  corio.sleep(0.1)
end
ask("QUIT")
p:wait()
local cpu = cpu1 - cpu0
common.report("fd_limit", served == CONNS and fd1 == fd0 and cpu < el,
  "%d of %d connections served under ulimit -n 256 in %.1f s (%d retried after a close); "
  .. "server fds %d before, %d after; server CPU %.2f s", served, CONNS, el, retries, fd0, fd1, cpu)
