-- examples/guide/02_tasks.lua: calling a function versus spawning a task
local corio = require "corio"

local function say_after(delay, what)
  corio.sleep(delay)
  print(what)
  return what
end

local t0 = corio.now()
say_after(0.1, "hello")                 -- runs to the end: 0.1 s
say_after(0.2, "world")                 -- then 0.2 s more
local sequential = corio.now() - t0
print(("in sequence: %.1f s"):format(sequential))    -- 0.3 s

t0 = corio.now()
local a = corio.spawn(say_after, 0.1, "hello")  -- both start now
local b = corio.spawn(say_after, 0.2, "world")
a:await()
b:await()
local as_tasks = corio.now() - t0
print(("as tasks: %.1f s"):format(as_tasks))         -- 0.2 s
print("tasks overlap their waits:", as_tasks < sequential - 0.05)

-- A task runs once, however often it is awaited.
print(b:await(), b:await(), b:done())
-- expect: tasks overlap their waits:	true
-- expect: world	world	true
