-- timers.lua: SOAK_TIMERS (100000) tasks each sleeping a random time of up to
-- SOAK_TIMER_SECS (10) seconds. None may wake early; the lateness (wake minus
-- deadline, on corio.now()) is reported at p50, p99 and max.
package.path = arg[0]:gsub("[^/]*$", "") .. "?.lua;" .. package.path
local corio = require "corio"
local common = require "common"

local N = common.env_num("SOAK_TIMERS", 100000)
local SPAN = common.env_num("SOAK_TIMER_SECS", 10)
math.randomseed(common.env_num("SOAK_SEED", os.time()))
local late, due, early = {}, {}, 0
local t0, batch_end = corio.now(), nil
do
local tg <close> = corio.task_group()
for i = 1, N do
  local d = math.random() * SPAN
  tg:spawn(function()
    local deadline = corio.now() + d
    due[i] = deadline
    corio.sleep(d)
    local l = corio.now() - deadline
    if l < 0 then early = early + 1 end
    late[i] = l
  end)
end
-- the first steps of all N run in one batch; no timer can fire before it
-- ends, so the deadlines that fall inside it are late by construction
tg:spawn(function() batch_end = corio.now() end)
end  -- waits for every timer
local after = {}
for i = 1, N do
  if due[i] > batch_end then after[#after + 1] = late[i] end
end
table.sort(late)
table.sort(after)
common.report("timers", early == 0 and #late == N,
  "%d timers over %.0f s: %d early; lateness p50 %.2f ms, p99 %.2f ms, max %.2f ms; " ..
  "the first steps took %.0f ms: of the %d due after them, p99 %.2f ms, max %.2f ms",
  N, SPAN, early, common.percentile(late, 0.5) * 1e3, common.percentile(late, 0.99) * 1e3,
  late[#late] * 1e3, (batch_end - t0) * 1e3, #after, common.percentile(after, 0.99) * 1e3,
  after[#after] * 1e3)
