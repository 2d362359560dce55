-- Awaiting one call after another, versus running them as tasks.
--
--   corio examples/say_after.lua        -- the real timings: about 3 s, then 2 s
--   corio examples/say_after.lua 0.1    -- every delay scaled by 0.1
--
-- In Lua there is no `async` keyword: a function that calls corio.sleep (or
-- any other suspending call) is simply a function. Calling it runs it now and
-- waits for it; corio.spawn(fn, ...) instead schedules it as a task that runs
-- alongside the caller.

local corio = require "corio"

local scale = tonumber(arg[1]) or 1
local t0 = corio.now()

-- print a line with the time since the start in front
local function say(text)
  print(("[%5.2f s] %s"):format(corio.now() - t0, text))
end

local function say_after(delay, what)
  corio.sleep(delay * scale)
  say(what)
  return what
end

-- 1. In sequence: the second call starts only when the first has finished,
--    so the waits add up: 1 + 2 = 3 time units.
say("in sequence: start")
local start = corio.now()
say_after(1, "hello")
say_after(2, "world")
print(("in sequence: took %.3f s"):format(corio.now() - start))

-- 2. As tasks: both are scheduled first, so their waits overlap and the whole
--    thing takes as long as the longer one: 2 time units.
say("as tasks: start")
start = corio.now()
local hello = corio.spawn(say_after, 1, "hello")
local world = corio.spawn(say_after, 2, "world")
-- Neither task has run yet: a spawned task starts once the spawner suspends,
-- whether or not anyone ever awaits it.
say("both tasks spawned, neither started: " .. tostring(hello) .. ", " .. tostring(world))
hello:await()   -- suspends here; both tasks start running now
world:await()
print(("as tasks: took %.3f s"):format(corio.now() - start))

if scale ~= 1 then
  print(("(delays were scaled by %g)"):format(scale))
end
