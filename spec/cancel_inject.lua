-- The sweep behind the cancellation-injection specs (cancel_inject*_spec.lua):
-- a scenario runs once to count its checkpoints, then once more for every
-- k, cancelled at the k-th (corio.testing.checkpoints), in each mode: the
-- task waiting there, or the scenario's own task. Every run must end, with
-- the scenario's task cancelled or the cancellation handled; every <close>
-- handler it opened must have run exactly once; its own invariants must
-- hold (sc.check); nothing may be left behind (no task, handle, fd, child
-- process, loop).
local corio = require "corio"
local testing = corio.testing

local inject = {}

local function nfds()
  collectgarbage()  -- files that earlier code dropped are closed by now
  local n = 0
  for _ in pairs(corio.core.testing_fds() or {}) do n = n + 1 end
  return n
end

local mypid
local function pid()
  if not mypid then
    local f = assert(io.open("/proc/self/stat"))
    mypid = f:read("l"):match("^(%d+)")
    f:close()
  end
  return mypid
end
inject.pid = pid

-- the child processes of this one (any state, zombies included), as
-- "pid state (name)", from /proc (no command run: under the sanitizer
-- build's LD_PRELOAD, ps can hang). libuv spawns from the loop's thread,
-- the main one here.
local function children()
  local list = {}
  local f = io.open(("/proc/%s/task/%s/children"):format(pid(), pid()))
  if not f then return list end
  local ids = f:read("a")
  f:close()
  for cpid in ids:gmatch("%d+") do
    local sf = io.open("/proc/" .. cpid .. "/stat")
    local stat = sf and sf:read("l")
    if sf then sf:close() end
    local name, state = (stat or ""):match("%((.*)%) (%S)")
    list[#list + 1] = ("%s %s (%s)"):format(cpid, state or "?", name or "?")
  end
  return list
end
inject.children = children

-- inject.closer(st, name [, fn]) -> a to-be-closed value: st.opened[name]
-- counts it, st.closed[name] counts its handler's runs; fn (which may
-- await) runs inside the handler
function inject.closer(st, name, fn)
  st.opened[name] = (st.opened[name] or 0) + 1
  return setmetatable({}, { __close = function(_, err)
    st.closed[name] = (st.closed[name] or 0) + 1
    if fn then fn(err) end
  end })
end

local function describe_run(sc, k, mode, when)
  return ("%s, cancelled at checkpoint %d of the %s, %s"):format(sc.name, k, mode, when)
end

-- one run: returns the count of checkpoints it reached
local function run_one(sc, k, mode, when, warm_up)
  local fds0 = nfds()
  local where = describe_run(sc, k, mode, when)
  local count
  local ok, err = pcall(testing.run, function()
    local st = { opened = {}, closed = {} }
    if sc.setup then sc.setup(st) end
    local t, n = testing.checkpoints(function() return sc.body(st) end,
                                     { cancel_at = k, cancel = mode, cancel_when = when })
    count = n
    assert(t:done(), "the scenario's task has not ended")
    local outcome
    if t:cancelled() then outcome = "cancelled"
    else
      local e = t:error()
      if e == nil then outcome = "ok"
      elseif corio.is_cancelled(e) then outcome = "cancelled"
      elseif sc.accept and sc.accept(e, st) then outcome = "handled"
      else
        error(("failed: %s\n%s"):format(tostring(e), tostring(t:traceback())), 0)
      end
    end
    if k == 0 then
      assert(outcome == "ok", "the run without injection did not succeed")
    end
    if sc.strict and k > 0 and n >= k and mode == "waiter" and when == "waiting" then
      -- cancelled while it waited, handed nothing: it must raise there
      assert(outcome == "cancelled", "the cancellation was lost: the task ended " .. outcome)
    end
    for name, n_open in pairs(st.opened) do
      local n_closed = st.closed[name] or 0
      assert(n_closed == n_open, ("<close> %s: opened %d, handler ran %d times")
             :format(name, n_open, n_closed))
    end
    if sc.teardown then sc.teardown(st) end
    if sc.check then sc.check(st, outcome, t) end
  end, sc.run_opts)
  if not ok then error(where .. ": " .. tostring(err), 0) end
  local s = corio.core.stats()
  assert(s.loops == 0 and s.tasks == 0 and s.handles == 0,
         ("%s: left loops %d, tasks %d, handles %d"):format(where, s.loops, s.tasks, s.handles))
  local fds = nfds()
  assert(warm_up or fds == fds0, ("%s: fds %d before, %d after"):format(where, fds0, fds))
  if sc.no_children then
    local c = children()
    assert(#c == 0, where .. ": child processes left: " .. table.concat(c, "; "))
  end
  return count
end

-- inject.sweep(sc) -> the number of checkpoints counted, the runs made. sc: name, body(st)
-- (the scenario, run as a task; st is fresh per run), and optionally
-- setup(st) and teardown(st) (in the main task, around it), check(st,
-- outcome, task), strict (the task catches nothing and spawns nothing: a
-- cancellation while it waits must end it cancelled), accept(err, st) (an error the scenario's task may end
-- with when a cancellation was handled inside it), run_opts (for
-- testing.run), modes (default both), no_children (check for none left).
function inject.sweep(sc)
  -- a first run may open what the process keeps (libuv's signal pipe...)
  run_one(sc, 0, "waiter", "waiting", true)
  local n = run_one(sc, 0, "waiter", "waiting")
  assert(n > 0, sc.name .. ": no checkpoint counted")
  for _, mode in ipairs(sc.modes or { "waiter", "root" }) do
    for _, when in ipairs { "waiting", "woken" } do
      for k = 1, n do run_one(sc, k, mode, when) end
    end
  end
  return n, 2 + n * 2 * #(sc.modes or { 1, 2 })
end

-- inject.test(sc) -> a function for busted's `it`: the sweep of sc (with
-- INJECT_VERBOSE set, its counts are printed)
function inject.test(sc)
  return function()
    local n, runs = inject.sweep(sc)
    if os.getenv("INJECT_VERBOSE") then print(("\n%s: %d checkpoints, %d runs"):format(sc.name, n, runs)) end
  end
end

return inject
