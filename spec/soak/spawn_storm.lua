-- spawn_storm.lua: SOAK_PROCS (2000) processes, SOAK_PROC_PAR (50) at a time: each
-- runs `sh -c 'echo $$'` with its stdout piped, and one in five is killed or has its
-- waiting task cancelled instead of being read. Afterwards no child is left
-- (no zombie) and this process has the fds it had before.
package.path = arg[0]:gsub("[^/]*$", "") .. "?.lua;" .. package.path
local corio = require "corio"
local common = require "common"

local N = common.env_num("SOAK_PROCS", 2000)
local PAR = common.env_num("SOAK_PROC_PAR", 50)
local pid = common.pid()
do  -- a first spawn opens what is kept for good (libuv's SIGCHLD pipe, a /dev/null)
  local p <close> = assert(corio.exec({ "true" }, { stdout = "pipe" }))
  p.stdout:read_all()
  p:wait()
end
local fd0 = common.fd_count(pid)
local ok_runs, killed, cancelled, bad = 0, 0, 0, 0
local t0 = corio.now()
for b = 1, N // PAR do
  local tg <close> = corio.task_group()
  for i = 1, PAR do
    tg:spawn(function()
      local kind = (b * PAR + i) % 5
      if kind == 0 then
        local p <close> = assert(corio.exec({ "sh", "-c", "sleep 5" }))
        p:kill()
        p:wait()
        killed = killed + 1
      elseif kind == 1 then
        local t = corio.spawn(function()
          local p <close> = assert(corio.exec({ "sh", "-c", "sleep 5" }))
          return p:wait()
        end)
        corio.sleep(0.001)
        t:cancel()
        pcall(t.await, t)
        cancelled = cancelled + 1
      else
        local p <close> = assert(corio.exec({ "sh", "-c", "echo $$" }, { stdout = "pipe" }))
        local out = p.stdout:read_all()
        if p:wait() == 0 and tonumber(out) then ok_runs = ok_runs + 1 else bad = bad + 1 end
      end
    end)
  end
end
local el = corio.now() - t0
local z = common.zombies(pid)
local fd1 = common.fd_count(pid)
common.report("spawn_storm", bad == 0 and #z == 0 and fd1 == fd0,
  "%d processes in %.1f s (%d read, %d killed, %d cancelled, %d bad); zombies %d; fds %d before, %d after",
  N, el, ok_runs, killed, cancelled, bad, #z, fd0, fd1)
