-- common.lua: helpers shared by the soak scripts (spec/soak/*.lua, run by `make soak`).
local M = {}

function M.env_num(name, default)
  return tonumber(os.getenv(name) or "") or default
end

-- this process's pid, resident set (KiB) and open fd count, from /proc
function M.pid()
  local f = assert(io.open("/proc/self/stat"))
  local pid = tonumber(f:read("l"):match("^(%d+)"))
  f:close()
  return pid
end

function M.rss_kib()
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)"))
end

-- open fds of process pid (the listing's own pipe adds the same one each time)
function M.fd_count(pid)
  local p = assert(io.popen("ls /proc/" .. pid .. "/fd | wc -l"))
  local n = tonumber(p:read("a"))
  p:close()
  return n
end

-- the pids of pid's children that are zombies
function M.zombies(pid)
  local p = assert(io.popen("ps -o pid=,stat= --ppid " .. pid .. " 2>/dev/null"))
  local z = {}
  for line in p:lines() do
    local cpid, stat = line:match("(%d+)%s+(%S+)")
    if stat and stat:find("Z") then z[#z + 1] = cpid end
  end
  p:close()
  return z
end

function M.percentile(sorted, q)
  if #sorted == 0 then return 0 end
  return sorted[math.max(1, math.ceil(#sorted * q))]
end

function M.report(name, ok, fmt, ...)
  print(("soak %-12s %s  " .. fmt):format(name, ok and "ok  " or "FAIL", ...))
  if not ok then os.exit(1) end
end

return M
