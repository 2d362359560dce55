-- corio side of W9 (DESIGN.md section 5; ../shared/bench-peers defines it), with the
-- peers' output: "RESULT workload=w9 n=.. secs=.. write_secs=.. read_secs=..
-- write_rate=.. read_rate=..".
--
-- usage: lua5.4 bench/bench_fs.lua w9|w9whole [N]     (bench/run.sh sets LUA_PATH/LUA_CPATH)
--   w9       N (10,000) files of 4 KiB in a fresh directory in $TMPDIR (/tmp), 64 tasks:
--            write all (fs.open "w", file:write, file:close), then read all back
--            (fs.open, file:read(4096), file:close): the peers' three requests per file
--   w9whole  the same with fs.write_file and fs.read_file (one call per file; read_file
--            reads until the end, so four requests)
-- Every file's content is compared and the byte total checked; the files are removed
-- afterwards (not timed).
local corio = require "corio"
local fs = corio.fs

local FILE_SIZE = 4096
local CONTENTS = {}  -- file i holds string.char(97 + i % 26)
for k = 0, 25 do CONTENTS[k] = string.rep(string.char(97 + k), FILE_SIZE) end

local function result(t)
  local parts = {}
  for _, k in ipairs(t) do parts[#parts + 1] = k .. "=" .. tostring(t[k]) end
  io.write("RESULT ", table.concat(parts, " "), "\n")
  io.flush()
end

local open = fs.open

local function w9(n, whole)
  local dir = assert(fs.mkdtemp((os.getenv("TMPDIR") or "/tmp") .. "/bench-w9-XXXXXX"))
  local nextf, nread = 0, 0
  local function writer()
    while nextf < n do
      local i = nextf
      nextf = i + 1
      local path = dir .. "/f" .. i
      if whole then
        assert(fs.write_file(path, CONTENTS[i % 26]))
      else
        local f = assert(open(path, "w"))
        assert(f:write(CONTENTS[i % 26]))
        assert(f:close())
      end
    end
  end
  local function reader()
    while nextf < n do
      local i = nextf
      nextf = i + 1
      local path, data = dir .. "/f" .. i
      if whole then
        data = assert(fs.read_file(path))
      else
        local f = assert(open(path))
        data = assert(f:read(FILE_SIZE))
        assert(f:close())
      end
      assert(data == CONTENTS[i % 26], "bad content")
      nread = nread + #data
    end
  end
  local function phase(fn)
    nextf = 0
    local lanes = {}
    for i = 1, 64 do lanes[i] = corio.spawn(fn) end
    for i = 1, 64 do lanes[i]:await() end
  end
  local t0 = corio.now()
  phase(writer)
  local t1 = corio.now()
  phase(reader)
  local t2 = corio.now()
  for i = 0, n - 1 do assert(fs.unlink(dir .. "/f" .. i)) end
  assert(fs.rmdir(dir))
  assert(nread == n * FILE_SIZE, "bad total")
  result { "workload", "n", "secs", "write_secs", "read_secs", "write_rate", "read_rate",
           workload = "w9", n = n, secs = string.format("%.4f", t2 - t0),
           write_secs = string.format("%.4f", t1 - t0), read_secs = string.format("%.4f", t2 - t1),
           write_rate = string.format("%.0f", n / (t1 - t0)), read_rate = string.format("%.0f", n / (t2 - t1)) }
end

local wl, n = arg[1], math.tointeger(tonumber(arg[2]) or 10000)
if wl == "w9" or wl == "w9whole" then
  corio.run(w9, n, wl == "w9whole")
else
  error("usage: lua5.4 bench/bench_fs.lua w9|w9whole [N]")
end
