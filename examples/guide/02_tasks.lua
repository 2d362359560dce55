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
print(("in sequence: %.1f s"):format(corio.now() - t0))

t0 = corio.now()
local a = corio.spawn(say_after, 0.1, "hello")  -- both start now
local b = corio.spawn(say_after, 0.2, "world")
a:await()
b:await()
print(("as tasks: %.1f s"):format(corio.now() - t0))

-- A task runs once, however often it is awaited.
print(b:await(), b:await(), b:done())
-- expect: in sequence: 0.3 s
-- expect: as tasks: 0.2 s
-- expect: world	world	true
