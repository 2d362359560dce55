-- corio.fs: files and directories on libuv's thread pool, taken from
-- corio.core (c/lua/os/); init.lua exports this table as corio.fs.
-- Every function suspends (a checkpoint) and answers nil, msg, code on
-- failure; docs/fs.md is the reference.
local core = require "corio.core"

local fs = {}
for name, fn in pairs(core.fs) do fs[name] = fn end

return fs
