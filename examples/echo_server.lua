-- An echo server: every line a client sends comes back.
--
--   corio examples/echo_server.lua [PORT [N]]
--
-- The corio command runs the script as the main task. It listens on
-- 127.0.0.1:PORT (default 0: a free port; it prints "listening on HOST
-- PORT"), one task per connection; after N connections (if given) it stops
-- accepting, waits for those to finish, and exits.
local corio = require "corio"

local port = tonumber(arg and arg[1]) or 0
local limit = tonumber(arg and arg[2])

local served = 0
local server
server = assert(corio.serve("127.0.0.1", port, function(stream)
  served = served + 1
  local n = served
  if limit and served >= limit then server:close() end  -- no more after this one
  local host, peer_port = stream:peer()
  print(("connection %d from %s:%d"):format(n, host, peer_port))
  local lines = 0
  for line in stream:lines() do
    stream:write(line, "\n")
    lines = lines + 1
  end
  stream:close()
  print(("connection %d closed after %d lines"):format(n, lines))
end))
local host, p = server:address()
print(("listening on %s %d"):format(host, p))
io.stdout:flush()
server:wait_closed()
print(("served %d connections"):format(served))
