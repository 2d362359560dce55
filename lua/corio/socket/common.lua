-- corio.socket's shared parts: LuaSocket's error strings, its two timeouts
-- (block and total) turned into waits on corio, and the guard that a call
-- needing the loop is made inside corio.run.
local core = require "corio.core"
local corio = require "corio"

local M = {}

-- LuaSocket's words for the failures its users compare against; anything
-- else keeps corio's message without its code ("ENETUNREACH: network
-- unreachable" -> "network unreachable").
local words = {
  ECONNREFUSED = "connection refused",
  ECONNRESET = "closed",
  ECONNABORTED = "closed",
  EPIPE = "closed",
  ENOTCONN = "closed",
  EBADF = "closed",
  ETIMEDOUT = "timeout",
  EADDRINUSE = "address already in use",
  EISCONN = "already connected",
  EACCES = "permission denied",
  EAI_NONAME = "host or service not provided, or not known",
  EAI_AGAIN = "temporary failure in name resolution",
  EAI_FAIL = "non-recoverable failure in name resolution",
  EAI_FAMILY = "ai_family not supported",
  EAI_MEMORY = "memory allocation failure",
  EAI_SERVICE = "service not supported for socket type",
  EAI_SOCKTYPE = "ai_socktype not supported",
}

-- err(msg, code) -> LuaSocket's string for a corio failure
function M.err(msg, code)
  if msg == nil or msg == "closed" then return "closed" end
  if msg == "timeout" then return "timeout" end
  if code and words[code] then return words[code] end
  local c, text = tostring(msg):match("^([%u%d_]+): (.*)$")
  if c and words[c] then return words[c] end
  return text or tostring(msg)
end

-- need_loop("tcp:connect"): raise unless a corio loop runs (sockets do
-- their I/O on it; outside corio.run there is nothing to wait with)
function M.need_loop(name)
  if not core.running() then
    error(("corio.socket: %s needs a running loop: call it inside corio.run"):format(name), 3)
  end
end

-- LuaSocket's settimeout(value [, mode]) on any object holding _block and
-- _total (nil: no limit)
function M.settimeout(self, value, mode)
  if value ~= nil and type(value) ~= "number" then
    error(("bad argument #1 to 'settimeout' (number expected, got %s)"):format(type(value)), 2)
  end
  if value ~= nil and value < 0 then value = nil end
  mode = mode or "b"
  if mode == "b" then
    self._block = value
  elseif mode == "t" or mode == "r" then
    self._total = value
  else
    error("bad argument #2 to 'settimeout' (invalid timeout mode)", 2)
  end
  return 1
end

-- deadline(self) -> the call's total deadline (nil: none), taken when a
-- call starts
function M.deadline(self)
  if self._total then return core.now() + self._total end
  return nil
end

-- a wait that may not wait still tries once: the deadline lies just ahead,
-- so what is already buffered answers, as LuaSocket's timeout 0 does
local EPS = 1e-6

-- wait_secs(self, deadline) -> how long the next wait may last (nil: no limit)
function M.wait_secs(self, deadline)
  local w = self._block
  if deadline then
    local left = deadline - core.now()
    if w == nil or left < w then w = left end
  end
  if w ~= nil and w < EPS then w = EPS end
  return w
end

-- call(secs, fn, ...) -> true, fn's results; or false when secs passed
-- first (fn was cancelled at its wait). secs nil: no limit.
function M.call(secs, fn, ...)
  if secs == nil then return true, fn(...) end
  return corio.move_on_after(secs, fn, ...)
end

-- guarded(self, fn, ...) -> fn's results; a raise inside (a cancellation,
-- an enclosing corio.timeout) first aborts the socket: the protocol spoken
-- over it is in an unknown state, so it is closed.
function M.guarded(self, fn, ...)
  local res = table.pack(pcall(fn, ...))
  if not res[1] then
    self:_abort()
    error(res[2], 0)
  end
  return table.unpack(res, 2, res.n)
end

-- family(host) -> "inet6" for an address with a colon, else "inet"
function M.family(host)
  if type(host) == "string" and host:find(":", 1, true) then return "inet6" end
  return "inet"
end

return M
