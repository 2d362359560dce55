-- corio side of the process workloads (W8, DESIGN.md section 5), same output as the
-- peers in ../shared/bench-peers: one line "RESULT workload=.. n=.. secs=.. rate=..".
--
-- usage: lua5.4 bench/bench_process.lua WORKLOAD [N]   (bench/run.sh sets LUA_PATH/LUA_CPATH)
--   w8spawn  N (2,000) corio.exec("/bin/true") + wait(), 32 tasks spawning one at a
--            time (stdio inherited, as the peers); every exit code checked; rate = processes/s
--   w8pipe   a task reads N (200,000,000) bytes from `head -c N /dev/zero` through a
--            piped stdout (stream:read of up to 256 KiB); byte count and exit code
--            checked; rate = MB/s (10^6 bytes)
-- "secs" runs from the first spawn to the last exit (interpreter start-up excluded).
local corio = require "corio"

local function result(t)
  local parts = {}
  for _, k in ipairs(t) do parts[#parts + 1] = k .. "=" .. tostring(t[k]) end
  io.write("RESULT ", table.concat(parts, " "), "\n")
  io.flush()
end

local function w8spawn(n)
  local exec = corio.exec
  local argv = { "/bin/true" }
  local started, codes = 0, {}
  local function lane()
    while started < n do
      started = started + 1
      local code = exec(argv):wait()
      codes[#codes + 1] = code
    end
  end
  local t0 = corio.now()
  local lanes = {}
  for i = 1, 32 do lanes[i] = lane end
  corio.gather(lanes)
  local secs = corio.now() - t0
  assert(#codes == n, "missing exit codes")
  for i = 1, n do assert(codes[i] == 0, "non-zero exit code") end
  result { "workload", "n", "secs", "rate", workload = "w8spawn", n = n,
           secs = string.format("%.4f", secs), rate = string.format("%.0f", n / secs) }
end

local function w8pipe(n)
  local t0 = corio.now()
  local p = assert(corio.exec({ "/usr/bin/head", "-c", tostring(n), "/dev/zero" }, { stdout = "pipe" }))
  local out, total = p.stdout, 0
  while true do
    local s = out:read(262144)
    if not s then break end
    total = total + #s
  end
  out:close()
  local code = p:wait()
  local secs = corio.now() - t0
  assert(total == n and code == 0, "bad pipe result")
  result { "workload", "n", "secs", "rate", workload = "w8pipe", n = n,
           secs = string.format("%.4f", secs), rate = string.format("%.0f", n / 1e6 / secs) }
end

local workloads = { w8spawn = { w8spawn, 2000 }, w8pipe = { w8pipe, 200000000 } }
local w = workloads[arg[1]]
if not w then error("usage: lua5.4 bench/bench_process.lua w8spawn|w8pipe [N]") end
corio.run(w[1], tonumber(arg[2]) or w[2])
