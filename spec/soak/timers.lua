-- timers.lua: SOAK_TIMERS (100000) tasks each sleeping a random time of up to
-- SOAK_TIMER_SECS (10) seconds. None may wake early; the lateness (wake minus
-- deadline, on corio.now()) is reported at p50, p99 and max.
package.path = arg[0]:gsub("[^/]*$", "") .. "?.lua;" .. package.path
local corio = require "corio"
local common = require "common"

local N = common.env_num("SOAK_TIMERS", 100000)
local SPAN = common.env_num("SOAK_TIMER_SECS", 10)
math.randomseed(common.env_num("SOAK_SEED", os.time()))
local late, early = {}, 0
do
local tg <close> = corio.task_group()
for i = 1, N do
  local d = math.random() * SPAN
  tg:spawn(function()
    local deadline = corio.now() + d
    corio.sleep(d)
    local l = corio.now() - deadline
    if l < 0 then early = early + 1 end
    late[i] = l
  end)
end
end  -- waits for every timer
table.sort(late)
common.report("timers", early == 0 and #late == N,
  "%d timers over %.0f s: %d early; lateness p50 %.2f ms, p99 %.2f ms, max %.2f ms",
  N, SPAN, early, common.percentile(late, 0.5) * 1e3, common.percentile(late, 0.99) * 1e3,
  late[#late] * 1e3)
