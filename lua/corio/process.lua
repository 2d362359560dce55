-- corio.process: processes and signals, taken from corio.core (corio.exec,
-- corio.signal), and corio.run_process, written here on top of exec;
-- init.lua copies them into the corio module.
local core = require "corio.core"
local errors = require "corio.errors"

local process = {}

process.exec = core.exec      -- corio.exec(argv [, opts]) -> Process
process.signal = core.signal  -- corio.signal(name) -> signal receiver
process.ProcessError = errors.ProcessError

local function argerror(n, msg)
  error(("bad argument #%d to 'corio.run_process' (%s)"):format(n, msg), 3)
end

-- the child's stdin: input, then its end (a child that stops reading
-- early makes the write fail: that is its business)
local function feed(p, input)
  if input ~= "" then p.stdin:write(input) end
  p.stdin:close()
end

-- all a pipe gives, or {msg, code} when reading it failed
local function drain(s)
  local data, msg, code = s:read_all()
  if data == nil and msg ~= nil then return { msg, code } end
  return data or ""
end

-- code, out, errout, signal; or nil, msg, code when reading the output failed
local function collect(p, input)
  local _, out, errout, st = core.gather(
    function() if input then feed(p, input) end return true end,
    function() return drain(p.stdout) end,
    function() return drain(p.stderr) end,
    function() return table.pack(p:wait()) end)
  for _, r in ipairs { out, errout } do
    if type(r) == "table" then return nil, r[1], r[2] end
  end
  return st[1], out, errout, st[2]
end

-- corio.run_process(argv [, opts]) (suspends) -> code, stdout, stderr
-- [, signal], or nil, msg, code when the program cannot start or reading
-- its output fails. opts:
-- input (a string for its stdin; else stdin is /dev/null), timeout
-- (seconds: then the child is terminated and corio.TimeoutError raised),
-- check (raise a corio.ProcessError unless it exits with 0), and exec's
-- cwd, env, clear_env, kill_after.
function process.run_process(argv, opts)
  if type(argv) ~= "table" then argerror(1, "table expected, got " .. type(argv)) end
  if opts ~= nil and type(opts) ~= "table" then argerror(2, "table expected, got " .. type(opts)) end
  opts = opts or {}
  local input, timeout = opts.input, opts.timeout
  if input ~= nil and type(input) ~= "string" then
    argerror(2, "option 'input': a string expected, got " .. type(input))
  end
  if timeout ~= nil and (type(timeout) ~= "number" or timeout ~= timeout) then
    argerror(2, "option 'timeout': a number expected, got " .. type(timeout))
  end
  local p, err, ecode = core.exec(argv, {
    cwd = opts.cwd, env = opts.env, clear_env = opts.clear_env, kill_after = opts.kill_after,
    stdin = input and "pipe" or "null", stdout = "pipe", stderr = "pipe",
  })
  if not p then return nil, err, ecode end
  local _p <close> = p
  local code, out, errout, sig
  if timeout then
    local _s <close> = core.scope(timeout <= 0 and 0 or core.now() + timeout)
    code, out, errout, sig = collect(p, input)
  else
    code, out, errout, sig = collect(p, input)
  end
  if code == nil then return nil, out, errout end  -- reading the output failed
  if opts.check and code ~= 0 then
    error(errors.process_error(argv, code, sig, out, errout), 2)
  end
  return code, out, errout, sig
end

return process
