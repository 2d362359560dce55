-- corio.socket's UDP objects: LuaSocket's udp{unconnected} and
-- udp{connected} over a corio UDP socket (made at the first call that
-- needs one, so socket.udp() itself works anywhere).
local corio = require "corio"
local errors = require "corio.errors"
local common = require "corio.socket.common"

local err, need_loop, guarded, call = common.err, common.need_loop, common.guarded, common.call
local deadline, wait_secs = common.deadline, common.wait_secs

local M = {}

local DATAGRAM = 8192  -- receive's default size, as LuaSocket's

local Unconnected = { __name = "udp{unconnected}" }
local Connected = { __name = "udp{connected}" }
local both = { [Unconnected] = true, [Connected] = true }
Unconnected.__index, Connected.__index = {}, {}

local function sock(self, fname)
  need_loop(fname)
  local u = self._u
  if u == nil then
    u = corio.udp()
    self._u = u
  end
  return u
end

local function host_of(host, family)
  if host == "*" then return family == "inet6" and "::" or "0.0.0.0" end
  return host
end

local function check_string(v, n, fname)
  if type(v) == "number" then return tostring(v) end
  if type(v) ~= "string" then
    error(("bad argument #%d to '%s' (string expected, got %s)"):format(n, fname, type(v)), 3)
  end
  return v
end

local function check_size(size)
  if size == nil then return DATAGRAM end
  local n = math.tointeger(tonumber(size))
  if n == nil or n < 0 then error("bad argument #1 to 'receive' (size must be a non-negative integer)", 3) end
  return n
end

local m = {}  -- name -> { all = bool (both classes) or the one class, fn }

local function method(name, where, fn)
  m[name] = { where = where, fn = fn }
end

method("setsockname", Unconnected, function(self, host, port)
  host = check_string(host, 1, "setsockname")
  if self._closed then return nil, "closed" end
  local u = sock(self, "udp:setsockname")
  local ok, msg, code = u:bind(host_of(host, self._family), tonumber(port) or 0,
    { reuseaddr = self._reuseaddr })
  if not ok then return nil, err(msg, code) end
  return 1
end)

method("setpeername", both, function(self, host, port)
  host = check_string(host, 1, "setpeername")
  if self._closed then return nil, "closed" end
  local u = sock(self, "udp:setpeername")
  if host == "*" then
    local ok, msg, code = u:connect()
    if not ok then return nil, err(msg, code) end
    setmetatable(self, Unconnected)
    return 1
  end
  if getmetatable(self) == Connected then u:connect() end
  local ok, msg, code = u:connect(host, tonumber(port) or 0)
  if not ok then return nil, err(msg, code) end
  setmetatable(self, Connected)
  return 1
end)

local function send_to(self, fname, data, host, port)
  if self._closed then return nil, "closed" end
  local u = sock(self, fname)
  local ok, r, msg, code = guarded(self, call, wait_secs(self, deadline(self)), u.send, u, data, host, port)
  if not ok then return nil, "timeout" end
  if not r then return nil, err(msg, code) end
  return #data
end

method("send", Connected, function(self, data)
  data = check_string(data, 1, "send")
  return send_to(self, "udp:send", data)
end)

method("sendto", Unconnected, function(self, data, host, port)
  data = check_string(data, 1, "sendto")
  host = check_string(host, 2, "sendto")
  port = tonumber(port)
  if port == nil then error("bad argument #3 to 'sendto' (number expected)", 2) end
  return send_to(self, "udp:sendto", data, host, port)
end)

local function recv(self, fname, size)
  if self._closed then return nil, "closed" end
  local u = sock(self, fname)
  local ok, data, host, port
  local stash = self._stash
  if stash then
    self._stash = nil
    ok, data, host, port = true, stash[1], stash[2], stash[3]
  else
    ok, data, host, port = guarded(self, call, wait_secs(self, deadline(self)), u.recv, u)
  end
  if not ok then return nil, "timeout" end
  if data == nil then return nil, err(host, port) end
  if #data > size then data = data:sub(1, size) end
  return data, host, port
end

method("receive", both, function(self, size)
  local data, e = recv(self, "udp:receive", check_size(size))
  if data == nil then return nil, e end
  return data
end)

method("receivefrom", Unconnected, function(self, size)
  return recv(self, "udp:receivefrom", check_size(size))
end)

method("getsockname", both, function(self)
  if self._closed then return nil, "closed" end
  if self._u == nil then return "0.0.0.0", 0, self._family or "inet" end
  local host, port, code = self._u:address()
  if host == nil then return nil, err(port, code) end
  return host, port, common.family(host)
end)

method("getpeername", Connected, function(self)
  if self._closed then return nil, "closed" end
  local host, port, code = self._u:peer()
  if host == nil then return nil, err(port, code) end
  return host, port, common.family(host)
end)

local options = { broadcast = true, dontroute = true, reuseaddr = true, reuseport = true,
  ["ipv6-v6only"] = true }

method("setoption", both, function(self, name, value)
  if not options[name] then error("bad argument #1 to 'setoption' (unsupported option)", 2) end
  value = value and true or false
  if name == "broadcast" then
    local ok, msg, code = sock(self, "udp:setoption"):set_broadcast(value)
    if not ok then return nil, err(msg, code) end
  elseif name == "reuseaddr" then
    self._reuseaddr = value
  end
  self["_opt_" .. name] = value
  return 1
end)

method("getoption", both, function(self, name)
  if not options[name] then error("bad argument #1 to 'getoption' (unsupported option)", 2) end
  return self["_opt_" .. name] or false
end)

method("close", both, function(self)
  if not self._closed then
    self._closed = true
    local u = self._u
    self._u = nil
    if u then u:close() end
  end
  return 1
end)

function M.abort(self)
  if not self._closed then m.close.fn(self) end
end

method("settimeout", both, common.settimeout)
method("gettimeout", both, function(self) return self._block or -1, self._total or -1 end)
method("getfd", both, function() return -1 end)
method("dirty", both, function() return false end)

for name, d in pairs(m) do
  local fname = "udp:" .. name
  local fn = d.fn
  if d.where == both then
    local function checked(self, ...)
      if not both[getmetatable(self)] then errors.check_self(self, both, fname, "udp object") end
      return fn(self, ...)
    end
    Unconnected.__index[name], Connected.__index[name] = checked, checked
  else
    local mt = d.where
    d.where.__index[name] = function(self, ...)
      errors.check_self(self, mt, fname, mt.__name)
      return fn(self, ...)
    end
  end
end
for mt in pairs(both) do
  mt.__index._abort = M.abort
  mt.__tostring = function(self) return ("%s: %p"):format(mt.__name, self) end
  mt.__close = function(self) m.close.fn(self) end
end

-- M.new(family) -> an unconnected UDP object
function M.new(family)
  return setmetatable({ _family = family }, Unconnected)
end

function M.is(x) return both[getmetatable(x)] == true end

-- readiness for socket.select: a datagram waiting, or the socket closed
function M.readable_now(self)
  return self._closed or self._stash ~= nil or (self._u ~= nil and self._u:pending() > 0)
end

-- wait_readable(self): waits for a datagram and keeps it for the next
-- receive (a cancelled wait takes nothing)
function M.wait_readable(self)
  if M.readable_now(self) then return end
  local u = sock(self, "socket.select")
  self._stash = table.pack(u:recv())
end

return M
