-- A minimal HTTP/1.1 server: every request gets 200 "hello world".
-- Connections are kept alive (many requests, one after another, also
-- pipelined ones sent all at once) until the client closes or sends
-- "Connection: close". A request body (Content-Length) is read and dropped.
--
--   corio examples/http_hello.lua [PORT]
--
-- It listens on 127.0.0.1:PORT (default 8080; 0 picks a free port) and
-- prints "listening on HOST PORT". A request for /quit stops it: it answers,
-- stops accepting, cancels the other connections and exits. Try it with
--   curl -s http://127.0.0.1:8080/
--   wrk -t1 -c10 -d5s http://127.0.0.1:8080/
local corio = require "corio"

local port = tonumber(arg and arg[1]) or 8080

local BODY = "hello world"
local OK = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
  .. #BODY .. "\r\n\r\n" .. BODY
local OK_CLOSE = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
  .. #BODY .. "\r\nConnection: close\r\n\r\n" .. BODY
local BAD = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"

local requests = 0
local server

-- One request from the stream: its path and what the connection should do
-- next ("keep" or "close"); nil when the client has gone, false when the
-- request is malformed.
local function read_request(stream)
  local line = stream:read_line()
  while line == "" do line = stream:read_line() end  -- blank lines before a request
  if line == nil then return nil end
  local method, path, version = line:match("^(%u+) (%S+) HTTP/(%d%.%d)$")
  if not method then return false end
  local length, close = 0, version == "1.0"
  while true do  -- the headers, up to the empty line
    local header = stream:read_line()
    if header == nil then return nil end
    if header == "" then break end
    local name, value = header:match("^([^:]+):%s*(.-)%s*$")
    if not name then return false end
    name = name:lower()
    if name == "content-length" then
      length = math.tointeger(tonumber(value))
      if not length or length < 0 then return false end
    elseif name == "connection" then
      value = value:lower()
      if value == "close" then close = true elseif value == "keep-alive" then close = false end
    end
  end
  if length > 0 and not stream:read_exactly(length) then return nil end  -- the body
  return path, close and "close" or "keep"
end

local function handle(stream)
  while true do
    local path, next_step = read_request(stream)
    if path == nil then return end
    if path == false then
      stream:write(BAD)
      return  -- returning closes the stream, after the queued reply
    end
    requests = requests + 1
    if path == "/quit" then
      stream:write(OK_CLOSE)
      stream:close()
      server:close { cancel = true }
      return
    end
    stream:write(next_step == "close" and OK_CLOSE or OK)
    if next_step == "close" then return end
  end
end

server = assert(corio.serve("127.0.0.1", port, handle))
local host, p = server:address()
print(("listening on %s %d"):format(host, p))
io.stdout:flush()
server:wait_closed()
print(("served %d requests"):format(requests))
