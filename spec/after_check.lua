-- The after-spec check (docs/testing.md, "The after-spec check"). busted
-- loads this file before any spec (.busted: helper = "spec/after_check.lua"),
-- so every test of every spec file goes through it without asking:
--
--   * before each test (ahead of the spec's own before_each), it records a
--     baseline: the open file descriptors of this process (/proc/self/fd,
--     read in-process), the size of the Lua registry (with corio's own
--     registry-held tables) and how many loops failed to close;
--   * after each test (behind the spec's own after_each), it checks that no
--     loop is open, no task is alive, no corio handle is open, no loop
--     failed to close (uv_loop_close), the scheduler holds nothing of a run,
--     and the fd count and the registry size are back at the baseline.
--
-- The same check runs around each spec file as a whole, for what a
-- describe's setup opens and its teardown should close.
--
-- A failure is an error of the test, naming it and what was left:
--
--   after-spec check: tcp_spec.lua: tcp echo server serves two clients
--   left behind:
--     fd 9 (socket:[123456]) opened and not closed
--     registry: corio.side.callbacks grew by 2 (0 -> 2)
local busted = require "busted"
local core = require "corio.core"

local check = {}

-- fds: {[fd] = what /proc/self/fd/N points at}; {} where there is no /proc
local function fds()
  return core.testing_fds() or {}
end

local function count(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

-- entries of t that are not named slots: a string key names a slot made
-- once (a metatable, a module's state, a hook), while entries under other
-- keys (luaL_ref's integers, objects, addresses, fds) come and go with use
local function count_dynamic(t)
  local n = 0
  for k in pairs(t) do
    if type(k) ~= "string" then n = n + 1 end
  end
  return n
end

local function is_metatable(v)
  return type(v) == "table" and rawget(v, "__name") ~= nil
end

-- Caches that keep what a spec still holds, left out of the count:
-- corio.workers[1] maps a function given to corio.to_thread to its copy
-- for the worker threads (weak keys: an entry goes with its function, and
-- a spec file's functions live as long as busted keeps the file's tests).
local caches = { ["corio.workers[1]"] = true }

-- registry() -> total, parts: the entries of the Lua registry and
-- of the tables corio keeps there (the side tables one level deeper, and
-- the tables hung on corio's registry userdata), counted as count_dynamic
-- does; parts names each count.
-- corio.State's own values (the scheduler thread, whose pool of idle
-- coroutines is a bounded cache, and the module table) are left out.
local function registry()
  local reg = debug.getregistry()
  local parts = { registry = count_dynamic(reg) }
  local function add(name, t)
    if caches[name] then return end
    parts[name] = count_dynamic(t)
  end
  for k, v in pairs(reg) do
    if type(k) == "string" and k:match("^corio%.") and k ~= "corio.State" then
      if type(v) == "table" and not is_metatable(v) then
        add(k, v)
        for k2, v2 in pairs(v) do
          if type(k2) == "string" and type(v2) == "table" and not is_metatable(v2) then
            add(k .. "." .. k2, v2)
          end
        end
      elseif type(v) == "userdata" then
        for i = 1, 8 do
          local uv, ok = debug.getuservalue(v, i)
          if not ok then break end
          if type(uv) == "table" and not is_metatable(uv) then add(("%s[%d]"):format(k, i), uv) end
        end
      end
    end
  end
  local total = 0
  for _, n in pairs(parts) do total = total + n end
  return total, parts
end

-- snapshot() -> what the check compares, after a full collection (so
-- weak tables have let go of what nothing else holds)
function check.snapshot()
  collectgarbage()
  collectgarbage()
  local intro = core._introspect()
  local total, parts = registry()
  return { fds = fds(), registry = total, parts = parts, intro = intro }
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b)
    if type(a) == type(b) then return a < b end
    return type(a) == "number"
  end)
  return keys
end

-- compare(before, after) -> a list of lines, one per thing left behind
function check.compare(before, after)
  local lines = {}
  local intro = after.intro
  if intro.loop then
    lines[#lines + 1] = "a loop is still open (a run did not end)"
  end
  if intro.tasks > 0 then
    lines[#lines + 1] = ("%d task%s still alive"):format(intro.tasks, intro.tasks > 1 and "s" or "")
  end
  for _, kind in ipairs(sorted_keys(intro.handles)) do
    lines[#lines + 1] = ("%d %s handle%s open on the loop"):format(intro.handles[kind], kind,
      intro.handles[kind] > 1 and "s" or "")
  end
  if intro.close_failed > before.intro.close_failed then
    lines[#lines + 1] = ("uv_loop_close failed %d time%s (a handle or request outlived a run)")
      :format(intro.close_failed - before.intro.close_failed,
        intro.close_failed - before.intro.close_failed > 1 and "s" or "")
  end
  if #intro.held > 0 then
    lines[#lines + 1] = "the scheduler still holds a run's " .. table.concat(intro.held, ", ")
  end
  local nbefore, nafter = count(before.fds), count(after.fds)
  for _, fd in ipairs(sorted_keys(after.fds)) do
    if before.fds[fd] ~= after.fds[fd] then
      lines[#lines + 1] = ("fd %d (%s) opened and not closed"):format(fd, after.fds[fd])
    end
  end
  if nafter > nbefore then
    lines[#lines + 1] = ("%d fds open, %d before"):format(nafter, nbefore)
  end
  if after.registry > before.registry then
    local grew = {}
    for _, name in ipairs(sorted_keys(after.parts)) do
      local b, a = before.parts[name] or 0, after.parts[name]
      if a > b then grew[#grew + 1] = ("%s grew by %d (%d -> %d)"):format(name, a - b, b, a) end
    end
    lines[#lines + 1] = ("registry: %d entries, %d before: %s"):format(after.registry, before.registry,
      table.concat(grew, "; "))
  end
  return lines
end

-- check.report(name, before) raises naming the test and what it left,
-- if it left anything
function check.report(name, before)
  local lines = check.compare(before, check.snapshot())
  if #lines > 0 then
    error(("after-spec check: %s\nleft behind:\n  %s"):format(name, table.concat(lines, "\n  ")), 0)
  end
end

-- the name busted shows for an element: its file, then its describe and it names
local function full_name(element)
  local names = {}
  local e = element
  while e do
    if e.descriptor == "file" then
      table.insert(names, 1, (e.name:match("[^/]+$") or e.name) .. ":")
    elseif e.name then
      table.insert(names, 1, e.name)
    end
    e = busted.parent(e)
  end
  return table.concat(names, " ")
end

-- Warm up what lives as long as the process, so that the first spec to
-- use it is not charged with it: corio's Lua layer sets its hooks and
-- metatables on first load, and libuv opens the signal machinery's pipe on
-- first use, Lua its buffers' metatable (_UBOX*) on the first long
-- string built in C. The modules loaded here are dropped again, so that each spec
-- file still loads its own copy (busted insulates files).
do
  assert(#string.rep("x", 1 << 16) == 1 << 16)
  local loaded = {}
  for k in pairs(package.loaded) do loaded[k] = true end
  local corio = require "corio"
  corio.run(function()
    local sig = corio.signal("SIGUSR2")
    sig:close()
  end)
  for k in pairs(package.loaded) do
    if not loaded[k] then package.loaded[k] = nil end
  end
end

local test_base, test_name
local file_base = {}

-- root before_each: runs before every test's own before_each
busted.before_each(function()
  test_name = nil
  test_base = check.snapshot()
end)

busted.subscribe({ "test", "start" }, function(element)
  test_name = full_name(element)
  return nil, true
end)

-- root after_each: runs after every test's own after_each
busted.after_each(function()
  local base = test_base
  test_base = nil
  if base then check.report(test_name or "a test", base) end
end)

busted.subscribe({ "file", "start" }, function(file)
  file_base[file] = check.snapshot()
  return nil, true
end)

busted.subscribe({ "file", "end" }, function(file)
  local base = file_base[file]
  file_base[file] = nil
  if base then check.report((file.name or "a spec file") .. " (setup and teardown)", base) end
  return nil, true
end)

-- specs reach this instance with require "after_check" (busted loaded it
-- with dofile, and keeps what is loaded before the first spec file)
package.loaded["after_check"] = check
return check
