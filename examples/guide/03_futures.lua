-- examples/guide/03_futures.lua: a value someone else provides
local corio = require "corio"

local reply = corio.future()
corio.spawn(function()
  corio.sleep(0.05)
  reply:set_result("pong", 200)         -- any number of values
end)
print(reply:await())                    -- suspends until it is set

local failed = corio.future()
corio.spawn(function() failed:set_error("no route to host") end)
local ok, err = pcall(failed.await, failed)
print(ok, err)
print(reply:done(), reply:await())      -- finished: returns at once
-- expect: pong	200
-- expect: false	no route to host
-- expect: true	pong	200
