-- Scenarios for the libuv fault sweep (spec/fault/sweep.lua), run by the
-- CORIO_FAULT build's command: corio spec/fault/scenarios.lua NAME DIR [CERTDIR]
-- DIR is a fresh directory the scenario may use; CERTDIR holds server.pem,
-- server_key.pem and ca.pem for the TLS scenario.
--
-- Each scenario does ordinary work and checks every failure it meets: an
-- operational failure must be `nil, "CODE: message", "CODE"` (or
-- `nil, "closed"` on a stream or file another failure has closed, or
-- `nil, "eof", partial` for an early end). The codes seen are printed on the
-- last line, `ok CODE CODE ...`, once corio.run has returned and the fds open
-- are the ones open before it. Anything else (a raised error, a failure of
-- another form, an fd left open) prints `FAIL ...` and exits 1.
local corio = require "corio"
local fs = corio.fs

local name, dir, certdir = arg[1], arg[2], arg[3]
local seen = {}

local function fail(fmt, ...)
  io.stdout:write("FAIL ", fmt:format(...), "\n")
  io.stdout:flush()
  os.exit(1)
end

-- check(what, ok, msg, code) -> ok, msg, code: records a failure's code after
-- checking its form
local trace = os.getenv("FAULT_TRACE") == "1"
local function check(what, ok, msg, code)
  if trace then io.stderr:write(what, ": ", tostring(ok), " ", tostring(msg), " ", tostring(code), "\n") end
  if ok ~= nil or msg == nil then return ok, msg, code end
  if msg == "closed" and code == nil then
    seen[#seen + 1] = "closed"
  elseif msg == "eof" and type(code) == "string" then
    seen[#seen + 1] = "eof"
  elseif code == "ETLS" and type(msg) == "string" and msg:sub(1, 5) == "TLS: " then
    seen[#seen + 1] = code  -- TLS's own failures: nil, "TLS: reason", "ETLS"
  elseif type(msg) ~= "string" or type(code) ~= "string" or msg:sub(1, #code + 2) ~= code .. ": " then
    fail("%s: a failure not in the nil, msg, code form: %s, %s", what, tostring(msg), tostring(code))
  else
    seen[#seen + 1] = code
  end
  return ok, msg, code
end

local function handler_errors()
  corio.set_error_handler(function(err)
    fail("a task raised: %s", tostring(err))
  end)
end

-- an echo handler: lines back until the end or a failure
local function echo(s)
  while true do
    local line = check("server read_line", s:read_line())
    if not line then break end
    if not check("server write", s:write(line, "\n")) then break end
  end
  check("server close", s:close())
end

-- a client exchange over stream s: three lines there and back
local function talk(s, tag)
  for i = 1, 3 do
    if not check(tag .. " write", s:write("line " .. i .. ("x"):rep(i * 1000), "\n")) then break end
    local back = check(tag .. " read_line", s:read_line())
    if not back then break end
    if back ~= "line " .. i .. ("x"):rep(i * 1000) then fail("%s: wrong echo", tag) end
  end
  check(tag .. " close", s:close())
end

-- a half-closed exchange over stream s: two lines there, the write side
-- shut, the echo read to the end
local function half(s, tag)
  local sent = "one\n" .. ("h"):rep(3000) .. "\n"
  if check(tag .. " write", s:write(sent)) and check(tag .. " shutdown", s:shutdown()) then
    local back = check(tag .. " read_all", s:read_all())
    if back and back ~= sent and back ~= sent:sub(1, #back) then fail("%s: wrong echo", tag) end
  end
  check(tag .. " close", s:close())
end

local scenarios = {}

function scenarios.tcp()
  local srv = check("serve", corio.serve("127.0.0.1", 0, echo))
  if not srv then return end
  local _, port = srv:address()
  local s = check("connect", corio.connect("127.0.0.1", port))
  if s then talk(s, "client") end
  srv:close()
  srv:wait_closed()
end

-- two clients at once, each with a write the kernel queues, then a late one:
-- a server whose accept failed with EMFILE closes its listener for 100 ms
-- (its queue is reset, so the first two may see ECONNRESET or EPIPE), then
-- listens again, and the late client is refused until then, at most 5 s
function scenarios.tcp_many()
  local srv = check("serve", corio.serve("127.0.0.1", 0, function(s)
    local data = check("server read_all", s:read_all())
    if data then check("server write", s:write(#data, "\n")) end
    check("server close", s:close())
  end))
  if not srv then return end
  local _, port = srv:address()
  local function client(s, size)
    if check("write", s:write(("y"):rep(size))) and check("shutdown", s:shutdown()) then
      local n = check("read_line", s:read_line())
      if n and n ~= tostring(size) then fail("tcp_many: %s echoed for %d bytes", n, size) end
      if n then check("read end", s:read()) end
    end
    check("close", s:close())
  end
  corio.task_group(function(g)
    for _ = 1, 2 do
      g:spawn(function()
        local s = check("connect", corio.connect("127.0.0.1", port))
        if s then client(s, 4 << 20) end
      end)
    end
  end)
  local s, msg, code
  for _ = 1, 100 do
    s, msg, code = corio.connect("127.0.0.1", port)
    if code ~= "ECONNREFUSED" then break end
    corio.sleep(0.05)
  end
  if code == "ECONNREFUSED" then fail("tcp_many: the server did not listen again") end
  s = check("late connect", s, msg, code)
  if s then client(s, 1000) end
  srv:close()
  srv:wait_closed()
end

function scenarios.unix()
  local path = dir .. "/sock"
  local srv = check("serve_unix", corio.serve_unix(path, echo))
  if not srv then return end
  local s = check("connect_unix", corio.connect_unix(path))
  if s then talk(s, "unix client") end
  srv:close()
  srv:wait_closed()
end

function scenarios.dns()
  local list = check("getaddrinfo", corio.getaddrinfo("localhost", 80))
  if list and #list == 0 then fail("getaddrinfo: an empty list") end
  local srv = check("serve", corio.serve("127.0.0.1", 0, echo))
  if not srv then return end
  local _, port = srv:address()
  local s = check("connect localhost", corio.connect("localhost", port, { happy_eyeballs_delay = false }))
  if s then talk(s, "client") end
  srv:close()
  srv:wait_closed()
end

function scenarios.fs_whole()
  local p = dir .. "/whole.txt"
  if check("write_file", fs.write_file(p, ("a"):rep(100000))) then
    local data = check("read_file", fs.read_file(p))
    if data and #data ~= 100000 then fail("read_file: %d bytes", #data) end
  end
  check("append_file", fs.append_file(p, "tail\n"))
  check("write_file atomic", fs.write_file(p, "new\n", { atomic = true }))
  check("mkdir", fs.mkdir(dir .. "/a/b/c", { parents = true }))
end

function scenarios.fs_file()
  local p = dir .. "/lines.txt"
  local f = check("open w", fs.open(p, "w"))
  if f then
    for i = 1, 3 do
      if not check("write", f:write("line ", i, "\n")) then break end
    end
    check("sync", f:sync())
    check("close w", f:close())
  end
  f = check("open r", fs.open(p, "r"))
  if f then
    while true do
      local line = check("read_line", f:read_line())
      if not line then break end
    end
    check("stat", f:stat())
    check("seek end", f:seek("end"))
    check("close r", f:close())
  end
  check("stat path", fs.stat(p))
  local it = check("scandir", fs.scandir(dir))
  if it then for _ in it do end end
  local tmp = check("mkdtemp", fs.mkdtemp(dir .. "/tmpXXXXXX"))
  if tmp then check("rmdir", fs.rmdir(tmp)) end
  if check("rename", fs.rename(p, p .. ".2")) then check("unlink", fs.unlink(p .. ".2")) end
end

function scenarios.exec()
  local p = check("exec", corio.exec({ "cat" }, { stdin = "pipe", stdout = "pipe" }))
  if not p then return end
  local reader = corio.spawn(function()
    local all = check("stdout read_all", p.stdout:read_all())
    return all
  end)
  if check("stdin write", p.stdin:write(("z"):rep(1 << 20), "\n")) then
    check("stdin close", p.stdin:close())
  else
    p.stdin:close()
  end
  reader:await()
  check("wait", p:wait())
  p:close()
end

function scenarios.run_process()
  local code, out = check("run_process", corio.run_process({ "tr", "a-z", "A-Z" }, { input = "hello\n" }))
  -- a failed write of the input is the child's business (docs/process.md):
  -- the child reads an early end and says less
  local input_failed = (os.getenv("CORIO_FAULT") or ""):match("^write:")
  if code == 0 and out ~= "HELLO\n" and not input_failed then fail("run_process: %q", out) end
  code = check("run_process true", corio.run_process({ "true" }))
  if code ~= nil and code ~= 0 then fail("run_process true: %s", tostring(code)) end
end

function scenarios.tls()
  local srv = check("tls serve", corio.serve("127.0.0.1", 0, echo, {
    tls = { server = true, cert = certdir .. "/server.pem", key = certdir .. "/server_key.pem" },
  }))
  if not srv then return end
  local _, port = srv:address()
  local s = check("tls connect", corio.connect("127.0.0.1", port, {
    tls = { ca_file = certdir .. "/ca.pem", server_name = "localhost" },
  }))
  if s then talk(s, "tls client") end
  s = check("tls connect 2", corio.connect("127.0.0.1", port, {
    tls = { ca_file = certdir .. "/ca.pem", server_name = "localhost" },
  }))
  if s then half(s, "tls half") end
  srv:close()
  srv:wait_closed()
end

-- a server that echoes datagrams until it is closed, and clients that each
-- send three and wait for each echo a bounded time (a datagram may be lost:
-- UDP's way, and a failed receive loses one too)
function scenarios.udp()
  local srv = corio.udp()
  if not check("bind", srv:bind("127.0.0.1", 0)) then
    srv:close()
    return
  end
  local _, port = srv:address()
  local echoer = corio.spawn(function()
    while true do
      local data, host, from = check("server recv", srv:recv())
      if data then
        check("server send", srv:send(data, host, from))
      elseif data == nil and host == "closed" then
        break
      end
    end
  end)
  local function client(tag, connect, queue)
    local c = corio.udp()
    if queue then corio.core._udp_queue_sends(c, true) end  -- through uv_udp_send
    if connect and not check(tag .. " connect", c:connect("127.0.0.1", port)) then
      c:close()
      return
    end
    for i = 1, 3 do
      local msg = tag .. " " .. i .. ("d"):rep(i * 500)
      local ok
      if connect then ok = check(tag .. " send", c:send(msg))
      else ok = check(tag .. " send", c:send(msg, "127.0.0.1", port)) end
      if ok then
        corio.move_on_after(2, function()
          while true do  -- the echo of msg; a late echo of an earlier one is passed over
            local back = check(tag .. " recv", c:recv())
            if not back or back == msg then return end
            local j = tonumber(back:match("^" .. tag .. " (%d)d"))
            if not j or j >= i then fail("%s: wrong echo", tag) end
          end
        end)
      end
    end
    c:close()
  end
  corio.task_group(function(g)
    g:spawn(client, "plain", false, false)
    g:spawn(client, "queued", false, true)
    g:spawn(client, "connected", true, false)
  end)
  srv:close()
  echoer:await()
end

local fn = scenarios[name] or fail("no scenario %s", tostring(name))
local function fd_set()
  local t = corio.core.testing_fds()
  local set = {}
  for fd, what in pairs(t or {}) do set[fd] = what end
  return set
end
-- a first run opens what libuv keeps for the whole process (the fd it holds
-- in reserve for EMFILE); the fds open after it are the baseline
corio.run(function()
  local srv = check("baseline serve", corio.serve("127.0.0.1", 0, function() end))
  if srv then srv:close() end
end)
local before = fd_set()
handler_errors()
local ok, err = pcall(corio.run, fn)
if not ok then fail("raised: %s", tostring(err)) end
for fd, what in pairs(fd_set()) do
  if before[fd] == nil then fail("fd %d left open: %s", fd, what) end
end
io.stdout:write("ok ", table.concat(seen, " "), "\n")
