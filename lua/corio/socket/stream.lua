-- corio.socket's TCP and Unix stream objects: LuaSocket's master, client
-- and server (tcp{master}, tcp{client}, tcp{server}; unix{...}), over a
-- corio Stream (a client) or a corio Server (a server).
--
-- A client keeps its own read buffer in Lua, so a receive that stops
-- early (a timeout, the end) can hand back the partial bytes it took, as
-- LuaSocket does. A server runs corio.serve underneath: each connection's
-- handler task queues a client object for accept and then waits until
-- that client is closed (a handler that returned would close its stream).
local core = require "corio.core"
local corio = require "corio"
local errors = require "corio.errors"
local common = require "corio.socket.common"

local err, need_loop, guarded, call = common.err, common.need_loop, common.guarded, common.call
local deadline, wait_secs = common.deadline, common.wait_secs

local M = {}

local CHUNK = 65536
local CLOSED = {}  -- queued for accept once the server is closed

-- gettime() -> seconds since the epoch: whole seconds from os.time when
-- this file loads, the rest from the monotonic clock
local wall0, mono0 = os.time(), core.now()
function M.gettime() return wall0 + (core.now() - mono0) end

-- classes[kind][state] -> metatable; every state of a kind also in any[kind]
local classes, any = {}, {}

local function new(kind, state, family)
  return setmetatable({
    _kind = kind, _family = family, _opts = {},
    _buf = "", _pos = 1, _recv = 0, _sent = 0, _birth = M.gettime(),
  }, classes[kind][state])
end

------------------------------------------------------------------ reading
-- read_chunk(self, deadline) -> data, or nil and "timeout" / "closed" / an
-- error; the end of the stream is remembered
local function read_chunk(self, dl)
  if self._eof then return nil, self._eof end
  local s = self._stream
  if s == nil then return nil, "closed" end
  local ok, data, msg, code = guarded(self, call, wait_secs(self, dl), s.read, s, CHUNK)
  if not ok then return nil, "timeout" end
  if data == nil then
    self._eof = err(msg, code)
    return nil, self._eof
  end
  self._recv = self._recv + #data
  return data
end

-- fill(self, deadline) -> true once more bytes are buffered
local function fill(self, dl)
  local data, e = read_chunk(self, dl)
  if not data then return nil, e end
  if self._pos > #self._buf then
    self._buf = data
  else
    self._buf = self._buf:sub(self._pos) .. data
  end
  self._pos = 1
  return true
end

-- take_all(self) -> every buffered byte, leaving the buffer empty
local function take_all(self)
  local rest = self._pos == 1 and self._buf or self._buf:sub(self._pos)
  self._buf, self._pos = "", 1
  return rest
end

local function strip_cr(s)
  if s:find("\r", 1, true) then return (s:gsub("\r", "")) end
  return s
end

local function receive_line(self, prefix, dl)
  local from = self._pos
  while true do
    local nl = self._buf:find("\n", from, true)
    if nl then
      local line = self._buf:sub(self._pos, nl - 1)
      self._pos = nl + 1
      return prefix .. strip_cr(line)
    end
    local scanned = #self._buf - self._pos + 1
    local ok, e = fill(self, dl)
    if not ok then return nil, e, prefix .. strip_cr(take_all(self)) end
    from = self._pos + scanned
  end
end

local function receive_all(self, prefix, dl)
  local parts = { prefix, take_all(self) }
  local got = #parts[2]
  while true do
    local data, e = read_chunk(self, dl)
    if not data then
      local all = table.concat(parts)
      if e == "closed" then
        if got > 0 then return all end
        return nil, "closed", all
      end
      return nil, e, all
    end
    got = got + #data
    parts[#parts + 1] = data
  end
end

local function receive_count(self, n, prefix, dl)
  local have = #self._buf - self._pos + 1
  if have >= n then
    local data = self._buf:sub(self._pos, self._pos + n - 1)
    self._pos = self._pos + n
    return prefix .. data
  end
  local parts = { prefix, take_all(self) }
  local need = n - have
  while need > 0 do
    local data, e = read_chunk(self, dl)
    if not data then return nil, e, table.concat(parts) end
    if #data > need then
      self._buf, self._pos = data, need + 1
      data = data:sub(1, need)
    end
    parts[#parts + 1] = data
    need = need - #data
  end
  return table.concat(parts)
end

------------------------------------------------------------------ methods
local methods = {}  -- name -> { states = "mcs", fn = function(self, ...) }

local function method(name, states, fn)
  methods[name] = { states = states, fn = fn }
end

method("receive", "c", function(self, pattern, prefix)
  if prefix == nil then
    prefix = ""
  elseif type(prefix) == "number" then
    prefix = tostring(prefix)
  elseif type(prefix) ~= "string" then
    error("bad argument #2 to 'receive' (string expected, got " .. type(prefix) .. ")", 2)
  end
  local n = tonumber(pattern)
  if n then
    n = math.floor(n)
  elseif pattern == nil then
    n = "l"
  else
    local p = type(pattern) == "string" and pattern:gsub("^%*", "", 1):sub(1, 1)
    if p ~= "l" and p ~= "a" then error("bad argument #1 to 'receive' (invalid receive pattern)", 2) end
    n = p
  end
  if self._stream == nil and self._pos > #self._buf then return nil, "closed", prefix end
  local dl = deadline(self)
  if n == "l" then return receive_line(self, prefix, dl) end
  if n == "a" then return receive_all(self, prefix, dl) end
  if n < 0 then error("bad argument #1 to 'receive' (invalid receive pattern)", 2) end
  -- as LuaSocket's: a count includes the prefix (receive(n, partial) goes on
  -- with a partial result)
  if n <= #prefix then return prefix end
  return receive_count(self, n - #prefix, prefix, dl)
end)

method("send", "c", function(self, data, i, j)
  if type(data) == "number" then
    data = tostring(data)
  elseif type(data) ~= "string" then
    error("bad argument #1 to 'send' (string expected, got " .. type(data) .. ")", 2)
  end
  local size = #data
  i, j = math.floor(tonumber(i) or 1), math.floor(tonumber(j) or -1)
  if i < 0 then i = size + i + 1 end
  if j < 0 then j = size + j + 1 end
  if i < 1 then i = 1 end
  if j > size then j = size end
  local s = self._stream
  if s == nil or self._wshut then return nil, "closed", i - 1 end
  if i > j then return i - 1 end
  local chunk = (i == 1 and j == size) and data or data:sub(i, j)
  local ok, r, msg, code = guarded(self, call, wait_secs(self, deadline(self)), s.write, s, chunk)
  if not ok then return nil, "timeout", j end  -- the bytes are queued: they go out
  if not r then return nil, err(msg, code), i - 1 end
  self._sent = self._sent + #chunk
  return j
end)

-- connect(host, port) on a master (a Unix one: connect(path)) -> 1
method("connect", "m", function(self, host, port)
  need_loop(self._kind .. ":connect")
  if self._closed then return nil, "closed" end
  local s, msg, code
  if self._kind == "unix" then
    if type(host) ~= "string" then error("bad argument #1 to 'connect' (string expected)", 2) end
    local secs = wait_secs(self, deadline(self))
    s, msg, code = guarded(self, corio.connect_unix, host, { timeout = secs })
  else
    if type(host) ~= "string" then error("bad argument #1 to 'connect' (string expected)", 2) end
    port = tonumber(port)
    if port == nil then error("bad argument #2 to 'connect' (number expected)", 2) end
    local dl = deadline(self)
    if self._family and not host:match("^[%d.]+$") and not host:find(":", 1, true) then
      local list, m2, c2 = guarded(self, corio.getaddrinfo, host, port,
        { family = self._family, socktype = "stream" })
      if not list then return nil, err(m2, c2) end
      host = list[1].address
    end
    local nodelay = self._opts["tcp-nodelay"]
    s, msg, code = guarded(self, corio.connect, host, port,
      { timeout = wait_secs(self, dl), nodelay = nodelay ~= false })
  end
  if not s then return nil, err(msg, code) end
  self._stream = s
  setmetatable(self, classes[self._kind].client)
  if self._opts.keepalive then s:set_keepalive(true) end
  return 1
end)

-- LuaSec's shape (corio.socket.ssl, ssl.wrap): dohandshake() makes the
-- stream TLS with the settings ssl.wrap left; sni(name) names the server;
-- info() is corio's stream:tls_info()
method("dohandshake", "c", function(self)
  local cfg = self._ssl
  if cfg == nil then error("tcp:dohandshake: the socket was not given to ssl.wrap", 2) end
  if cfg.done then return true end
  local s = self._stream
  if s == nil then return nil, "closed" end
  local ok, r, msg = guarded(self, call, wait_secs(self, deadline(self)), corio.tls.wrap, s,
    { context = cfg.context, server_name = cfg.server_name })
  if not ok then return nil, "timeout" end
  if not r then return nil, msg end
  cfg.done = true
  return true
end)

method("sni", "c", function(self, name)
  if self._ssl == nil then error("tcp:sni: the socket was not given to ssl.wrap", 2) end
  if type(name) ~= "string" then error("bad argument #1 to 'sni' (string expected)", 2) end
  self._ssl.server_name = name
  return true
end)

method("info", "c", function(self)
  local s = self._stream
  if s == nil or self._ssl == nil or not self._ssl.done then return nil end
  return s:tls_info()
end)

local function server_handler(self)
  return function(stream)
    local done = corio.event()
    local c = new(self._kind, "client", self._family)
    c._stream, c._done = stream, done
    c._opts.linger = self._opts.linger
    if self._closed then return end
    self._queue:put_nowait(c)
    done:wait()
  end
end

-- bind(host, port) on a master (a Unix one: bind(path)) -> 1. It binds and
-- listens at once (corio.serve); listen then makes the master a server.
method("bind", "m", function(self, host, port)
  need_loop(self._kind .. ":bind")
  if self._closed then return nil, "closed" end
  if self._server then return nil, "already bound" end
  if type(host) ~= "string" then error("bad argument #1 to 'bind' (string expected)", 2) end
  self._queue = corio.queue()
  local srv, msg, code
  if self._kind == "unix" then
    srv, msg, code = corio.serve_unix(host, server_handler(self))
  else
    if host == "*" then host = self._family == "inet6" and "::" or "0.0.0.0" end
    port = tonumber(port)
    if port == nil then error("bad argument #2 to 'bind' (number expected)", 2) end
    srv, msg, code = corio.serve(host, port, server_handler(self),
      { nodelay = self._opts["tcp-nodelay"] ~= false })
  end
  if not srv then return nil, err(msg, code) end
  self._server = srv
  return 1
end)

method("listen", "m", function(self)
  if self._closed then return nil, "closed" end
  if not self._server then
    local ok, e = methods.bind.fn(self, self._kind == "unix" and "" or "*", 0)
    if not ok then return nil, e end
  end
  setmetatable(self, classes[self._kind].server)
  return 1
end)

method("accept", "s", function(self)
  if self._closed then return nil, "closed" end
  local c = self._ready
  if c then
    self._ready = nil
    return c
  end
  local q = self._queue
  local ok
  ok, c = guarded(self, call, wait_secs(self, deadline(self)), q.get, q)
  if not ok then return nil, "timeout" end
  if c == CLOSED then
    q:put_nowait(CLOSED)  -- for any other task waiting here
    return nil, "closed"
  end
  return c
end)

-- wait_readable(self) -> true once receive or accept would not wait
-- (socket.select); a cancelled wait takes nothing
function M.wait_readable(self)
  if self._server then
    if self._ready or self._closed then return true end
    local c = self._queue:get()
    if c == CLOSED then self._queue:put_nowait(CLOSED) else self._ready = c end
    return true
  end
  if self._pos <= #self._buf or self._stream == nil or self._eof then return true end
  -- not through fill: a cancelled wait here must not abort the socket
  local data, msg, code = self._stream:read(CHUNK)
  if data == nil then
    self._eof = err(msg, code)
  else
    self._recv = self._recv + #data
    self._buf, self._pos = data, 1
  end
  return true
end

function M.readable_now(self)
  if self._server then return self._ready ~= nil or self._closed or self._queue:qsize() > 0 end
  return self._pos <= #self._buf or self._stream == nil or self._eof ~= nil
end

method("close", "mcs", function(self)
  if self._closed then return 1 end
  self._closed = true
  local s, srv = self._stream, self._server
  self._stream, self._server = nil, nil
  self._buf, self._pos = "", 1
  if srv then
    srv:close()
    local pending = self._ready
    self._ready = nil
    while true do
      if pending and pending ~= CLOSED and core.running() then pending:close() end
      if self._queue:qsize() == 0 then break end
      pending = self._queue:get_nowait()
    end
    self._queue:put_nowait(CLOSED)
  end
  if s and core.running() then
    local linger = self._opts.linger
    if type(linger) == "table" and linger.on and (linger.timeout or 0) == 0 then
      s:abort()
    elseif not self._done then
      -- as the kernel does after close(2): the queued bytes go out in the
      -- background (an accepted stream's handler closes it when it returns)
      core.spawn_hidden(s.close, s)
    end
  end
  if self._done then self._done:set() end
  return 1
end)

-- _abort: closes at once (a raise interrupted a call on the socket)
function M.abort(self)
  local s = self._stream
  self._stream, self._closed, self._eof = nil, true, "closed"
  self._buf, self._pos = "", 1
  if s and core.running() then s:abort() end
  if self._done then self._done:set() end
end

method("shutdown", "c", function(self, how)
  how = how or "both"
  if how ~= "both" and how ~= "send" and how ~= "receive" then
    error("bad argument #1 to 'shutdown' (invalid shutdown method)", 2)
  end
  local s = self._stream
  if s == nil then return nil, "closed" end
  if (how == "both" or how == "send") and not self._wshut then
    self._wshut = true
    s:shutdown()
  end
  if how == "both" or how == "receive" then self._eof = self._eof or "closed" end
  return 1
end)

local function address_of(self, host, port, msg, code)
  if host == nil then return nil, err(port or msg, code) end
  if self._kind == "unix" then return host end
  return host, port, common.family(host)
end

method("getpeername", "c", function(self)
  if self._stream == nil then return nil, "closed" end
  return address_of(self, self._stream:peer())
end)

method("getsockname", "mcs", function(self)
  if self._stream then return address_of(self, self._stream:address()) end
  if self._server then return address_of(self, self._server:address()) end
  if self._kind == "unix" then return nil, "not bound" end
  if self._family == "inet6" then return "::", 0, "inet6" end
  return "0.0.0.0", 0, "inet"
end)

local options = {
  ["tcp-nodelay"] = "boolean", keepalive = "boolean", reuseaddr = "boolean",
  reuseport = "boolean", linger = "table", ["ipv6-v6only"] = "boolean",
}

method("setoption", "mcs", function(self, name, value)
  local want = options[name]
  if not want then error("bad argument #1 to 'setoption' (unsupported option)", 2) end
  if want == "table" then
    if type(value) ~= "table" or value.on == nil then
      error("bad argument #2 to 'setoption' (linger: a table with 'on' and 'timeout' expected)", 2)
    end
    value = { on = value.on and true or false, timeout = tonumber(value.timeout) or 0 }
  else
    value = value and true or false
  end
  self._opts[name] = value
  local s = self._stream
  if s then
    local ok, msg, code = true, nil, nil
    if name == "tcp-nodelay" then ok, msg, code = s:set_nodelay(value) end
    if name == "keepalive" then ok, msg, code = s:set_keepalive(value) end
    if not ok and code ~= "ENOTSUP" then return nil, err(msg, code) end
  end
  return 1
end)

method("getoption", "mcs", function(self, name)
  if not options[name] then error("bad argument #1 to 'getoption' (unsupported option)", 2) end
  local v = self._opts[name]
  if v == nil and name == "tcp-nodelay" then v = self._kind == "tcp" end
  if v == nil and name == "linger" then v = { on = false, timeout = 0 } end
  if v == nil then v = false end
  return v
end)

method("settimeout", "mcs", common.settimeout)
method("gettimeout", "mcs", function(self)
  return self._block or -1, self._total or -1
end)
method("getfd", "mcs", function() return -1 end)
method("dirty", "mcs", function(self) return self._pos <= #self._buf end)
method("getstats", "mcs", function(self)
  return self._recv, self._sent, M.gettime() - self._birth
end)
method("setstats", "mcs", function(self, received, sent, age)
  self._recv = tonumber(received) or self._recv
  self._sent = tonumber(sent) or self._sent
  if age then self._birth = M.gettime() - tonumber(age) end
  return 1
end)

------------------------------------------------------------------ classes
local state_of = { m = "master", c = "client", s = "server" }

for _, kind in ipairs { "tcp", "unix" } do
  classes[kind], any[kind] = {}, {}
  local index = {}  -- one method table, as LuaSocket's: each method checks the class
  for letter, state in pairs(state_of) do
    local mt = { __name = kind .. "{" .. state .. "}", __index = index }
    mt.__tostring = function(self) return ("%s: %p"):format(mt.__name, self) end
    classes[kind][state] = mt
    any[kind][mt] = letter
  end
  for name, m in pairs(methods) do
    local fname = kind .. ":" .. name
    local tname = #m.states == 1 and (kind .. "{" .. state_of[m.states] .. "}") or (kind .. " object")
    local allowed, fn = {}, m.fn
    for mt, letter in pairs(any[kind]) do
      if m.states:find(letter, 1, true) then allowed[mt] = true end
    end
    local function checked(self, ...)
      if not allowed[getmetatable(self)] then errors.check_self(self, allowed, fname, tname) end
      return fn(self, ...)
    end
    for mt in pairs(any[kind]) do mt.__index[name] = checked end
  end
  index._abort = M.abort
  for _, mt in pairs(classes[kind]) do
    mt.__close = function(self) if not self._closed then self:close() end end
  end
end

-- M.new(kind, family) -> a master ("tcp" or "unix"; family "inet",
-- "inet6" or nil)
function M.new(kind, family)
  return new(kind, "master", family)
end

-- M.is(x) -> whether x is one of these objects
function M.is(x)
  local mt = getmetatable(x)
  return mt ~= nil and (any.tcp[mt] ~= nil or any.unix[mt] ~= nil)
end

return M
