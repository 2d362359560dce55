-- a plugin for the out-of-tree host: waits at top level, runs tasks side by side
local t = corio.spawn(function() corio.sleep(0.01); return "world" end)
print("hello " .. t:await())
