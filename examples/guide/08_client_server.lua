-- examples/guide/08_client_server.lua: a TCP server and its clients
local corio = require "corio"

-- Each connection runs in a task of its own: plain sequential code.
local server = assert(corio.serve("127.0.0.1", 0, function(s)
  for line in s:lines() do
    s:write(line:upper(), "\n")
  end
  s:close()
end))
local _, port = server:address()

local function client(word)
  local s <close> = assert(corio.connect("127.0.0.1", port))
  s:write(word, "\n")
  return s:read_line()
end

print(corio.gather(corio.spawn(client, "hello"), corio.spawn(client, "world")))
server:close()
server:wait_closed()
-- expect: HELLO	WORLD
