-- LuaSocket's helper functions, which its pure-Lua modules (socket.http,
-- socket.smtp, socket.tp) call on the socket module: newtry/try, protect,
-- skip, choose, and the LTN12 sinks and sources over a socket. Written for
-- corio.socket; errors that are not try's (a cancellation) pass through
-- protect untouched.
local M = {}

-- try's errors: a table holding the message, told apart by its metatable
local Failure = { __name = "corio.socket failure" }
Failure.__tostring = function(f) return tostring(f[1]) end

-- newtry([finalizer]) -> try: try(ok, ...) returns its arguments when ok is
-- true, else calls finalizer() and raises the message (the second argument)
function M.newtry(finalizer)
  return function(...)
    local ok = ...
    if ok then return ... end
    if finalizer then finalizer() end
    error(setmetatable({ (select(2, ...)) }, Failure), 0)
  end
end

M.try = M.newtry()

-- protect(fn) -> a function returning fn's results, or nil and the message
-- when a try inside raised; other errors are raised again
function M.protect(fn)
  return function(...)
    local res = table.pack(pcall(fn, ...))
    if res[1] then return table.unpack(res, 2, res.n) end
    local e = res[2]
    if getmetatable(e) == Failure then return nil, e[1] end
    error(e, 0)
  end
end

-- skip(d, ...) -> the arguments after the first d
function M.skip(d, ...)
  return select(d + 1, ...)
end

function M.choose(t)
  return function(name, opt1, opt2)
    if type(name) ~= "string" then name, opt1, opt2 = "default", name, opt1 end
    local f = t[name or "nil"]
    if not f then error("unknown key (" .. tostring(name) .. ")", 3) end
    return f(opt1, opt2)
  end
end

M.BLOCKSIZE = 2048

local sinkt, sourcet = {}, {}
M.sinkt, M.sourcet = sinkt, sourcet

-- a callable carrying the socket's getfd and dirty, as LuaSocket's are
local function callable(sock, fn)
  return setmetatable({
    getfd = function() return sock:getfd() end,
    dirty = function() return sock:dirty() end,
  }, { __call = function(_, ...) return fn(...) end })
end

sinkt["close-when-done"] = function(sock)
  return callable(sock, function(chunk)
    if not chunk then
      sock:close()
      return 1
    end
    return sock:send(chunk)
  end)
end

sinkt["keep-open"] = function(sock)
  return callable(sock, function(chunk)
    if chunk then return sock:send(chunk) end
    return 1
  end)
end

sinkt["default"] = sinkt["keep-open"]
M.sink = M.choose(sinkt)

sourcet["by-length"] = function(sock, length)
  return callable(sock, function()
    if length <= 0 then return nil end
    local chunk, e = sock:receive(math.min(M.BLOCKSIZE, length))
    if e then return nil, e end
    length = length - #chunk
    return chunk
  end)
end

sourcet["until-closed"] = function(sock)
  local done = false
  return callable(sock, function()
    if done then return nil end
    local chunk, e, partial = sock:receive(M.BLOCKSIZE)
    if not e then return chunk end
    if e == "closed" then
      sock:close()
      done = true
      return partial
    end
    return nil, e
  end)
end

sourcet["default"] = sourcet["until-closed"]
M.source = M.choose(sourcet)

return M
