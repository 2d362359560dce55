-- corio.tls: TLS streams (c/lua/tls/), and the tls option of corio.connect
-- and corio.serve. install(corio) adds them to the corio module.
local core = require "corio.core"

local M = {}

local tls = {}
tls.wrap = core.tls_wrap        -- corio.tls.wrap(stream [, opts | context]) (suspends) -> stream
tls.context = core.tls_context  -- corio.tls.context([opts]) -> Context
tls.available = core.tls_available  -- corio.tls.available() -> true, OpenSSL's version | false

local default_client  -- the context of {tls = true}: the system CAs, made once
local made = setmetatable({}, { __mode = "k" })  -- options table -> its context

local function is_context(x)
  return type(x) == "userdata" and tostring(x):find("^TLS context") ~= nil
end

-- the context for a connect's or a serve's tls option
local function context_of(fname, v, server)
  if not core.tls_available() then
    error(fname .. ": option 'tls': this corio was built without TLS "
      .. "(OpenSSL was not found, or CORIO_TLS=OFF)", 4)
  end
  if v == true and not server then
    if not default_client then
      local ctx, err, code = core.tls_context()
      if not ctx then return nil, err, code end
      default_client = ctx
    end
    return default_client
  end
  if is_context(v) then
    if server ~= (tostring(v) == "TLS context (server)") then
      error(("%s: option 'tls': a %s context expected"):format(fname, server and "server" or "client"), 4)
    end
    return v
  end
  if type(v) ~= "table" then
    error(("%s: option 'tls': %s expected"):format(fname,
      server and "an options table or a TLS context" or "true, an options table or a TLS context"), 4)
  end
  if v.context ~= nil then return context_of(fname, v.context, server) end
  if made[v] then return made[v] end
  local opts = v
  if server then
    opts = {}
    for k, x in pairs(v) do opts[k] = x end
    opts.server = true
  end
  local ctx, err, code = core.tls_context(opts)
  if not ctx then return nil, err, code end
  made[v] = ctx
  return ctx
end

function M.install(corio)
  local connect, serve = corio.connect, corio.serve

  -- the handshake, bounded by secs (nil: no bound of its own)
  local function handshake(stream, arg, secs)
    if not secs then return tls.wrap(stream, arg) end
    local ok, s, err, code = corio.move_on_after(secs, tls.wrap, stream, arg)
    if ok then return s, err, code end
    stream:abort()
    return nil, "ETIMEDOUT: TLS handshake timed out", "ETIMEDOUT"
  end

  -- a handler's end: its stream closes now and lets go of its SSL object
  -- (else held until the Stream is collected); the handler's results pass
  local function release(stream, ...)
    core.tls_release(stream)
    return ...
  end

  -- opts without its tls field, for the plain connect or serve
  local function plain(opts)
    local o = {}
    for k, v in pairs(opts) do if k ~= "tls" then o[k] = v end end
    return o
  end

  -- corio.connect(host, port, opts) with a true opts.tls (the C function
  -- hands such calls here): true, options or a Context make it a TLS
  -- stream named host (or tls.server_name); the timeout covers the
  -- connect and the handshake
  local function tls_connect(host, port, opts)
    local ctx, err, code = context_of("corio.connect", opts.tls, false)
    if not ctx then return nil, err, code end
    local started = core.now()
    local stream
    stream, err, code = connect(host, port, plain(opts))
    if not stream then return nil, err, code end
    local name = type(opts.tls) == "table" and opts.tls.server_name or host
    local secs = opts.timeout and math.max(opts.timeout - (core.now() - started), 0.001)
    return handshake(stream, { context = ctx, server_name = name }, secs)
  end

  -- corio.serve(host, port, handler, opts) with opts.tls (options or a
  -- server Context): each connection's handshake runs in its task
  -- (bounded by opts.handshake_timeout, default 60 s) before the handler;
  -- a failed one closes the connection without calling it (the C serve
  -- has checked host, port and handler)
  local function tls_serve(host, port, handler, opts)
    local ctx, err, code = context_of("corio.serve", opts.tls, true)
    if not ctx then return nil, err, code end
    local secs = opts.handshake_timeout or 60
    local arg = { context = ctx }
    return serve(host, port, function(stream, ...)
      if not handshake(stream, arg, secs) then return end
      return release(stream, handler(stream, ...))
    end, plain(opts))
  end

  core._tls_hooks(tls_connect, tls_serve)
  corio.tls = tls
end

return M
