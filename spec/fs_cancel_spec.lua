-- Cancelling corio.fs requests: a request the thread pool has not started
-- is cancelled in libuv; one that has started finishes, and what it made
-- (an fd, a temporary file or directory) is undone, never leaked.
local corio = require "corio"
local helper = require "helper"
local fs = corio.fs

-- this process's open fds, counted in a task (a child such as `ls` would race
-- with popen's own pipe, and would not see corio's fds: they are O_CLOEXEC)
local function count_fds()
  local n = 0
  for _ in assert(fs.scandir("/proc/self/fd")) do n = n + 1 end
  return n
end

-- the same outside a run, in a run of its own (whose loop's fds come and go)
local function count_fds_now()
  return corio.run(count_fds)
end

-- wait (bounded) until the fd count falls back to at most n
local function settle_fds(n)
  for _ = 1, 500 do
    if count_fds() <= n then return count_fds() end
    corio.sleep(0.01)
  end
  return count_fds()
end

-- in_dir(fn [, base]): fn(dir), dir a fresh directory in base (/tmp)
local function in_dir(fn, base)
  local dir
  finally(function() if dir then os.execute("rm -rf '" .. dir .. "'") end end)
  return helper.run(function()
    dir = assert(fs.mkdtemp((base or "/tmp") .. "/corio-fs-XXXXXX"))
    return fn(dir)
  end)
end

local function names(dir)
  local list = {}
  for name in assert(fs.scandir(dir)) do list[#list + 1] = name end
  table.sort(list)
  return list
end

describe("corio.fs cancellation", function()
  -- libuv makes its process-wide fds (a signal pipe) at the first loop
  setup(function() helper.run(function() corio.sleep(0) end) end)

  it("never leaks the fd of 1,000 cancelled opens", function()
    local before = count_fds_now()
    in_dir(function(dir)
      local p = dir .. "/f"
      assert(fs.write_file(p, "x"))
      local start = count_fds()
      local cancelled = 0
      for i = 1, 1000 do
        local t = corio.spawn(fs.open, p, i % 2 == 0 and "r" or "r+")
        if i % 3 == 0 then corio.sleep(0) end  -- some are under way, some still queued
        t:cancel()
        if not pcall(t.await, t) then cancelled = cancelled + 1 end
      end
      assert.equals(1000, cancelled)
      -- timeouts too, some of which pass while the open runs
      for _ = 1, 200 do
        assert.is_false(corio.move_on_after(0, fs.open, p))
        local ok, f = corio.move_on_after(0.0001, fs.open, p)
        if ok then assert(f):close() end  -- it was quicker than the timeout
      end
      assert.equals(start, settle_fds(start))
      -- the files still open and close as usual
      local f = assert(fs.open(p))
      assert.equals("x", f:read())
      assert.is_true(f:close())
    end)
    assert.equals(before, count_fds_now())
  end)

  it("cancels in libuv a request the thread pool has not started: it never runs", function()
    in_dir(function(dir)
      -- fill libuv's thread pool with opens of FIFOs that nobody writes to
      local size = tonumber(os.getenv("UV_THREADPOOL_SIZE")) or 4
      local openers = {}
      for i = 1, size do
        local fifo = dir .. "/fifo" .. i
        assert.is_true(os.execute("mkfifo '" .. fifo .. "'"))
        openers[i] = corio.spawn(fs.open, fifo)
      end
      -- the pool is full once a stat cannot get through
      local full = false
      for _ = 1, 50 do
        if not corio.move_on_after(0.1, fs.stat, dir) then full = true; break end
      end
      assert.is_true(full, "the thread pool never filled up")
      local mk = corio.spawn(fs.mkdir, dir .. "/never")
      corio.sleep(0)
      mk:cancel()
      helper.cancelled_await(mk)
      -- unblock the opens: a writer for each FIFO
      for i = 1, size do
        assert.is_true(os.execute("timeout 10 sh -c 'echo x > " .. dir .. "/fifo" .. i .. "'"))
      end
      for i = 1, size do assert(openers[i]:await()):close() end
      assert(fs.stat(dir))  -- the queue has drained
      local st, _, code = fs.stat(dir .. "/never")
      assert.is_nil(st, "the cancelled mkdir ran")
      assert.equals("ENOENT", code)
    end)
  end)

  it("undoes what a cancelled read_file, write_file or mkdtemp made", function()
    local before = count_fds_now()
    in_dir(function(dir)
      local p = dir .. "/data"
      local big = ("d"):rep(512 * 1024)
      assert(fs.write_file(p, big))
      local start = count_fds()
      for i = 1, 120 do
        local jobs = {
          corio.spawn(fs.read_file, p),
          corio.spawn(fs.write_file, dir .. "/w" .. i % 7, big, { atomic = true }),
          corio.spawn(fs.write_file, dir .. "/plain", "abc"),
          corio.spawn(fs.mkdtemp, dir .. "/tmp-XXXXXX"),
          corio.spawn(fs.mkdir, dir .. "/m" .. i % 5 .. "/x/y", { parents = true }),
        }
        for _ = 1, i % 4 do corio.sleep(0) end
        for _, t in ipairs(jobs) do t:cancel() end
        for _, t in ipairs(jobs) do pcall(t.await, t) end
        local ok, made = pcall(jobs[4].await, jobs[4])
        if ok then assert(fs.rmdir(made)) end  -- finished before the cancel: a real result
      end
      assert.equals(start, settle_fds(start))
      -- wait for the background clean-up: nothing but finished files stays
      local left
      for _ = 1, 500 do
        left = {}
        for _, name in ipairs(names(dir)) do
          if name:find("tmp", 1, true) then left[#left + 1] = name end
        end
        if #left == 0 then break end
        corio.sleep(0.01)
      end
      assert.same({}, left)
      for _, name in ipairs(names(dir)) do
        if name:match("^w%d$") then assert.equals(#big, fs.stat(dir .. "/" .. name).size) end
      end
    end, helper.exists("/dev/shm") and "/dev/shm" or nil)  -- tmpfs: fsync costs nothing
    assert.equals(before, count_fds_now())
  end)

  it("keeps a File usable after a cancelled read: no byte is lost", function()
    in_dir(function(dir)
      local p = dir .. "/f"
      local lines = {}
      for i = 1, 20000 do lines[i] = ("%05d"):format(i) end
      local text = table.concat(lines, "\n") .. "\n"
      assert(fs.write_file(p, text))
      local f <close> = assert(fs.open(p))
      local got = {}
      for i = 1, 400 do
        local t = corio.spawn(function()
          local line = f:read_line()
          got[#got + 1] = line
          return line
        end)
        if i % 2 == 0 then corio.sleep(0) end
        t:cancel()
        pcall(t.await, t)
      end
      -- the lines read before a cancellation are in got; the rest come next
      local rest = assert(f:read_all())
      local joined = #got > 0 and table.concat(got, "\n") .. "\n" or ""
      assert.equals(text, joined .. rest)
    end)
  end)

  it("cancels a task waiting its turn on a busy File without disturbing the others", function()
    in_dir(function(dir)
      local p = dir .. "/f"
      assert(fs.write_file(p, ("y"):rep(1000000)))
      local f <close> = assert(fs.open(p))
      -- each one starts before the next is spawned (tasks spawned together
      -- start in any order): a holds the File, b and c wait their turns
      local a = corio.spawn(function() return #f:read_all() end)
      corio.sleep(0)
      local b = corio.spawn(function() return f:read(10) end)
      corio.sleep(0)
      local c = corio.spawn(function() return f:seek() end)
      corio.sleep(0)
      b:cancel()
      helper.cancelled_await(b)
      assert.equals(1000000, a:await())
      assert.equals(1000000, c:await())
    end)
  end)
end)
