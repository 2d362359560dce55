-- Shared by every spec: run a main function under corio.run and check that
-- nothing outlives it (no open loop, no live task, no open handle, no new fd).
local corio = require "corio"
-- busted's assert (a required module sees the plain Lua one under that name)
local luassert = require "luassert"

local helper = {}

-- the open fds of this process, {[fd] = what it points at}, read here
-- (a child such as `ls /proc/self/fd` would see only the inheritable ones)
local function open_fds()
  return corio.core.testing_fds() or {}
end

local function assert_clean(fds_before)
  collectgarbage()
  collectgarbage()
  local s = corio.core.stats()
  assert(s.loops == 0, "a loop is still open: " .. s.loops)
  assert(s.tasks == 0, "tasks still alive after run: " .. s.tasks)
  assert(s.handles == 0, "handles still open after run: " .. s.handles)
  local left = {}
  for fd, target in pairs(open_fds()) do
    if fds_before[fd] ~= target then left[#left + 1] = ("%d (%s)"):format(fd, target) end
  end
  table.sort(left)
  assert(#left == 0, "file descriptors leaked: " .. table.concat(left, ", "))
end

-- helper.run(main, ...) -> the results of corio.run(main, ...), after checking
-- that the run left nothing behind. Errors from main propagate unchanged.
function helper.run(main, ...)
  local fds = open_fds()
  local res = table.pack(pcall(corio.run, main, ...))
  assert_clean(fds)
  if not res[1] then error(res[2], 0) end
  return table.unpack(res, 2, res.n)
end

-- helper.run_error(main, ...) -> the error corio.run raised (fails if it did not).
function helper.run_error(main, ...)
  local fds = open_fds()
  local ok, err = pcall(corio.run, main, ...)
  assert_clean(fds)
  assert(not ok, "expected corio.run to raise, but it returned")
  return err
end

-- helper.capture_errors() -> list that receives every error passed to the
-- unhandled-error handler until helper.restore_errors() is called.
function helper.capture_errors()
  local seen = {}
  corio.set_error_handler(function(err, tb, task)
    seen[#seen + 1] = { err = err, traceback = tb, task = task }
  end)
  return seen
end

function helper.restore_errors()
  corio.set_error_handler(nil)  -- nil restores the default handler
end

-- checksum(s [, sum]) -> the running byte sum of s, mod 2^32 (pass the last
-- sum to go on over the next piece)
function helper.checksum(s, sum)
  sum = sum or 0
  for i = 1, #s, 4096 do
    local b = { s:byte(i, math.min(i + 4095, #s)) }
    for j = 1, #b do sum = sum + b[j] end
  end
  return sum % 4294967296
end

-- For the specs of tasks, scopes and primitives -------------------------------

-- settle() lets every spawned task run until it waits (each sleep(0) runs
-- every ready task once)
function helper.settle()
  for _ = 1, 3 do corio.sleep(0) end
end

-- cancelled_await(t) asserts that awaiting task t raises a cancellation
function helper.cancelled_await(t)
  local ok, err = pcall(t.await, t)
  luassert.is_false(ok)
  luassert.is_true(corio.is_cancelled(err))
end

-- on_close(fn) -> a to-be-closed value that calls fn(err) when it is closed
function helper.on_close(fn)
  return setmetatable({}, { __close = function(_, err) fn(err) end })
end

-- err_value(name) -> a table error value, compared by identity
function helper.err_value(name)
  return setmetatable({ name = name }, { __tostring = function(self) return "E(" .. self.name .. ")" end })
end

-- contains(list, v) -> whether v is in list (by rawequal)
function helper.contains(list, v)
  for _, x in ipairs(list) do
    if rawequal(x, v) then return true end
  end
  return false
end

-- only_me_alive([is_current]) asserts that one task is alive; given
-- is_current, also that it is the current task
function helper.only_me_alive(is_current)
  local all = corio.all_tasks()
  luassert.equals(1, #all, "tasks still alive: " .. #all)
  if is_current then luassert.equals(corio.current_task(), all[1]) end
end

-- wall() -> wall-clock seconds, independent of corio
function helper.wall()
  local p = assert(io.popen("date +%s.%N"))
  local s = p:read("l")
  p:close()
  return tonumber(s)
end

-- For the specs that run the corio command in a shell ------------------------

local function repo_root()
  local src = debug.getinfo(1, "S").source:match("^@(.*)$") or ""
  return src:match("^(.*)/spec/[^/]*$") or "."
end

-- the command under test: $CORIO_BIN (make test, make test-asan), else the default build
helper.CORIO = os.getenv("CORIO_BIN") or (repo_root() .. "/build/bin/corio")

function helper.exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

-- quote(s) -> s as one word for sh
function helper.quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function write_file(path, content)
  local f = assert(io.open(path, "wb"))
  f:write(content)
  f:close()
  return path
end

-- write_tmp(content) -> the path of a new temporary file holding content
-- (the caller removes it)
function helper.write_tmp(content)
  return write_file(os.tmpname(), content)
end

-- tmpfiles() -> list, name, file, cleanup: a spec's own temporary files.
-- name() is a new path in list, file(content) a new one holding content;
-- cleanup() removes every path in list (for after_each)
function helper.tmpfiles()
  local list = {}
  local function name()
    local path = os.tmpname()
    list[#list + 1] = path
    return path
  end
  local function file(content)
    return write_file(name(), content)
  end
  local function cleanup()
    for i = #list, 1, -1 do
      os.remove(list[i])
      list[i] = nil
    end
  end
  return list, name, file, cleanup
end

-- slurp(path) -> the whole content of a file
function helper.slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- shell(file) -> sh: sh(cmd, source) runs `sh -c cmd` under timeout and
-- returns its stdout (binary-safe) and exit status. In cmd, CORIO is the
-- command under test and SCRIPT the path of a file(source) (file: from
-- tmpfiles) holding the script.
function helper.shell(file)
  return function(cmd, source)
    local script = file(source)
    cmd = cmd:gsub("CORIO", (helper.quote(helper.CORIO):gsub("%%", "%%%%"))):gsub("SCRIPT", script)
    local p = assert(io.popen("timeout 60 sh -c " .. helper.quote(cmd), "r"))
    local out = p:read("a")
    local _, _, code = p:close()
    return out, code
  end
end

-- socketpair_runner(file, input) -> the command prefix of a python3 script
-- (made with file, from tmpfiles) that runs the rest of its command line
-- with stdout, and with input also stdin, on one end of a socketpair; it
-- sends input (then the end) from the other, and prints "status S
-- nonblock N" (the exit status; whether the shared description was left
-- non-blocking), then what came back. nil when there is no python3.
function helper.socketpair_runner(file, input)
  if os.execute("python3 -c pass >/dev/null 2>&1") ~= true then return nil end
  local py = file([[
import fcntl, os, socket, subprocess, sys
a, b = socket.socketpair()
data_in = sys.argv[1].encode()
if data_in:
    p = subprocess.Popen(sys.argv[2:], stdin=b, stdout=b)
    a.sendall(data_in)
    a.shutdown(socket.SHUT_WR)
else:
    p = subprocess.Popen(sys.argv[2:], stdout=b)
p.wait()
nonblock = fcntl.fcntl(b.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK
b.close()
data = b""
while True:
    chunk = a.recv(65536)
    if not chunk:
        break
    data += chunk
sys.stdout.write("status %d nonblock %d\n%s" % (p.returncode, nonblock, data.decode()))
]])
  return "python3 " .. py .. " " .. helper.quote(input or "")
end

-- For the TLS specs ------------------------------------------------------------

-- tls_certs() -> a table of PEM file paths made with openssl at test time, in
-- a temporary directory (dir): ca (the test CA), server/server_key (for
-- localhost and 127.0.0.1), other/other_key (for other.test), client/
-- client_key (a client certificate), expired/expired_key (localhost, past
-- its validity), rogue/rogue_key (localhost, signed by an unknown CA).
-- nil when there is no openssl command. Made once per process;
-- tls_cleanup() removes them.
local certs
function helper.tls_certs()
  if certs then return certs end
  local p = io.popen("mktemp -d")
  local dir = p:read("l")
  p:close()
  local script = [[
set -e
cd "$1"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ca() { key "$1.key"; openssl req -x509 -new -key "$1.key" -out "$1.pem" -days 30 -subj "/CN=$2" 2>/dev/null; }
cert() {  # name CN SAN CA days
  key "$1_key.pem"
  openssl req -new -key "$1_key.pem" -out "$1.csr" -subj "/O=corio test/CN=$2" 2>/dev/null
  printf 'subjectAltName=%s\n' "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$4.pem" -CAkey "$4.key" -CAcreateserial \
    -out "$1.pem" -days "$5" -extfile "$1.ext" 2>/dev/null
}
ca ca "corio test CA"
ca rogueca "unknown CA"
cert server localhost "DNS:localhost,IP:127.0.0.1" ca 30
cert other other.test "DNS:other.test" ca 30
cert client "corio client" "DNS:client.test" ca 30
cert expired localhost "DNS:localhost,IP:127.0.0.1" ca -1
cert rogue localhost "DNS:localhost,IP:127.0.0.1" rogueca 30
]]
  local f = io.open(dir .. "/make.sh", "w")
  f:write(script)
  f:close()
  if os.execute("command -v openssl >/dev/null && sh " .. dir .. "/make.sh " .. dir) ~= true then
    os.execute("rm -rf " .. helper.quote(dir))
    return nil
  end
  certs = { dir = dir, ca = dir .. "/ca.pem" }
  for _, n in ipairs { "server", "other", "client", "expired", "rogue" } do
    certs[n] = dir .. "/" .. n .. ".pem"
    certs[n .. "_key"] = dir .. "/" .. n .. "_key.pem"
  end
  return certs
end

function helper.tls_cleanup()
  if certs then os.execute("rm -rf " .. helper.quote(certs.dir)) end
  certs = nil
end

-- in_dir(fn): fn(dir) in a task (helper.run), dir a fresh directory made by
-- corio.fs.mkdtemp and removed afterwards, whatever happens
function helper.in_dir(fn)
  local dir
  local r = table.pack(pcall(helper.run, function()
    dir = assert(corio.fs.mkdtemp("/tmp/corio-fs-XXXXXX"))
    return fn(dir)
  end))
  if dir then os.execute("rm -rf " .. helper.quote(dir)) end
  if not r[1] then error(r[2], 0) end
  return table.unpack(r, 2, r.n)
end

-- For the specs that talk to a real redis-server -----------------------------

-- free_port() -> a loopback TCP port nobody listens on (for servers such as
-- redis-server that cannot take port 0): bound with port 0, then released
function helper.free_port()
  return corio.run(function()
    local s = assert(corio.serve("127.0.0.1", 0, function() end))
    local _, port = s:address()
    s:close()
    return port
  end)
end

-- redis_server() -> port, stop: a redis-server of its own on a free port in
-- a temporary directory (nothing saved); stop() shuts it down and removes
-- the directory. nil and a reason when redis-server is not installed.
function helper.redis_server()
  if os.execute("command -v redis-server >/dev/null && command -v redis-cli >/dev/null") ~= true then
    return nil, "redis-server or redis-cli is not installed"
  end
  local p = assert(io.popen("mktemp -d"))
  local dir = p:read("l")
  p:close()
  for _ = 1, 5 do
    local port = helper.free_port()
    os.execute(("redis-server --port %d --bind 127.0.0.1 --dir %s --save '' --appendonly no --hz 100 " ..
      "--daemonize yes --pidfile %s/redis.pid --logfile %s/redis.log"):format(port, dir, dir, dir))
    for _ = 1, 100 do
      local q = io.popen(("redis-cli -p %d ping 2>/dev/null"):format(port))
      local answer = q:read("a")
      q:close()
      if answer:find("PONG", 1, true) then
        local function stop()
          os.execute(("redis-cli -p %d shutdown nosave >/dev/null 2>&1; " ..
            "pid=$(cat %s/redis.pid 2>/dev/null); i=0; " ..
            "while [ -n \"$pid\" ] && kill -0 \"$pid\" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done; " ..
            "[ -n \"$pid\" ] && kill -9 \"$pid\" 2>/dev/null; rm -rf %s"):format(port, dir, dir))
        end
        return port, stop
      end
      os.execute("sleep 0.1")
    end
  end
  os.execute("rm -rf " .. dir)
  error("redis-server did not start")
end

-- lua_redis() -> Debian's lua-redis client module (pure Lua, installed for
-- Lua 5.1-5.3 only: its directory goes on package.path), or nil
function helper.lua_redis()
  local path = package.searchpath("redis", "/usr/share/lua/5.4/?.lua;/usr/share/lua/5.3/?.lua;/usr/share/lua/5.1/?.lua")
  if not path then return nil end
  return dofile(path)
end

return helper
