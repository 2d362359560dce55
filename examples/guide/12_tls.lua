-- examples/guide/12_tls.lua: a TLS server and client with a throwaway certificate
local corio = require "corio"
if not corio.tls.available() then print("no TLS in this build") return end

-- A self-signed certificate for "localhost", made with the openssl command.
local dir = assert(corio.fs.mkdtemp("/tmp/corio-tls-XXXXXX"))
local cert, key = dir .. "/cert.pem", dir .. "/key.pem"
local code = corio.run_process({ "openssl", "req", "-x509", "-newkey", "ec",
  "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
  "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
  "-keyout", key, "-out", cert })
if code ~= 0 then print("no openssl command") return end

local server = assert(corio.serve("127.0.0.1", 0, function(s)
  s:write("hello over ", s:tls_info().protocol, "\n")
  s:close()
end, { tls = { server = true, cert = cert, key = key } }))
local _, port = server:address()

-- The client trusts that one certificate and checks the name "localhost".
local s <close> = assert(corio.connect("127.0.0.1", port,
  { tls = { ca_file = cert, server_name = "localhost" } }))
print(s:read_line())

server:close()
for _, f in ipairs({ cert, key }) do corio.fs.unlink(f) end
corio.fs.rmdir(dir)
-- expect: hello over TLS
