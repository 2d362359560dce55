-- Processes (DESIGN.md "I/O"): corio.exec, the Process type, corio.run_process,
-- and the run's end, which terminates and reaps every child still running.
local corio = require "corio"
local helper = require "helper"

local function mypid()
  local f = assert(io.open("/proc/self/stat"))
  local s = f:read("l")
  f:close()
  return tonumber(s:match("^(%d+)"))
end

local ME = mypid()

-- the state letter of process pid ("S", "R", "Z"...) and its parent, or nil
local function proc_state(pid)
  local f = io.open(("/proc/%d/stat"):format(pid))
  if not f then return nil end
  local s = f:read("l")
  f:close()
  local state, ppid = s:match("%) (%a) (%d+)")
  return state, tonumber(ppid)
end

-- our children now, and those of them that are zombies
local function children()
  local f = assert(io.open(("/proc/%d/task/%d/children"):format(ME, ME)))
  local s = f:read("a")
  f:close()
  local all, zombies = {}, {}
  for pid in s:gmatch("%d+") do
    pid = tonumber(pid)
    all[#all + 1] = pid
    if proc_state(pid) == "Z" then zombies[#zombies + 1] = pid end
  end
  return all, zombies
end

local function assert_no_zombie()
  local _, zombies = children()
  assert.same({}, zombies)
end

describe("corio.exec", function()
  it("runs a program with a piped stdout and gives its exit code", function()
    local code, out, pid, shown = helper.run(function()
      local p = assert(corio.exec({ "sh", "-c", "echo hello; exit 3" }, { stdout = "pipe" }))
      assert.is_true(math.type(p.pid) == "integer" and p.pid > 0)
      assert.equals("process " .. p.pid .. " (running)", tostring(p))
      assert.is_nil(p.stdin)
      assert.is_nil(p.stderr)
      assert.equals("pipe stream (open)", tostring(p.stdout))
      local data = p.stdout:read_all()
      local c, sig = p:wait()
      assert.is_nil(sig)
      assert.equals(c, (p:wait()))  -- a second wait returns at once
      p.stdout:close()
      return c, data, p.pid, tostring(p)
    end)
    assert.equals(3, code)
    assert.equals("hello\n", out)
    assert.equals("process " .. pid .. " (exited 3)", shown)
    assert.is_nil(proc_state(pid))
  end)

  it("runs 1,000 /bin/true, 32 at a time, collecting every exit code, and leaves no zombie", function()
    local codes = helper.run(function()
      local codes, started = {}, 0
      local function lane()
        while started < 1000 do
          started = started + 1
          local p = assert(corio.exec({ "/bin/true" }))
          local code = p:wait()  -- (the index is taken after the wait)
          codes[#codes + 1] = code
        end
      end
      local lanes = {}
      for i = 1, 32 do lanes[i] = lane end
      corio.gather(lanes)
      assert_no_zombie()
      return codes
    end)
    assert.equals(1000, #codes)
    for i = 1, 1000 do assert.equals(0, codes[i]) end
    local all = children()
    assert.same({}, all)
  end)

  it("reads 10 MiB that a child writes, whole and in order", function()
    local n = 1048576  -- lines of 10 bytes
    local data = helper.run(function()
      local p = assert(corio.exec({ "awk", ("BEGIN { for (i = 0; i < %d; i++) printf \"%%09d\\n\", i }"):format(n) },
                                  { stdout = "pipe" }))
      local d = p.stdout:read_all()
      assert.equals(0, (p:wait()))
      return d
    end)
    assert.equals(10 * n, #data)
    local i = 0
    for line in data:gmatch("(%d+)\n") do
      if tonumber(line) ~= i then error("line " .. i .. " is " .. line) end
      i = i + 1
    end
    assert.equals(n, i)
  end)

  it("pipes stdin in, delivers its end when stdin is closed, and reads stdout meanwhile", function()
    local chunk = string.rep("0123456789abcdef", 65536)  -- 1 MiB
    local out, code = helper.run(function()
      local p = assert(corio.exec({ "cat" }, { stdin = "pipe", stdout = "pipe" }))
      local _, got = corio.gather(function()
        for _ = 1, 4 do assert(p.stdin:write(chunk)) end
        assert.is_true(p.stdin:close())  -- cat sees the end and exits
      end, function()
        return p.stdout:read_all()
      end)
      return got, p:wait()
    end)
    assert.equals(0, code)
    assert.equals(4 * #chunk, #out)
    assert.equals(chunk:rep(4), out)
  end)

  it("reports exit codes and the signal that ended a child", function()
    helper.run(function()
      assert.same({ 7 }, { corio.exec({ "sh", "-c", "exit 7" }):wait() })
      assert.same({ 143, "SIGTERM" }, { corio.exec({ "sh", "-c", "kill -TERM $$" }):wait() })
      local p = corio.exec({ "sleep", "30" })
      assert.is_true(p:kill("KILL"))
      assert.same({ 137, "SIGKILL" }, { p:wait() })
      assert.equals("process " .. p.pid .. " (killed by SIGKILL)", tostring(p))
      -- once it has exited, there is nothing to signal
      assert.same({ nil, "ESRCH: no such process", "ESRCH" }, { p:kill() })
      local q = corio.exec({ "sleep", "30" })
      assert.is_true(q:kill())  -- SIGTERM by default
      assert.same({ 143, "SIGTERM" }, { q:wait() })
      local r = corio.exec({ "sleep", "30" })
      assert.is_true(r:kill(9))
      assert.same({ 137, "SIGKILL" }, { r:wait() })
      assert.has_error(function() r:kill("SIGNOPE") end, "process:kill: unknown signal 'SIGNOPE'")
    end)
  end)

  it("returns nil, msg, code for a missing program or directory", function()
    helper.run(function()
      assert.same({ nil, "ENOENT: no such file or directory", "ENOENT" },
                  { corio.exec({ "corio-no-such-program" }) })
      assert.same({ nil, "ENOENT: no such file or directory", "ENOENT" },
                  { corio.exec({ "/nonexistent/prog" }) })
      assert.same({ nil, "ENOENT: no such file or directory", "ENOENT" },
                  { corio.exec({ "true" }, { cwd = "/nonexistent-dir" }) })
      local _, _, code = corio.exec({ "/etc/passwd" })
      assert.equals("EACCES", code)
      assert_no_zombie()
    end)
  end)

  it("runs in cwd, with env merged over ours, names removed by false, or a clear env", function()
    local tmp = os.tmpname()
    os.remove(tmp)
    assert(os.execute("mkdir " .. tmp))
    helper.run(function()
      local function run(argv, opts)
        opts.stdout = "pipe"
        local p = assert(corio.exec(argv, opts))
        local out = p.stdout:read_all()
        assert.equals(0, (p:wait()))
        return out
      end
      assert.equals(tmp .. "\n", run({ "pwd" }, { cwd = tmp }))
      -- PATH is still ours: sh is found; CORIO_X is added, HOME removed
      assert.equals("x 42 unset\n", run({ "sh", "-c", 'echo $CORIO_X $CORIO_N ${HOME-unset}' },
                                         { env = { CORIO_X = "x", CORIO_N = 42, HOME = false } }))
      assert.equals("only\n", run({ "/usr/bin/env" }, { clear_env = true, env = { ONLY = "only" } })
                                 :gsub("ONLY=", ""))
      assert.equals("", run({ "/usr/bin/env" }, { clear_env = true }))
    end)
    os.remove(tmp)
  end)

  it("gives a child a Stream, an fd, /dev/null or an object with fileno()", function()
    local _, _, file, cleanup = helper.tmpfiles()
    local path = file("")
    helper.run(function()
      -- a pipeline: echo's stdout Stream is tr's stdin
      local echo = assert(corio.exec({ "echo", "hello" }, { stdout = "pipe" }))
      local tr = assert(corio.exec({ "tr", "a-z", "A-Z" }, { stdin = echo.stdout, stdout = "pipe" }))
      echo.stdout:close()
      assert.equals("HELLO\n", tr.stdout:read_all())
      assert.equals(0, (echo:wait()))
      assert.equals(0, (tr:wait()))
      -- "null": reads see the end at once, writes go nowhere
      local p = assert(corio.exec({ "sh", "-c", "cat; echo gone" }, { stdin = "null", stdout = "pipe", stderr = "null" }))
      assert.equals("gone\n", p.stdout:read_all())
      p:wait()
      -- an object with fileno(): the fd of a file Lua's io opened (found in /proc)
      local f = assert(io.open(path, "w"))
      local fd
      local ls = assert(io.popen("ls -l /proc/" .. ME .. "/fd"))
      for line in ls:lines() do
        local n, target = line:match("(%d+) %-> (.*)$")
        if target == path then fd = tonumber(n) end
      end
      ls:close()
      assert.is_number(fd)
      local obj = setmetatable({}, { __index = { fileno = function() return fd end } })
      assert.equals(0, (corio.exec({ "echo", "via fileno" }, { stdout = obj }):wait()))
      assert.equals(0, (corio.exec({ "echo", "via fd" }, { stdout = fd }):wait()))
      f:close()
      -- a closed Stream is misuse
      local q = assert(corio.exec({ "true" }, { stdout = "pipe" }))
      q.stdout:close()
      assert.has_error(function() corio.exec({ "true" }, { stdin = q.stdout }) end,
                       "corio.exec: option 'stdin': the stream is closed")
      q:wait()
    end)
    assert.equals("via fileno\nvia fd\n", helper.slurp(path))
    cleanup()
  end)

  it("terminates the child when the task waiting on it is cancelled", function()
    local p, shown = helper.run(function()
      local p = assert(corio.exec({ "sleep", "30" }))
      local t = corio.spawn(p.wait, p)
      helper.settle()
      t:cancel()
      helper.cancelled_await(t)
      assert.equals("process " .. p.pid .. " (killed by SIGTERM)", tostring(p))  -- reaped already
      -- a timeout does the same
      local q = assert(corio.exec({ "sleep", "30" }))
      assert.has_error(function() corio.timeout(0.05, q.wait, q) end)
      assert.same({ 143, "SIGTERM" }, { q:wait() })
      return p, tostring(q)
    end)
    assert.truthy(shown:find("killed by SIGTERM", 1, true))
    assert.is_nil(proc_state(p.pid))
  end)

  it("terminates the child at the end of a <close> scope, closing its pipes", function()
    helper.run(function()
      local p
      do
        local proc <close> = assert(corio.exec({ "sleep", "30" }, { stdout = "pipe" }))
        p = proc
      end
      assert.equals("process " .. p.pid .. " (killed by SIGTERM)", tostring(p))
      assert.equals("pipe stream (closed)", tostring(p.stdout))
      p:close()  -- again: nothing to do
      -- leaving the scope by an error also terminates it
      local q
      local ok = pcall(function()
        local proc <close> = assert(corio.exec({ "sleep", "30" }))
        q = proc
        error("boom")
      end)
      assert.is_false(ok)
      assert.same({ 143, "SIGTERM" }, { q:wait() })
    end)
  end)

  it("sends SIGKILL after kill_after to a child that ignores SIGTERM", function()
    helper.run(function()
      local p = assert(corio.exec({ "sh", "-c", 'trap "" TERM; echo ready; exec sleep 30' },
                                  { stdout = "pipe", kill_after = 0.3 }))
      assert.equals("ready", p.stdout:read_line())
      local t0 = corio.now()
      local t = corio.spawn(p.wait, p)
      helper.settle()
      t:cancel()
      helper.cancelled_await(t)
      local waited = corio.now() - t0
      assert.same({ 137, "SIGKILL" }, { p:wait() })
      assert.is_true(waited >= 0.25, "killed after " .. waited .. " s")
      assert.is_true(waited < 10, "killed after " .. waited .. " s")
      -- kill_after = 0: SIGKILL at once
      local q = assert(corio.exec({ "sleep", "30" }, { kill_after = 0 }))
      q:close()
      assert.same({ 137, "SIGKILL" }, { q:wait() })
    end)
  end)

  it("lets several tasks wait on one process", function()
    local a, b = helper.run(function()
      local p = assert(corio.exec({ "sh", "-c", "sleep 0.05; exit 4" }))
      return corio.gather(function() return p:wait() end, function() return p:wait() end)
    end)
    assert.equals(4, a)
    assert.equals(4, b)
  end)

  it("terminates and reaps the children still running when a run ends", function()
    local p, pid = helper.run(function()
      local p = assert(corio.exec({ "sleep", "30" }))
      local stubborn = assert(corio.exec({ "sh", "-c", 'trap "" TERM; echo ready; exec sleep 30' },
                                         { stdout = "pipe", kill_after = 0.2 }))
      assert.equals("ready", stubborn.stdout:read_line())
      corio.spawn(function() p:wait() end)  -- cancelled by the run's end
      helper.settle()
      return p, stubborn.pid
    end)
    assert.equals("process " .. p.pid .. " (killed by SIGTERM)", tostring(p))
    assert.is_nil(proc_state(p.pid))
    assert.is_nil(proc_state(pid))
    assert.same({}, (children()))
  end)

  it("starts a detached child in a new session, not ours to wait for or reap", function()
    local _, name, _, cleanup = helper.tmpfiles()
    local mark = name()
    local p = helper.run(function()
      local p = assert(corio.exec({ "sh", "-c", "sleep 0.2; echo done > " .. mark }, { detach = true }))
      assert.equals("process " .. p.pid .. " (detached)", tostring(p))
      local _, ppid = proc_state(p.pid)
      assert.is_not.equals(ME, ppid)
      assert.has_error(function() p:wait() end, "process:wait: a detached process is not waited for")
      assert.has_error(function() corio.exec({ "true" }, { detach = true, stdout = "pipe" }) end,
                       "corio.exec: option 'stdout': a detached process takes no pipes")
      assert.same({ nil, "ENOENT: no such file or directory", "ENOENT" },
                  { corio.exec({ "corio-no-such-program" }, { detach = true }) })
      return p
    end)
    -- the run did not wait for it: it finishes on its own
    local state = proc_state(p.pid)
    assert.is_truthy(state)
    for _ = 1, 100 do
      if helper.exists(mark) and helper.slurp(mark) == "done\n" then break end
      os.execute("sleep 0.05")
    end
    assert.equals("done\n", helper.slurp(mark))
    assert.same({}, (children()))
    -- signalling a detached child
    helper.run(function()
      local q = assert(corio.exec({ "sleep", "30" }, { detach = true }))
      assert.is_true(q:kill("KILL"))
    end)
    cleanup()
  end)

  it("raises for misuse, naming the function", function()
    helper.run(function()
      assert.has_error(function() corio.exec("ls") end,
                       "bad argument #1 to 'exec' (table expected, got string)")
      assert.has_error(function() corio.exec({}) end)
      assert.has_error(function() corio.exec({ "ls", {} }) end,
                       "bad argument #1 to 'corio.exec' (item 2: a string expected, got table)")
      assert.has_error(function() corio.exec({ "ls" }, { stdout = "file" }) end,
                       "corio.exec: option 'stdout': \"pipe\", \"inherit\", \"null\", a Stream or a file expected, got 'file'")
      assert.has_error(function() corio.exec({ "ls" }, { stdout = {} }) end)
      assert.has_error(function() corio.exec({ "ls" }, { env = { 1 } }) end,
                       "corio.exec: option 'env': names (without '=') to strings or false expected")
      assert.has_error(function() corio.exec({ "ls" }, { cwd = 1 }) end,
                       "corio.exec: option 'cwd': a string expected, got number")
      assert.has_error(function() corio.exec({ "ls" }, { kill_after = -1 }) end,
                       "corio.exec: option 'kill_after': a number of seconds (>= 0) expected")
      local p = assert(corio.exec({ "true" }))
      for _, m in ipairs({ "wait", "kill", "close" }) do
        local ok, err = pcall(p[m], 42)
        assert.is_false(ok)
        assert.truthy(err:find("bad self to 'process:" .. m .. "' (Process expected, got number)", 1, true), err)
      end
      p:wait()
    end)
    assert.has_error(function() corio.exec({ "true" }) end,
                     "corio.exec: no running loop (start one with corio.run)")
  end)
end)

describe("corio.run_process", function()
  it("returns code, stdout and stderr, feeding input", function()
    helper.run(function()
      assert.same({ 0, "HELLO", "" }, { corio.run_process({ "tr", "a-z", "A-Z" }, { input = "hello" }) })
      assert.same({ 2, "out\n", "err\n" },
                  { corio.run_process({ "sh", "-c", "echo out; echo err >&2; exit 2" }) })
      -- without input, stdin is /dev/null
      assert.same({ 0, "", "" }, { corio.run_process({ "cat" }) })
      -- a large input and output at once (no deadlock on full pipes)
      local big = string.rep("x", 3 * 1024 * 1024)
      local code, out = corio.run_process({ "cat" }, { input = big })
      assert.equals(0, code)
      assert.equals(#big, #out)
      assert.same({ 143, "", "", "SIGTERM" }, { corio.run_process({ "sh", "-c", "kill $$" }) })
      assert.same({ 0, "/\nv\n", "" },
                  { corio.run_process({ "sh", "-c", "pwd; echo $V" }, { cwd = "/", env = { V = "v" } }) })
    end)
  end)

  it("raises a ProcessError with check = true", function()
    helper.run(function()
      assert.same({ 0, "ok\n", "" }, { corio.run_process({ "echo", "ok" }, { check = true }) })
      local ok, err = pcall(corio.run_process, { "sh", "-c", "echo o; echo e >&2; exit 5" }, { check = true })
      assert.is_false(ok)
      assert.is_true(corio.ProcessError.is(err))
      assert.is_false(corio.ProcessError.is("x"))
      assert.equals(5, err.code)
      assert.is_nil(err.signal)
      assert.equals("o\n", err.stdout)
      assert.equals("e\n", err.stderr)
      assert.equals("process 'sh' exited with code 5", tostring(err))
      ok, err = pcall(corio.run_process, { "sh", "-c", "kill -KILL $$" }, { check = true })
      assert.is_false(ok)
      assert.equals("SIGKILL", err.signal)
      assert.equals("process 'sh' was killed by SIGKILL", tostring(err))
    end)
  end)

  it("terminates the child after timeout and raises TimeoutError", function()
    helper.run(function()
      local t0 = corio.now()
      local ok, err = pcall(corio.run_process, { "sleep", "30" }, { timeout = 0.1 })
      assert.is_false(ok)
      assert.is_true(corio.TimeoutError.is(err))
      assert.is_true(corio.now() - t0 < 10)
      assert.same({ 0, "quick\n", "" }, { corio.run_process({ "echo", "quick" }, { timeout = 30 }) })
      assert_no_zombie()
    end)
    assert.same({}, (children()))
  end)

  it("returns nil, msg, code for a missing program, and raises for misuse", function()
    helper.run(function()
      assert.same({ nil, "ENOENT: no such file or directory", "ENOENT" },
                  { corio.run_process({ "corio-no-such-program" }) })
      assert.has_error(function() corio.run_process("ls") end,
                       "bad argument #1 to 'corio.run_process' (table expected, got string)")
      assert.has_error(function() corio.run_process({ "ls" }, { input = 1 }) end,
                       "bad argument #2 to 'corio.run_process' (option 'input': a string expected, got number)")
      assert.has_error(function() corio.run_process({ "ls" }, { timeout = "1" }) end,
                       "bad argument #2 to 'corio.run_process' (option 'timeout': a number expected, got string)")
    end)
  end)
end)
