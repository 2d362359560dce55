-- The libuv fault sweep (make test-fault): lua5.4 spec/fault/sweep.lua CORIO
-- CORIO is the command of a CORIO_FAULT build (c/fault/fault.c). For each
-- scenario of spec/fault/scenarios.lua, a first run counts the libuv requests
-- of each kind and mode; then, for each error code that kind can meet and
-- each k, a run fails the k-th request. Every run must:
--   - exit 0 with the scenario's "ok" line (every failure it met was
--     `nil, "CODE: ...", "CODE"`, no task raised, no fd left open);
--   - close its loop (uv_loop_close found no handle left);
--   - show no sanitizer report (the build is meant to have ASan and UBSan);
--   - when the fault reached corio, show CODE in what the scenario saw
--     (except where corio handles it without telling Lua, listed below).
-- Environment: FAULT_ONLY="scenario[:kind[:mode[:CODE[:k]]]]" narrows the
-- sweep; FAULT_MAX_K (default 12) caps the k swept per kind and mode (spread
-- evenly over 1..n, always with 1 and n); FAULT_CODES=1 takes only the first
-- code of each kind (CI's shorter sweep); FAULT_VERBOSE=1 prints every run.
local corio_bin = assert(arg[1], "usage: lua5.4 spec/fault/sweep.lua path/to/corio")
local here = (arg[0]:match("^(.*)/[^/]*$") or ".")
local script = here .. "/scenarios.lua"

local scenarios = { "tcp", "tcp_many", "unix", "dns", "fs_whole", "fs_file", "exec",
                    "run_process", "tls", "udp" }
local codes = {
  connect = { "ECONNRESET", "EMFILE", "EIO" },
  write = { "ECONNRESET", "EIO" },
  read = { "ECONNRESET", "EIO" },
  fs = { "EIO", "EMFILE" },
  spawn = { "EMFILE", "EIO" },
  getaddrinfo = { "EIO", "EMFILE" },
  accept = { "EMFILE", "ECONNRESET" },
  -- what the connection callback itself can get: EMFILE and ENOBUFS (corio
  -- pauses the listener for both; ECONNABORTED never comes: libuv skips it)
  ["accept/async"] = { "EMFILE", "ENOBUFS" },
  listen = { "EADDRINUSE", "EMFILE" },
  shutdown = { "ENOTCONN" },
  udp_send = { "ENOBUFS", "ENETUNREACH" },
  udp_recv = { "ECONNREFUSED", "ENOMEM" },
}
-- faults corio absorbs by design, so that Lua never sees the code (keyed by
-- kind, scenario:kind or kind/mode):
local absorbed = {
  -- a server drops a connection it could not accept (the handler never
  -- starts; the client sees its end or a reset), and a failed connection
  -- callback pauses the listener (out of descriptors or memory) or, for one
  -- connection's own failure, is passed over
  accept = true,
  -- run_process feeds its input and ignores a failed write (the child
  -- stopped reading: its business, docs/process.md)
  ["run_process:write"] = true,
  -- stream:shutdown() returns once the half-close is queued; a failure
  -- libuv reports later shows only in what the connection does next (the
  -- shutdown here still went out, so nothing does)
  ["shutdown/async"] = true,
}
-- codes that witness the fault in a scenario: a TLS server closes a
-- connection whose handshake failed without telling anyone (docs/tls.md),
-- and the client sees "TLS: unexpected eof"
local witness = { tls = "ETLS" }

local function sh(cmd)
  local ok, how, code = os.execute(cmd)
  return ok == true, how, code
end

local function quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function slurp(path)
  local f = io.open(path, "r")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

local tmp = io.popen("mktemp -d"):read("l")
local certs = tmp .. "/certs"
assert(sh(("mkdir -p %s && cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
  .. "-nodes -keyout server_key.pem -out server.pem -days 30 -subj /CN=localhost "
  .. "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null && cp server.pem ca.pem")
  :format(quote(certs), quote(certs))), "openssl could not make a test certificate")

local only = {}
for part in (os.getenv("FAULT_ONLY") or ""):gmatch("[^:]+") do only[#only + 1] = part end
local max_k = tonumber(os.getenv("FAULT_MAX_K") or "12")
local verbose = os.getenv("FAULT_VERBOSE") == "1"
local ncodes = tonumber(os.getenv("FAULT_CODES") or "99")

-- run(name, fault) -> {status, out, err, log}
local nrun = 0
local function run(name, fault)
  nrun = nrun + 1
  local work = tmp .. "/w" .. nrun
  local log = tmp .. "/log" .. nrun
  local out, err = tmp .. "/out" .. nrun, tmp .. "/err" .. nrun
  local cmd = ("mkdir %s && env %sCORIO_FAULT_LOG=%s timeout 60 %s %s %s %s %s >%s 2>%s")
    :format(quote(work), fault and ("CORIO_FAULT=" .. fault .. " ") or "", quote(log),
            quote(corio_bin), quote(script), name, quote(work), quote(certs), quote(out), quote(err))
  local ok, _, code = sh(cmd)
  local r = { ok = ok, code = code, out = slurp(out), err = slurp(err), log = slurp(log),
              cmd = ("CORIO_FAULT=%s %s %s %s DIR %s"):format(fault or "", corio_bin, script, name, certs) }
  sh(("rm -rf %s %s %s %s"):format(quote(work), quote(log), quote(out), quote(err)))
  return r
end

local failures, runs, fired_n = {}, 0, 0
local function failed(r, why)
  local log = r.log:gsub("count [^\n]*\n", "")
  local f = ("%s\n    %s\n    stdout: %s\n    stderr: %s\n    log: %s"):format(
    why, r.cmd, r.out:gsub("\n", " | "):sub(1, 400), r.err:gsub("\n", " | "):sub(1, 800),
    log:gsub("\n", " | "):sub(1, 400))
  failures[#failures + 1] = f
  print("FAILED: " .. f)
  io.stdout:flush()
end

-- check(r, kind, code): the verdict on one run
local function check(r, kind, code, name, mode)
  runs = runs + 1
  if r.err:find("Sanitizer") or r.err:find("runtime error") then
    return failed(r, "a sanitizer report")
  end
  if not r.ok then return failed(r, "exit status " .. tostring(r.code)) end
  local last = r.out:match("([^\n]*)\n?$")
  if not last or last:sub(1, 2) ~= "ok" then return failed(r, "no ok line") end
  for line in r.log:gmatch("loop_close ([^\n]*)") do
    if line ~= "ok" then return failed(r, "the loop did not close: " .. line) end
  end
  if not r.log:find("loop_close ok") then return failed(r, "no loop close") end
  if kind and r.log:find("\nfired ") or (kind and r.log:find("^fired ")) then fired_n = fired_n + 1 end
  if kind and r.log:find("delivered ") and not absorbed[kind] and not absorbed[name .. ":" .. kind]
     and not absorbed[kind .. "/" .. tostring(mode)] then
    local saw = false
    for c in last:gmatch("%S+") do
      if c == code or c == witness[name] then saw = true end
    end
    if not saw then return failed(r, code .. " never reached Lua") end
  end
end

-- the k to sweep out of 1..n
local function ks(n)
  if n <= max_k then
    local t = {}
    for k = 1, n do t[k] = k end
    return t
  end
  local t, last = {}, 0
  for i = 0, max_k - 1 do
    local k = 1 + math.floor(i * (n - 1) / (max_k - 1) + 0.5)
    if k ~= last then t[#t + 1] = k; last = k end
  end
  return t
end

local function want(i, v) return only[i] == nil or only[i] == tostring(v) end

local t0 = os.time()
for _, name in ipairs(scenarios) do
  if want(1, name) then
    local base = run(name, nil)
    check(base, nil, nil)
    local counts = {}
    for kind, mode, n in base.log:gmatch("count (%S+) (%S+) (%d+)") do
      counts[#counts + 1] = { kind = kind, mode = mode, n = tonumber(n) }
    end
    local before = runs
    for _, c in ipairs(counts) do
      if c.n > 0 and want(2, c.kind) and want(3, c.mode) then
        for i, code in ipairs(codes[c.kind .. "/" .. c.mode] or codes[c.kind]) do
          if want(4, code) and i <= ncodes then
            for _, k in ipairs(ks(c.n)) do
              if want(5, k) then
                local fault = ("%s:%d:%s:%s"):format(c.kind, k, code, c.mode)
                local r = run(name, fault)
                if verbose then print(fault, (r.out:match("([^\n]*)\n?$"))) end
                check(r, c.kind, code, name, c.mode)
              end
            end
          end
        end
      end
    end
    local desc = {}
    for _, c in ipairs(counts) do
      if c.n > 0 then desc[#desc + 1] = ("%s/%s %d"):format(c.kind, c.mode, c.n) end
    end
    print(("%-12s %4d runs  (%s)"):format(name, runs - before, table.concat(desc, ", ")))
    io.stdout:flush()
  end
end
sh("rm -rf " .. quote(tmp))
print(("fault sweep: %d runs, %d with the fault injected, %d failed, %d s")
  :format(runs, fired_n, #failures, os.time() - t0))
os.exit(#failures == 0 and 0 or 1)
