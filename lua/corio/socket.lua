-- corio.socket: LuaSocket's API over corio's streams, so libraries written
-- for LuaSocket (Redis clients, socket.http, socket.smtp...) run in tasks
-- and wait without blocking the others. corio.socket.install() makes
-- require "socket" return it. See docs/socket.md.
local core = require "corio.core"
local corio = require "corio"
local common = require "corio.socket.common"
local stream = require "corio.socket.stream"
local udp = require "corio.socket.udp"
local helpers = require "corio.socket.helpers"

local socket = {
  _VERSION = "LuaSocket 3.0.0 (corio " .. corio.version .. ")",
  _DEBUG = false,
  _DATAGRAMSIZE = 8192,
  _SOCKETINVALID = -1,
  gettime = stream.gettime,
}
for k, v in pairs(helpers) do socket[k] = v end

------------------------------------------------------------------ objects
function socket.tcp() return stream.new("tcp", nil) end
function socket.tcp4() return stream.new("tcp", "inet") end
function socket.tcp6() return stream.new("tcp", "inet6") end
function socket.udp() return udp.new(nil) end
function socket.udp4() return udp.new("inet") end
function socket.udp6() return udp.new("inet6") end

-- socket.unix: what require "socket.unix" returns; callable for a stream
-- master, as LuaSocket's is
local unix = {
  stream = function() return stream.new("unix", nil) end,
  dgram = function() return nil, "corio.socket: Unix datagram sockets are not supported" end,
}
unix.seqpacket = unix.dgram
setmetatable(unix, { __call = function() return unix.stream() end })
socket.unix = unix

-- socket.connect(host, port [, laddress, lport, family]) -> client
function socket.connect(host, port, laddress, lport, family)
  common.need_loop("socket.connect")
  if laddress ~= nil or lport ~= nil then
    return nil, "corio.socket: connecting from a chosen local address is not supported"
  end
  local s = stream.new("tcp", family)
  local ok, e = s:connect(host, port)
  if not ok then
    s:close()
    return nil, e
  end
  return s
end

function socket.connect4(host, port, laddress, lport)
  common.need_loop("socket.connect4")
  return socket.connect(host, port, laddress, lport, "inet")
end

function socket.connect6(host, port, laddress, lport)
  common.need_loop("socket.connect6")
  return socket.connect(host, port, laddress, lport, "inet6")
end

-- socket.bind(host, port [, backlog]) -> server
function socket.bind(host, port)
  common.need_loop("socket.bind")
  local s = stream.new("tcp", type(host) == "string" and host:find(":", 1, true) and "inet6" or nil)
  s:setoption("reuseaddr", true)
  local ok, e = s:bind(host, port)
  if ok then ok, e = s:listen() end
  if not ok then
    s:close()
    return nil, e
  end
  return s
end

------------------------------------------------------------------ time
-- socket.sleep(secs): in a task, corio.sleep; outside a running loop, a
-- loop of its own that sleeps (a plain blocking sleep)
function socket.sleep(secs)
  if type(secs) ~= "number" or secs <= 0 then return end
  if core.running() then return corio.sleep(secs) end
  corio.run(corio.sleep, secs)
end

------------------------------------------------------------------ select
local function kind_of(s)
  if stream.is(s) then return stream end
  if udp.is(s) then return udp end
  error("socket.select: not a corio.socket object: " .. tostring(s), 3)
end

local function add(list, s)
  if list[s] == nil then
    list[#list + 1] = s
    list[s] = #list
  end
end

local function writable(s)
  if udp.is(s) then return true end
  return getmetatable(s).__name:find("{client}", 1, true) ~= nil
end

local function collect(recvt, sendt)
  local r, w = {}, {}
  for _, s in ipairs(recvt) do
    if kind_of(s).readable_now(s) then add(r, s) end
  end
  for _, s in ipairs(sendt) do
    kind_of(s)
    if writable(s) then add(w, s) end
  end
  return r, w
end

-- socket.select(recvt, sendt [, timeout]) -> readable, writable, err:
-- sockets are always writable (corio queues what the kernel does not take);
-- readable means a receive or accept would not wait
function socket.select(recvt, sendt, timeout)
  recvt, sendt = recvt or {}, sendt or {}
  if timeout ~= nil and type(timeout) ~= "number" then
    error("bad argument #3 to 'select' (number expected, got " .. type(timeout) .. ")", 2)
  end
  if timeout and timeout < 0 then timeout = nil end
  local r, w = collect(recvt, sendt)
  if #r == 0 and #w == 0 and #recvt > 0 and timeout ~= 0 then
    common.need_loop("socket.select")
    local ready = corio.event()
    common.call(timeout, corio.task_group, function(tg)
      for _, s in ipairs(recvt) do
        tg:spawn(function()
          kind_of(s).wait_readable(s)
          ready:set()
        end)
      end
      ready:wait()
      tg:cancel()
    end)
    r, w = collect(recvt, sendt)
  end
  if #r == 0 and #w == 0 then return r, w, "timeout" end
  return r, w, nil
end

------------------------------------------------------------------ dns
local dns = {}
socket.dns = dns

-- in a task: fn(...); outside a running loop: fn(...) in a loop of its own
local function in_loop(fn, ...)
  if core.running() then return fn(...) end
  return corio.run(fn, ...)
end

local function is_ipv4(s) return s:match("^%d+%.%d+%.%d+%.%d+$") ~= nil end

-- dns.toip(name) -> the first IPv4 address, {name, alias, ip}
function dns.toip(name)
  if type(name) ~= "string" then error("bad argument #1 to 'toip' (string expected)", 2) end
  if is_ipv4(name) then return name, { name = name, alias = {}, ip = { name } } end
  local list = in_loop(corio.getaddrinfo, name, nil, { family = "inet", socktype = "stream" })
  if not list or #list == 0 then return nil, "host not found" end
  local ips = {}
  for i, a in ipairs(list) do ips[i] = a.address end
  return ips[1], { name = name, alias = {}, ip = ips }
end

-- dns.tohostname(address or name) -> the canonical name, {name, alias, ip}
function dns.tohostname(addr)
  if type(addr) ~= "string" then error("bad argument #1 to 'tohostname' (string expected)", 2) end
  local ip = addr
  if not is_ipv4(addr) and not addr:find(":", 1, true) then
    ip = dns.toip(addr)
    if not ip then return nil, "host not found" end
  end
  local host = in_loop(corio.getnameinfo, ip, 0, { namereqd = true })
  if not host then return nil, "host not found" end
  return host, { name = host, alias = {}, ip = { ip } }
end

-- dns.gethostname() -> this machine's name
function dns.gethostname()
  local f = io.open("/proc/sys/kernel/hostname", "r")
  local name = f and f:read("l")
  if f then f:close() end
  return name or os.getenv("HOSTNAME") or "localhost"
end

-- dns.getaddrinfo(host) -> list of {family = "inet" | "inet6", addr = ...}
function dns.getaddrinfo(host)
  if type(host) ~= "string" then error("bad argument #1 to 'getaddrinfo' (string expected)", 2) end
  local list, msg, code = in_loop(corio.getaddrinfo, host, nil, { socktype = "stream" })
  if not list then return nil, common.err(msg, code) end
  local out = {}
  for i, a in ipairs(list) do out[i] = { family = a.family, addr = a.address } end
  return out
end

-- dns.getnameinfo(host [, port]) -> list of names, service
function dns.getnameinfo(host, port)
  local ip = host
  if host and not is_ipv4(host) and not host:find(":", 1, true) then
    ip = dns.toip(host)
    if not ip then return nil, "host not found" end
  end
  local name, service = in_loop(corio.getnameinfo, ip or "0.0.0.0", tonumber(port) or 0)
  if not name then return nil, common.err(service) end
  return { name }, service
end

------------------------------------------------------------------ install
-- modules that take the socket module when they load: dropped from
-- package.loaded on install and uninstall, so they load again over the
-- module then in place
local replaced = { "socket", "socket.core", "socket.unix", "ssl" }

-- LuaSec's "ssl" is replaced too when corio has TLS
local function corio_tls_available()
  return corio.tls ~= nil and corio.tls.available() == true
end
local dependents = { "socket.http", "socket.smtp", "socket.ftp", "socket.tp" }
local saved  -- name -> { value = what package.loaded held }

-- socket.install() -> socket: require "socket" (and "socket.core",
-- "socket.unix") returns corio.socket from now on
function socket.install()
  if saved then return socket end
  saved = {}
  for _, list in ipairs { replaced, dependents } do
    for _, name in ipairs(list) do saved[name] = { value = package.loaded[name] } end
  end
  package.loaded["socket"] = socket
  package.loaded["socket.core"] = socket
  package.loaded["socket.unix"] = unix
  if corio_tls_available() then package.loaded["ssl"] = require "corio.socket.ssl" end
  for _, name in ipairs(dependents) do package.loaded[name] = nil end
  return socket
end

-- socket.uninstall() -> whether it was installed: package.loaded as before
function socket.uninstall()
  if not saved then return false end
  for name, s in pairs(saved) do package.loaded[name] = s.value end
  saved = nil
  return true
end

function socket.installed() return saved ~= nil end

return socket
