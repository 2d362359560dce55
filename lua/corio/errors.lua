-- Error values of corio: Cancelled (made by the C core), TimeoutError,
-- ErrorGroup, Deadlock and ProcessError. Each class is a table that is also the
-- metatable of its instances; Class.is(e) tells an instance.
local core = require "corio.core"

local errors = {}

local function class(name, tostring_fn)
  local c = { __name = name }
  c.__index = c
  c.__tostring = tostring_fn
  function c.is(e) return getmetatable(e) == c end
  return c
end

-- Cancelled is the core's metatable: add `is` and the name to it.
local Cancelled = core.Cancelled
Cancelled.__name = "corio.Cancelled"
Cancelled.__index = Cancelled
function Cancelled.is(e) return core.is_cancelled(e) end
errors.Cancelled = Cancelled

errors.TimeoutError = class("corio.TimeoutError", function(e)
  return "timeout: " .. tostring(e.message)
end)

function errors.timeout_error(message)
  return setmetatable({ message = message or "deadline exceeded" }, errors.TimeoutError)
end

-- Errors of queues and barriers: a message ("queue:get: queue shut down")
-- in a class a worker loop can test without matching strings:
--   local ok, err = pcall(q.get, q)
--   if not ok and corio.QueueShutDown.is(err) then break end
local function message_class(name)
  return class(name, function(e) return e.message end)
end
errors.QueueShutDown = message_class("corio.QueueShutDown")
errors.QueueFull = message_class("corio.QueueFull")
errors.QueueEmpty = message_class("corio.QueueEmpty")
errors.BrokenBarrier = message_class("corio.BrokenBarrier")

-- errors.raise(Class, message, level): raise an instance
function errors.raise(c, message, level)
  error(setmetatable({ message = message }, c), level and level + 1 or 2)
end

-- errors.bad_self(self, method, tname [, got, level]): raise the message
-- the C types raise for a method called with a wrong self (a dot written
-- for a colon; c/lua/selfcheck.c): "bad self to 'queue:put' (Queue
-- expected, got number): use queue:put(...)". got defaults to self's
-- __name or type; level to the method's caller.
function errors.bad_self(self, method, tname, got, level)
  if got == nil then
    got = type(self)
    local m = getmetatable(self)
    if type(m) == "table" and type(rawget(m, "__name")) == "string" then got = m.__name end
  end
  error(("bad self to '%s' (%s expected, got %s): use %s(...)"):format(method, tname, got, method),
    level or 3)
end

-- errors.check_self(self, mt, "queue:put", "Queue"): every method of the
-- Lua layer's types checks its self with this
function errors.check_self(self, mt, method, tname)
  if getmetatable(self) ~= mt then errors.bad_self(self, method, tname, nil, 4) end
end

local function indent(s)
  return (tostring(s):gsub("\n", "\n    "))
end

errors.ErrorGroup = class("corio.ErrorGroup", function(eg)
  local parts = { eg.message }
  for i, e in ipairs(eg.errors) do
    local tb = eg.tracebacks[i]
    parts[#parts + 1] = ("  [%d] %s"):format(i, indent(tostring(e)))
    if tb and tb ~= "" then parts[#parts + 1] = "    " .. indent(tb) end
  end
  return table.concat(parts, "\n")
end)

function errors.error_group(errs, tbs)
  local n = #errs
  return setmetatable({
    message = ("%d error%s in task group"):format(n, n == 1 and "" or "s"),
    errors = errs,
    tracebacks = tbs,
  }, errors.ErrorGroup)
end

errors.Deadlock = class("corio.Deadlock", function(e) return e.message end)

function errors.deadlock(dump)
  return setmetatable({
    message = "deadlock: the main task waits, and nothing can ever wake it\n" .. dump,
    dump = dump,
  }, errors.Deadlock)
end

-- ProcessError: raised by corio.run_process(argv, {check = true}) for a
-- child that failed; carries argv, code, signal, stdout and stderr.
errors.ProcessError = class("corio.ProcessError", function(e) return e.message end)

function errors.process_error(argv, code, signal, stdout, stderr)
  local how = signal and ("was killed by " .. signal) or ("exited with code " .. tostring(code))
  return setmetatable({
    message = ("process '%s' %s"):format(tostring(argv[1]), how),
    argv = argv, code = code, signal = signal, stdout = stdout, stderr = stderr,
  }, errors.ProcessError)
end

return errors
