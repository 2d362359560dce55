-- Futures: a slot for a result that somebody else will fill in later
-- (like a JavaScript Promise). A task awaiting an unfinished future suspends
-- until another task (or a C callback, or a timer) sets it.

local corio = require "corio"

-- 1. A future resolved by another task.
local fut = corio.future()

corio.spawn(function()
  corio.sleep(0.2)              -- some slow work...
  print("  helper: setting the result")
  fut:set_result("pong", 200)   -- ...then hand back any number of values
end)

print("done before awaiting?", fut:done())
local body, status = fut:await()  -- suspends until set_result is called
print("awaited:", body, status)

-- Awaiting a finished future returns at once, with the same values.
print("awaited again:", fut:await())

-- A future can be finished only once.
local ok, err = pcall(fut.set_result, fut, "again")
print("setting it twice fails:", ok, err)

-- 2. A future that fails. set_error stores an error value; every await
--    raises that same value, so pcall around the await catches it.
local bad = corio.future()

corio.spawn(function()
  corio.sleep(0.1)
  print("  helper: the operation failed")
  bad:set_error("connection refused")
end)

local ok2, err2 = pcall(bad.await, bad)   -- same as pcall(corio.await, bad)
print("await raised:", ok2, err2)

-- Any Lua value can be the error, so structured errors work too.
local typed = corio.future()
typed:set_error({ code = "ENOENT", path = "/no/such/file" })
local _, e = pcall(corio.await, typed)
print("structured error:", e.code, e.path)
