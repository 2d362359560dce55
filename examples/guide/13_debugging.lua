-- examples/guide/13_debugging.lua: dump, Deadlock, tracebacks
local corio = require "corio"

-- corio.dump(): every task, what it waits on, and its stack
local sleeper = corio.spawn(function() corio.sleep(10) end)
sleeper:set_name("sleeper")
corio.sleep(0)
local dump = corio.dump()
print("the dump names the sleeper:", dump:find("sleeper", 1, true) ~= nil)
sleeper:cancel()

-- A task's error carries the task's traceback to whoever awaits it.
local function inner() error("bad input") end
local t = corio.spawn(function() inner() end)
local ok, err = pcall(t.await, t)
print("error:", ok, tostring(err):match("bad input"))
print("its traceback names inner:", t:traceback():find("inner", 1, true) ~= nil)

-- Deadlock: a main task waiting on something nothing can ever finish.
-- corio.run raises corio.Deadlock instead of hanging.
ok, err = pcall(corio.run, function()
  corio.future():await()               -- nobody else holds this future
end)
print("deadlock:", ok, corio.Deadlock.is(err))
-- Run with CORIO_DEBUG=1 to hear about code that holds the loop too long.
-- expect: the dump names the sleeper:	true
-- expect: error:	false	bad input
-- expect: its traceback names inner:	true
-- expect: deadlock:	false	true
