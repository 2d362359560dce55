-- A PING server speaking Redis's inline protocol: every "PING" line gets
-- "+PONG", any other non-empty line "-ERR unknown command". Clients may send
-- many commands at once (pipelining); each is answered in order.
--
--   corio examples/ping_server.lua [PORT]
--
-- It listens on 127.0.0.1:PORT (default 6380; 0 picks a free port) and
-- prints "listening on HOST PORT". Each connection is plain sequential code
-- in a task of its own. The command SHUTDOWN stops the server: it stops
-- accepting, cancels the other connections and exits. Try it with
--   redis-benchmark -p 6380 -t ping_inline -n 100000 -P 16 -q
local corio = require "corio"

local port = tonumber(arg and arg[1]) or 6380
local server
local served, commands = 0, 0

local function handle(stream)
  while true do
    local line = stream:read_line()       -- without its "\r\n"
    if line == nil then break end         -- the client has gone
    local command = line:upper()
    if command == "PING" then
      stream:write("+PONG\r\n")
    elseif command == "SHUTDOWN" then
      stream:close()
      server:close { cancel = true }  -- the handlers of other clients too
      break
    elseif line ~= "" then
      stream:write("-ERR unknown command\r\n")
    end
    commands = commands + 1
  end
end

server = assert(corio.serve("127.0.0.1", port, function(stream)
  served = served + 1
  handle(stream)
end))
local host, p = server:address()
print(("listening on %s %d"):format(host, p))
io.stdout:flush()
server:wait_closed()
print(("served %d connections, %d commands"):format(served, commands))
