-- corio.testing: run a test as corio's main task on a virtual clock, and
-- check that it left nothing behind (the reference: docs/testing.md).
--
-- The virtual clock is the real clock plus an offset that only a test
-- moves: advance() adds to it, and autojump adds to it whenever the loop
-- would block with nothing but a corio timer able to wake a task (no
-- ready task, no request in flight, no other active handle, no handle
-- closing). Real I/O keeps its real timing: while any is pending the
-- clock runs at the real pace and does not jump.
local core = require "corio.core"

local testing = {}

local active = nil  -- the options of the testing.run under way

local function check_opts(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then
    error("corio.testing.run: bad argument #2 (options table expected, got " .. type(opts) .. ")", 3)
  end
  local clock = opts.clock
  if clock == nil then clock = "virtual" end
  if clock ~= "virtual" and clock ~= "real" then
    error("corio.testing.run: clock must be \"virtual\" or \"real\", got " .. tostring(clock), 3)
  end
  local autojump = opts.autojump
  if autojump == nil then autojump = clock == "virtual" end
  if autojump and clock ~= "virtual" then
    error("corio.testing.run: autojump needs clock = \"virtual\"", 3)
  end
  local leaks = opts.check_leaks
  if leaks == nil then leaks = true end
  return { clock = clock, autojump = autojump and true or false, check_leaks = leaks }
end

-- handles by type name: {tcp = 2, ...}
local function count_handles()
  local n = {}
  for _, name in ipairs(core.testing_handles()) do n[name] = (n[name] or 0) + 1 end
  return n
end

-- fds worth reporting: files and the like. Pipes, sockets and the
-- kernel's anonymous objects belong to handles (reported as such) or to
-- libuv itself, as does /dev/null (libuv keeps one open, from a server's
-- first listen to the loop's end, to cope with running out of fds).
local function reportable_fd(target)
  return not (target:match("^pipe:") or target:match("^socket:") or
              target:match("^anon_inode:") or target == "/dev/null")
end

local function leak_report(me, handles0, fds0)
  local lines = {}
  for _, t in ipairs(core.all_tasks()) do
    if t ~= me then
      lines[#lines + 1] = ("task %q still running"):format(t:name())
    end
  end
  local handles = count_handles()
  local names = {}
  for name in pairs(handles) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    local extra = handles[name] - (handles0[name] or 0)
    if extra > 0 then
      lines[#lines + 1] = ("%d %s handle%s still open"):format(extra, name, extra > 1 and "s" or "")
    end
  end
  local fds = fds0 and core.testing_fds()
  if fds then
    local list = {}
    for fd, target in pairs(fds) do
      if fds0[fd] ~= target and reportable_fd(target) then list[#list + 1] = fd end
    end
    table.sort(list)
    for _, fd in ipairs(list) do
      lines[#lines + 1] = ("fd %d (%s) still open"):format(fd, fds[fd])
    end
  end
  if #lines == 0 then return nil end
  return "corio.testing.run: the test left things behind:\n  " .. table.concat(lines, "\n  ")
end

-- testing.run(fn, opts) -> fn's results. Runs fn as the main task of a
-- fresh loop (as corio.run does), on a virtual clock by default.
function testing.run(fn, opts)
  if type(fn) ~= "function" then
    error("corio.testing.run: bad argument #1 (function expected, got " .. type(fn) .. ")", 2)
  end
  opts = check_opts(opts)
  if core.running() then
    error("corio.testing.run: a loop is already running", 2)
  end
  return core.run(function()
    active = opts
    local _ <close> = setmetatable({}, { __close = function() active = nil end })
    if opts.autojump then core.testing_autojump(true) end
    local me = core.current_task()
    local handles0 = count_handles()
    local fds0 = core.testing_fds()
    local res = table.pack(fn())
    if opts.check_leaks then
      -- let what was just closed finish closing, and finished tasks end
      for _ = 1, 3 do core.sleep(0) end
      local report = leak_report(me, handles0, fds0)
      if report then error(report, 0) end
    end
    return table.unpack(res, 1, res.n)
  end)
end

local function check_active(fname)
  if active == nil then
    error(fname .. ": only inside corio.testing.run", 3)
  end
end

-- testing.wait_all_blocked(): suspends until every other task is
-- blocked (waiting on a timer, I/O, a lock, a future...), none ready.
function testing.wait_all_blocked()
  check_active("corio.testing.wait_all_blocked")
  repeat core.sleep(0) until core.testing_ready() == 0
end

-- testing.advance(secs): moves the virtual clock forward by secs, then
-- lets every task that fell due run until it blocks again.
function testing.advance(secs)
  check_active("corio.testing.advance")
  if active.clock ~= "virtual" then
    error("corio.testing.advance: the clock is real (clock = \"virtual\" makes it movable)", 2)
  end
  if type(secs) ~= "number" or secs ~= secs or secs < 0 then
    error("corio.testing.advance: bad argument #1 (seconds >= 0 expected, got " .. tostring(secs) .. ")", 2)
  end
  core.testing_advance(secs)
  testing.wait_all_blocked()
end

-- testing.async(fn, opts) -> a function that runs fn under testing.run:
-- for busted, it("...", testing.async(function() ... end)).
function testing.async(fn, opts)
  if type(fn) ~= "function" then
    error("corio.testing.async: bad argument #1 (function expected, got " .. type(fn) .. ")", 2)
  end
  check_opts(opts)
  return function() return testing.run(fn, opts) end
end

-- testing.checkpoints(fn, opts) (suspends) -> task, count. Runs fn in a
-- new task and counts the checkpoints (suspensions) of that task and of
-- every task it spawns, transitively, until fn's task has ended. With
-- opts.cancel_at = k, the k-th one is cancelled as a task:cancel() from
-- elsewhere arriving while the task waits there: the task waiting there
-- (opts.cancel = "waiter", the default) or fn's task ("root"); while the
-- task waits (opts.cancel_when = "waiting", the default) or once it has
-- been woken, just before it resumes ("woken").
function testing.checkpoints(fn, opts)
  local fname = "corio.testing.checkpoints"
  check_active(fname)
  if type(fn) ~= "function" then
    error(fname .. ": bad argument #1 (function expected, got " .. type(fn) .. ")", 2)
  end
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then
    error(fname .. ": bad argument #2 (options table expected, got " .. type(opts) .. ")", 2)
  end
  local at = opts.cancel_at or 0
  if math.type(at) ~= "integer" or at < 0 then
    error(fname .. ": cancel_at must be an integer >= 0, got " .. tostring(opts.cancel_at), 2)
  end
  local mode = opts.cancel or "waiter"
  if mode ~= "waiter" and mode ~= "root" then
    error(fname .. ": cancel must be \"waiter\" or \"root\", got " .. tostring(mode), 2)
  end
  local when = opts.cancel_when or "waiting"
  if when ~= "waiting" and when ~= "woken" then
    error(fname .. ": cancel_when must be \"waiting\" or \"woken\", got " .. tostring(when), 2)
  end
  local t = core.spawn(fn)
  core.testing_inject(t, at, mode, when == "woken")
  local _ <close> = setmetatable({}, { __close = function() core.testing_inject() end })
  local f = core.future()
  t:add_done_callback(function() f:set_result(true) end)
  f:await()
  return t, core.testing_inject_count()
end

-- testing.track([task]): task (default: the current one) and what it
-- spawns from now on join the tree that testing.checkpoints counts (for a
-- task the loop spawned, such as a server's handler); no effect when no
-- testing.checkpoints is under way.
function testing.track(task)
  if task == nil then task = core.current_task() end
  if task == nil then
    error("corio.testing.track: not inside a task", 2)
  end
  if getmetatable(task) ~= core.Task then
    error("corio.testing.track: bad argument #1 (task expected, got " .. type(task) .. ")", 2)
  end
  core.testing_inject_track(task)
end

-- testing.it(name, fn, opts): busted's it, with the body run under
-- testing.run so that it may wait directly.
function testing.it(name, fn, opts)
  local it = rawget(_G, "it")
  if it == nil then
    local ok, busted = pcall(require, "busted")
    it = ok and type(busted) == "table" and busted.it or nil
  end
  if it == nil then error("corio.testing.it: busted's it is not available", 2) end
  return it(name, testing.async(fn, opts))
end

return testing
