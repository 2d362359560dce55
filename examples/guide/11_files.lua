-- examples/guide/11_files.lua: files without blocking the loop
local corio = require "corio"
local fs = corio.fs

local dir = assert(fs.mkdtemp("/tmp/corio-guide-XXXXXX"))
local path = dir .. "/notes.txt"
assert(fs.write_file(path, "one\ntwo\nthree\n"))
assert(fs.append_file(path, "four\n"))

do
  local f <close> = assert(fs.open(path))   -- closed at the end of the block
  local n = 0
  for line in f:lines() do n = n + 1 print(n, line) end
end
print("size:", assert(fs.stat(path)).size)
for name, kind in assert(fs.scandir(dir)) do print("entry:", name, kind) end

assert(fs.unlink(path))
assert(fs.rmdir(dir))
print("gone:", fs.stat(dir) == nil)
-- expect: 4	four
-- expect: size:	19
-- expect: entry:	notes.txt	file
-- expect: gone:	true
