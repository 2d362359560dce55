-- examples/guide/09_processes.lua: running other programs
local corio = require "corio"

-- run_process: run, wait, capture (subprocess.run)
local code, out = corio.run_process({ "echo", "hello from a child" })
print(code, (out:gsub("\n$", "")))

-- exec: a running process with pipes that are streams
local proc = assert(corio.exec({ "tr", "a-z", "A-Z" },
                               { stdin = "pipe", stdout = "pipe" }))
proc.stdin:write("shout\n")
proc.stdin:close()                     -- end of input: tr finishes
print(proc.stdout:read_line(), proc:wait())

-- many at once: three 0.5 s sleeps take about 0.5 s, not 1.5 s
local t0 = corio.now()
corio.gather(corio.spawn(corio.run_process, { "sleep", "0.5" }),
             corio.spawn(corio.run_process, { "sleep", "0.5" }),
             corio.spawn(corio.run_process, { "sleep", "0.5" }))
print("three in parallel:", corio.now() - t0 < 1.2)
-- expect: 0	hello from a child
-- expect: SHOUT	0
-- expect: three in parallel:	true
