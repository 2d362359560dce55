-- An echo server on a Unix domain socket and three clients talking to it,
-- in one script; it prints through corio.stdout().
--
--   corio examples/unix_echo.lua [PATH]
--
-- PATH is where the socket file goes (default: a fresh name in the
-- temporary directory). A file already there is an error (EADDRINUSE);
-- the server removes its socket file when it closes.
local corio = require "corio"

local path = arg and arg[1]
if not path then
  path = os.tmpname()  -- a fresh name: the file it made goes, the name stays ours
  os.remove(path)
  path = path .. ".sock"
end
local out = corio.stdout()

local server = assert(corio.serve_unix(path, function(stream)
  for line in stream:lines() do stream:write(line:upper(), "\n") end
end))
out:write("listening on ", server:address(), "\n")

local function client(name, n)
  local s = assert(corio.connect_unix(path))
  local replies = {}
  for i = 1, n do
    s:write(name, " says ", i, "\n")
    replies[i] = s:read_line()
  end
  s:close()
  return name .. ": " .. table.concat(replies, ", ")
end

local a, b, c = corio.gather(
  function() return client("ada", 2) end,
  function() return client("bob", 3) end,
  function() return client("cy", 1) end)
out:write(a, "\n", b, "\n", c, "\n")

server:close()
server:wait_closed()
local left = io.open(path)
if left then left:close() end
out:write("closed; socket file ", left and "still there" or "removed", "\n")
