-- Fetch a URL over HTTPS (or plain HTTP) and print its body; the status
-- line and headers go to stderr with -v. The server's certificate is
-- verified against the system's CAs (SSL_CERT_FILE names another bundle).
--
--   corio examples/https_get.lua [-v] https://example.org/
local corio = require "corio"

local verbose = arg[1] == "-v"
local url = verbose and arg[2] or arg[1]
local scheme, host, port, path = (url or ""):match("^(https?)://([^:/]+):?(%d*)(/?.*)$")
if not scheme then
  io.stderr:write("usage: corio examples/https_get.lua [-v] https://HOST[:PORT]/PATH\n")
  os.exit(2)
end
port = tonumber(port) or (scheme == "https" and 443 or 80)
if path == "" then path = "/" end

local function fail(...)
  io.stderr:write("https_get: ", table.concat({ ... }), "\n")
  os.exit(1)
end

local s, err = corio.connect(host, port, { tls = scheme == "https", timeout = 30 })
if not s then fail(url, ": ", err) end
s:write("GET ", path, " HTTP/1.1\r\nHost: ", host, "\r\nUser-Agent: corio-https_get\r\n",
        "Accept: */*\r\nConnection: close\r\n\r\n")

local status = s:read_line()
if not status or not status:match("^HTTP/1%.%d %d%d%d") then fail("bad response: ", tostring(status)) end
if verbose then io.stderr:write(status, "\n") end
local length, chunked
while true do
  local line = s:read_line()
  if line == nil then fail("connection closed in the headers") end
  if line == "" then break end
  if verbose then io.stderr:write(line, "\n") end
  local name, value = line:match("^([^:]+):%s*(.-)%s*$")
  name = name and name:lower()
  if name == "content-length" then length = tonumber(value) end
  if name == "transfer-encoding" and value:lower():find("chunked") then chunked = true end
end

local out = corio.stdout()
if chunked then
  while true do
    local size = tonumber((s:read_line() or ""):match("^%x+"), 16)
    if not size then fail("bad chunk") end
    if size == 0 then break end
    out:write(assert(s:read_exactly(size)))
    s:read_line()
  end
elseif length then
  out:write(assert(s:read_exactly(length)))
else
  out:write(assert(s:read_all()))  -- until the server's close_notify
end
out:close()
local info = s:tls_info()
if verbose and info then
  io.stderr:write(("[%s %s, certificate of %s by %s]\n")
    :format(info.protocol, info.cipher, info.subject, info.issuer))
end
s:close()
