-- The documented-names check: every public name of corio appears in docs/*.md.
--
--   build/bin/corio spec/docs_check.lua
--
-- Walks the module's exported names recursively (corio.*, corio.fs.*,
-- corio.tls.*, corio.socket.*, ...) and the methods of every public type
-- (made here, then read through its metatable), and looks each one up in the
-- documentation as a name in backticks: `corio.fs.read_file` (a span such as
-- `corio.fs.read_file(path [, opts])` counts), or `x:method` for a method
-- (`stream:read_line`, `s:read_line`, `file:read_line`...). Names starting
-- with `_` and metamethods are skipped. Prints every undocumented name and
-- exits with status 1 if there is any.
local corio = require "corio"

-- The documentation: every backticked span of docs/*.md.
local spans = {}
do
  local p = assert(io.popen("ls docs/*.md"))
  for file in p:lines() do
    local text = assert(io.open(file)):read("a")
    text = text:gsub("```.-```", function(block) return "`" .. block:gsub("`", "") .. "`" end)
    for span in text:gmatch("`([^`]+)`") do spans[#spans + 1] = span end
  end
  p:close()
end
local all = table.concat(spans, "\n")

local function has_name(name)  -- `corio.fs.read_file` as a whole name in a span
  local pat = "%f[%w_.]" .. name:gsub("%p", "%%%0") .. "%f[^%w_]"
  return all:find(pat) ~= nil
end

local function has_method(method, bare)  -- `x:method` in a span
  local m = method:gsub("%p", "%%%0")
  if all:find("[%w_%]%)]:" .. m .. "%f[^%w_]") then return true end
  -- docs/socket.md lists LuaSocket's methods bare, in tables: `settimeout(secs)`
  return bare and (all:find("%f[^\n]" .. m .. "%f[^%w_]") or
    all:find("\n[%w_]+%(?%)?, " .. m .. "%f[^%w_]")) ~= nil
end

local missing = {}
local checked = 0

-- Modules: corio's C half (corio.core) and corio.coroutine's copy of Lua's
-- coroutine library are documented as a whole, not name by name.
local whole = { ["corio.core"] = true, ["corio.coroutine"] = true }
local seen = {}

local function walk(prefix, t)
  if seen[t] then return end
  seen[t] = true
  local keys = {}
  for k in pairs(t) do
    if type(k) == "string" and k:sub(1, 1) ~= "_" then keys[#keys + 1] = k end
  end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local name = prefix .. "." .. k
    checked = checked + 1
    -- a module's own page may say `fs.access` for `corio.fs.access`
    local short = prefix ~= "corio" and name:gsub("^corio%.", "")
    if not (has_name(name) or short and has_name(short)) then
      missing[#missing + 1] = name
    end
    if type(t[k]) == "table" and not whole[name] and not k:match("^%u") then
      walk(name, t[k])
    end
  end
end
walk("corio", corio)

-- Types: a live object of each, its methods read from its metatable.
local function methods_of(obj)
  local found = {}
  local function add(t)
    if type(t) ~= "table" then return end
    for k, v in pairs(t) do
      if type(k) == "string" and type(v) == "function" and k:sub(1, 1) ~= "_" then
        found[k] = true
      end
    end
  end
  local mt = getmetatable(obj)
  if type(obj) == "table" then add(obj) end
  if type(mt) == "table" then
    add(mt)
    add(rawget(mt, "__index"))
    local parent = type(mt.__index) == "table" and getmetatable(mt.__index)
    if parent then add(parent.__index) end
  end
  return found
end

local types = {}
local function type_of(label, obj)
  if obj ~= nil then types[#types + 1] = { label, obj } end
end

local function collect()
  local srv = assert(corio.serve("127.0.0.1", 0, function(s) s:close() end))
  local _, port = srv:address()
  local stream = assert(corio.connect("127.0.0.1", port))
  local udp = assert(corio.udp())
  local tmp = os.tmpname()
  local file = assert(corio.fs.open(tmp, "w"))
  local watcher = corio.fs.watch(tmp)
  local proc = assert(corio.exec({ "true" }))
  local signal = corio.signal("SIGUSR2")
  local send, recv = corio.channel()
  local scope <close> = corio.timeout(100)
  local group <close> = corio.task_group()
  local handle = corio.loop():call_later(100, function() end)
  type_of("Task", corio.current_task())
  type_of("Future", corio.future())
  type_of("Loop", corio.loop())
  type_of("Handle", handle)
  type_of("Lock", corio.lock())
  type_of("Event", corio.event())
  type_of("Condition", corio.condition())
  type_of("Semaphore", corio.semaphore())
  type_of("BoundedSemaphore", corio.bounded_semaphore())
  type_of("Barrier", corio.barrier(2))
  type_of("Queue", corio.queue())
  type_of("LifoQueue", corio.lifo_queue())
  type_of("PriorityQueue", corio.priority_queue())
  type_of("SendChannel", send)
  type_of("ReceiveChannel", recv)
  type_of("Scope", scope)
  type_of("TaskGroup", group)
  type_of("Server", srv)
  type_of("Stream", stream)
  type_of("UDP socket", udp)
  type_of("File", file)
  type_of("Watcher", watcher)
  type_of("Process", proc)
  type_of("Signal receiver", signal)
  if corio.tls.available() then type_of("TLS context", corio.tls.context({})) end
  type_of("socket tcp", corio.socket.tcp())
  type_of("socket udp", corio.socket.udp())

  for _, pair in ipairs(types) do
    local label, obj = pair[1], pair[2]
    local names = {}
    for m in pairs(methods_of(obj)) do names[#names + 1] = m end
    table.sort(names)
    for _, m in ipairs(names) do
      checked = checked + 1
      if not has_method(m, label:find("^socket ")) then missing[#missing + 1] = label .. ":" .. m end
    end
  end

  handle:cancel()
  proc:wait()
  signal:close()
  if watcher then watcher:close() end
  file:close()
  os.remove(tmp)
  stream:close()
  udp:close()
  srv:close()
end
collect()

-- docs/guide.md shows examples/guide/*.lua verbatim: a block that starts
-- with "-- examples/guide/NAME.lua" must be that file, as make test runs it.
do
  local guide = assert(io.open("docs/guide.md")):read("a")
  for block in guide:gmatch("```lua\n(.-)```") do
    local file = block:match("^%-%- (examples/guide/[%w_]+%.lua)")
    if file then
      local f = io.open(file)
      local text = f and f:read("a")
      if f then f:close() end
      if text ~= block then
        missing[#missing + 1] = "docs/guide.md differs from " .. file
      end
    end
  end
end

if #missing > 0 then
  io.stderr:write("docs_check: ", #missing, " problem(s), ", checked,
    " public names checked; not in docs/*.md, or out of date:\n")
  for _, name in ipairs(missing) do io.stderr:write("  ", name, "\n") end
  os.exit(1)
end
print(("docs_check: all %d public names are documented"):format(checked))
