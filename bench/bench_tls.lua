-- corio's W10 server (../shared/bench-peers RESULTS.md): W6's HTTP/1.1 answer
-- over TLS, keep-alive, and a "Connection: close" request answered with
-- "Connection: close" and the end of the connection. Code as a user would
-- write it.
--
--   lua5.4 bench/bench_tls.lua w10 --cert FILE --key FILE --port P
local corio = require "corio"

local sub, lower, find = string.sub, string.lower, string.find
local HTTP_OK = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world"
local HTTP_OK_CLOSE = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n"
  .. "Connection: close\r\n\r\nhello world"
local HTTP_405 = "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"

local function w10_conn(stream)
  while true do
    local request = stream:read_line()
    if request == nil then return end
    local close = false
    while true do
      local header = stream:read_line()
      if header == nil then return end
      if header == "" then break end
      if not close and find(lower(header), "^connection:%s*close") then close = true end
    end
    if sub(request, 1, 4) ~= "GET " then
      stream:write(HTTP_405)
      return
    end
    if close then
      stream:write(HTTP_OK_CLOSE)
      return  -- the stream closes (close_notify) when the handler ends
    end
    stream:write(HTTP_OK)
  end
end

local opts = {}
do
  local i = 2
  while arg[i] do
    opts[arg[i]:match("^%-%-(.*)$") or arg[i]] = arg[i + 1]
    i = i + 2
  end
end
if arg[1] ~= "w10" or not (opts.cert and opts.key and opts.port) then
  error("usage: lua5.4 bench/bench_tls.lua w10 --cert FILE --key FILE --port P")
end

corio.run(function()
  local tls = assert(corio.tls.context { server = true, cert = opts.cert, key = opts.key,
                                        min_version = "1.3" })
  local server = assert(corio.serve("127.0.0.1", math.tointeger(tonumber(opts.port)), w10_conn,
                                    { backlog = 1024, tls = tls }))
  io.write("READY ", opts.port, "\n")
  io.flush()
  server:wait_closed()
end)
