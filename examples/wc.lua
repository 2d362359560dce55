-- wc: counts the lines, words and bytes of its standard input, read as a
-- corio stream, whatever fd 0 is (a pipe, a file, a terminal).
--
--   corio examples/wc.lua < FILE        some-command | corio examples/wc.lua
--
-- It reads in chunks (stream:read), so a line of any length is fine, and
-- writes its one line of results through corio.stdout().
local corio = require "corio"

local inp, out = corio.stdin(), corio.stdout()
local lines, words, bytes = 0, 0, 0
local after_space = true  -- a word that starts a chunk may go on from the last one

while true do
  local chunk, err = inp:read()
  if not chunk then
    assert(err == nil, err)  -- nil alone is the end
    break
  end
  bytes = bytes + #chunk
  lines = lines + select(2, chunk:gsub("\n", ""))
  words = words + select(2, chunk:gsub("%s%S", ""))  -- each word after a space
  if after_space and chunk:find("^%S") then words = words + 1 end
  after_space = chunk:find("%s$") ~= nil
end

out:write(("%d lines, %d words, %d bytes (from a %s)\n"):format(
  lines, words, bytes, tostring(inp):match("^%a+")))
