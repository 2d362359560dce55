-- corio.socket.ssl: LuaSec's shape over corio.tls, for code written against
-- LuaSec (`local ssl = require "ssl"`): ssl.newcontext(params),
-- ssl.wrap(sock, params | context) -> the socket, made TLS by
-- sock:dohandshake(); sock:sni(name), sock:info(). corio.socket.install()
-- puts it in package.loaded["ssl"] when corio was built with TLS.
local corio = require "corio"

local ssl = { _VERSION = "corio.socket.ssl" }

local versions = { tlsv1_2 = "1.2", tlsv1_3 = "1.3" }

-- the corio.tls options for LuaSec's params (mode, protocol, verify,
-- cafile, capath, certificate, key, ciphers, alpn)
local function options(params)
  if type(params) ~= "table" then
    error("bad argument #1 to 'ssl.newcontext' (table expected, got " .. type(params) .. ")", 3)
  end
  local server = params.mode == "server"
  if params.mode ~= nil and params.mode ~= "client" and not server then
    error("ssl.newcontext: mode must be \"client\" or \"server\"", 3)
  end
  local o = {
    server = server, ca_file = params.cafile, ca_path = params.capath,
    cert = params.certificate, key = params.key, ciphers = params.ciphers,
    alpn = type(params.alpn) == "string" and { params.alpn } or params.alpn,
  }
  local v = params.verify
  if type(v) == "string" then v = { v } end
  if type(v) == "table" then  -- "none", or "peer" (and "fail_if_no_peer_cert")
    local peer = false
    for _, x in ipairs(v) do if x == "peer" then peer = true end end
    o.verify = peer
  end  -- absent: corio's default (clients verify; LuaSec's default is "none")
  local p = params.protocol
  if p ~= nil and p ~= "any" then
    o.min_version = versions[p]
    if o.min_version == nil then
      error("ssl.newcontext: protocol " .. tostring(p) .. " is not supported (\"any\", \"tlsv1_2\" or \"tlsv1_3\")", 3)
    end
    o.max_version = o.min_version
  end
  return o
end

local Context = {}  -- what newcontext returns: the corio context and the mode
Context.__index = Context
Context.__name = "ssl.context"

-- ssl.newcontext(params) -> context, or nil and a message
function ssl.newcontext(params)
  local o = options(params)
  local ctx, msg = corio.tls.context(o)
  if not ctx then return nil, msg end
  return setmetatable({ _ctx = ctx, _server = o.server }, Context)
end

-- ssl.wrap(sock, params | context) -> sock, or nil and a message: the
-- socket (a connected tcp{client}) speaks TLS after sock:dohandshake()
function ssl.wrap(sock, params)
  local ctx = params
  if getmetatable(params) ~= Context then
    local msg
    ctx, msg = ssl.newcontext(params)
    if not ctx then return nil, msg end
  end
  if type(sock) ~= "table" or type(sock.dohandshake) ~= "function" then
    error("bad argument #1 to 'ssl.wrap' (a connected corio.socket tcp object expected)", 2)
  end
  sock._ssl = { context = ctx._ctx, server = ctx._server }
  return sock
end

-- ssl.loadcertificate and the x509 objects of LuaSec are not offered
return ssl
