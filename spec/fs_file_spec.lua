-- corio.fs.open's File: reads (read_line and lines with a Stream's rules:
-- CRLF, keep_eol, the limit), writes, seek, truncate, sync, stat, close,
-- and several tasks sharing one File.
local corio = require "corio"
local helper = require "helper"
local fs = corio.fs

local in_dir = helper.in_dir

describe("corio.fs.open", function()
  it("opens in each mode, with errors as nil, msg, code", function()
    in_dir(function(dir)
      local p = dir .. "/f"
      local _, msg, code = fs.open(p)
      assert.equals("ENOENT", code)
      assert.equals("ENOENT: no such file or directory: " .. p, msg)
      local f = assert(fs.open(p, "w"))
      assert.equals("file " .. p .. " (open)", tostring(f))
      assert.is_true(f:write("abc"))
      assert.is_nil(f:read())  -- write only: EBADF
      assert.is_true(f:close())
      assert.equals("file " .. p .. " (closed)", tostring(f))
      assert.equals("EEXIST", select(3, fs.open(p, "x")))
      assert.equals("EISDIR", select(3, fs.open(dir, "w")))
      f = assert(fs.open(p, "a+"))
      assert.is_true(f:write("def"))  -- at the end, which becomes the position
      assert.equals(6, f:seek())
      assert.equals("", f:read_all())
      assert.equals(0, f:seek("set", 0))
      assert.equals("abcdef", f:read_all())
      f:seek("set", 0)
      assert.is_true(f:write("g"))  -- still at the end
      assert.equals(7, f:seek())
      assert.is_true(f:close())
      f = assert(fs.open(p, "r+b"))
      assert.is_true(f:write("X"))
      assert.equals("bcdefg", f:read_all())
      assert.is_true(f:close())
      assert.equals("Xbcdefg", fs.read_file(p))
      f = assert(fs.open(dir .. "/new", "x", { perm = tonumber("600", 8) }))
      assert.equals(tonumber("600", 8), f:stat().perm)
      f:close()
      -- a directory opens for reading, but reading it fails
      f = assert(fs.open(dir))
      assert.equals("EISDIR", select(3, f:read()))
      assert.equals("EISDIR", select(3, f:read_line()))
      f:close()
    end)
  end)

  it("reads in pieces, to the end, and nil after it", function()
    in_dir(function(dir)
      local p = dir .. "/f"
      local data = ("0123456789"):rep(20000)  -- 200,000 bytes: several reads ahead
      assert(fs.write_file(p, data))
      local f <close> = assert(fs.open(p))
      assert.equals("012", f:read(3))
      assert.equals(3, f:seek())
      local got = { "012" }
      while true do
        local s = f:read(7000)
        if s == nil then break end
        assert.truthy(#s <= 7000)
        got[#got + 1] = s
      end
      assert.equals(data, table.concat(got))
      assert.is_nil(f:read())
      assert.equals("", f:read_all())  -- at the end: empty, as a Stream's
      assert.equals(#data, f:seek())
      assert.equals(0, f:seek("set"))
      assert.equals(#data, #f:read_all())
      assert.equals(5, f:seek("set", 5))
      assert.equals("56", f:read(2))
      assert.equals(4, f:seek("cur", -3))
      assert.equals("4", f:read(1))
      assert.equals(#data - 2, f:seek("end", -2))
      assert.equals("89", f:read())
      assert.equals("EINVAL", select(3, f:seek("set", -1)))
      assert.has_error(function() f:read(0) end, "file:read: bad argument #1 (a positive count expected)")
      assert.has_error(function() f:seek("top") end,
        "file:seek: bad argument #1 (\"set\", \"cur\" or \"end\" expected)")
      assert.has_error(function() f:seek("set", 1.5) end, "file:seek: bad argument #2 (an integer offset expected)")
    end)
  end)

  it("reads lines as a Stream does: CRLF and LF stripped, keep_eol, a last line without an end", function()
    in_dir(function(dir)
      local p = dir .. "/lines"
      assert(fs.write_file(p, "one\r\ntwo\n\nthree\r\n\r\nlast"))
      local f <close> = assert(fs.open(p))
      local lines = {}
      for line in f:lines() do lines[#lines + 1] = line end
      assert.same({ "one", "two", "", "three", "", "last" }, lines)
      assert.is_nil(f:read_line())
      f:seek("set", 0)
      assert.equals("one\r\n", f:read_line(true))
      assert.equals("two\n", f:read_line(true))
      lines = {}
      for line in f:lines(true) do lines[#lines + 1] = line end
      assert.same({ "\n", "three\r\n", "\r\n", "last" }, lines)
      -- a bare \r inside a line stays
      assert(fs.write_file(p, "a\rb\n"))
      f:seek("set", 0)
      assert.equals("a\rb", f:read_line())
      assert.is_nil(f:read_line())
    end)
  end)

  it("gives nil, 'limit exceeded' for a line past the limit, leaving the data buffered", function()
    in_dir(function(dir)
      local p = dir .. "/long"
      local long = ("x"):rep(70000)
      assert(fs.write_file(p, long .. "\nshort\n"))
      local f <close> = assert(fs.open(p))
      assert.same({ nil, "limit exceeded" }, { f:read_line() })
      assert.same({ nil, "limit exceeded" }, { f:read_line() })  -- still there
      assert.equals(long, f:read(70000))
      assert.equals("", f:read_line())
      assert.equals("short", f:read_line())
      -- the limit is fs.open's option, and a line of exactly the limit passes
      local g <close> = assert(fs.open(p, "r", { limit = 70000 }))
      assert.equals(long, g:read_line())
      local h <close> = assert(fs.open(p, "r", { limit = 10 }))
      assert.same({ nil, "limit exceeded" }, { h:read_line() })
      assert(fs.write_file(p, "0123456789\n01234567890\n"))
      local k <close> = assert(fs.open(p, "r", { limit = 10 }))
      assert.equals("0123456789", k:read_line())
      assert.same({ nil, "limit exceeded" }, { k:read_line() })
      -- lines() raises instead
      local ok, err = pcall(function() for _ in k:lines() do end end)
      assert.is_false(ok)
      assert.truthy(tostring(err):find("file:lines: limit exceeded", 1, true), tostring(err))
    end)
  end)

  it("writes at its position, over what was read ahead; truncate, sync and stat", function()
    in_dir(function(dir)
      local p = dir .. "/f"
      assert(fs.write_file(p, "abcdefgh"))
      local f <close> = assert(fs.open(p, "r+"))
      assert.equals("ab", f:read(2))  -- the whole file was read ahead
      assert.is_true(f:write())  -- nothing to write
      assert.is_true(f:write(""))
      assert.is_true(f:write("XY", 1, 2.5))
      assert.equals(8, f:seek())
      assert.is_nil(f:read())
      assert.equals("abXY12.5", fs.read_file(p))
      assert.is_true(f:truncate(4))
      assert.equals(4, f:stat().size)
      assert.equals("abXY", fs.read_file(p))
      f:seek("set", 2)
      assert.is_true(f:truncate())  -- at the position
      assert.equals("ab", fs.read_file(p))
      assert.is_true(f:sync())
      assert.equals("file", f:stat().type)
      assert.equals("number", type(f:fileno()))
      assert.has_error(function() f:write({}) end, "file:write: bad argument #1 (a string expected, got table)")
      assert.has_error(function() f:truncate(-1) end, "file:truncate: bad argument #1 (a size expected)")
      -- a big write goes whole
      local big = ("z"):rep(3 * 1024 * 1024)
      f:seek("set", 0)
      assert.is_true(f:write(big))
      assert.equals(big, fs.read_file(p))
    end)
  end)

  it("reads and writes a FIFO, which has no offsets", function()
    in_dir(function(dir)
      local p = dir .. "/fifo"
      assert.is_true(os.execute("mkfifo '" .. p .. "'"))
      local writer = corio.spawn(function()
        local w <close> = assert(fs.open(p, "w"))  -- waits in the thread pool for the reader
        assert(w:write("one\r\ntwo\n"))
        assert(w:write("three"))
        assert.equals("ESPIPE", select(3, w:seek("set", 0)))
      end)
      local r <close> = assert(fs.open(p))
      local lines = {}
      for line in r:lines() do lines[#lines + 1] = line end
      writer:await()
      assert.same({ "one", "two", "three" }, lines)
      -- whole-file functions too: with r closed, write_file's open waits for a
      -- reader and read_file's for a writer, so they meet (were r open, write_file
      -- could be done before read_file opened, which would then wait for ever)
      assert.is_true(r:close())
      writer = corio.spawn(fs.write_file, p, "whole")
      assert.equals("whole", fs.read_file(p))
      assert.is_true(writer:await())
    end)
  end)

  it("answers nil, 'closed' once closed; close is idempotent; <close> closes", function()
    in_dir(function(dir)
      local p = dir .. "/f"
      assert(fs.write_file(p, "x\n"))
      local f = assert(fs.open(p, "r+"))
      assert.is_false(f:is_closed())
      assert.is_true(f:close())
      assert.is_true(f:is_closed())
      assert.is_true(f:close())
      for _, m in ipairs({ "read", "read_line", "read_all", "write", "seek", "sync", "stat", "truncate", "fileno" }) do
        assert.same({ nil, "closed" }, { f[m](f) }, m)
      end
      local kept
      do
        local g <close> = assert(fs.open(p))
        kept = g
        assert.equals("x", g:read_line())
      end
      assert.is_true(kept:is_closed())
      -- a bad self raises, naming the method
      assert.has_error(function() f.read(5) end,
        "bad self to 'file:read' (File expected, got number): use file:read(...)")
      assert.has_error(function() f.close({}) end,
        "bad self to 'file:close' (File expected, got table): use file:close(...)")
    end)
  end)

  it("is closed at the run's end when left open, and when collected", function()
    local dir
    finally(function() if dir then os.execute("rm -rf '" .. dir .. "'") end end)
    local left
    helper.run(function()  -- helper.run checks that no fd is left open
      dir = assert(fs.mkdtemp("/tmp/corio-fs-XXXXXX"))
      left = assert(fs.open(dir .. "/a", "w"))
      assert(fs.open(dir .. "/b", "w"))  -- dropped: collected below
      collectgarbage()
      collectgarbage()
    end)
    assert.is_true(left:is_closed())
    assert.same({ nil, "closed" }, { left:read() })
  end)

  it("serves tasks sharing a File one operation at a time, in order", function()
    in_dir(function(dir)
      local p = dir .. "/shared"
      local lines = {}
      for i = 1, 500 do lines[i] = "line " .. i end
      assert(fs.write_file(p, table.concat(lines, "\n") .. "\n"))
      local f <close> = assert(fs.open(p))
      local got, tasks = {}, {}
      for k = 1, 4 do
        tasks[k] = corio.spawn(function()
          local mine = 0
          while true do
            local line = f:read_line()
            if not line then return mine end
            got[#got + 1] = line
            mine = mine + 1
          end
        end)
      end
      local total = 0
      for k = 1, 4 do total = total + tasks[k]:await() end
      assert.equals(500, total)
      table.sort(got, function(a, b) return tonumber(a:match("%d+")) < tonumber(b:match("%d+")) end)
      assert.same(lines, got)
      -- writers from many tasks: each write lands whole
      local w <close> = assert(fs.open(dir .. "/out", "a"))
      local writers = {}
      for k = 1, 50 do
        writers[k] = corio.spawn(function() assert(w:write(("%02d"):format(k), "\n")) end)
      end
      for k = 1, 50 do writers[k]:await() end
      local seen = {}
      for line in assert(fs.read_file(dir .. "/out")):gmatch("[^\n]+") do seen[#seen + 1] = tonumber(line) end
      table.sort(seen)
      assert.equals(50, #seen)
      for k = 1, 50 do assert.equals(k, seen[k]) end
      -- a task waiting its turn sees the file closed by the one before
      -- (each task is seen to start before the next is spawned: tasks made
      -- ready together may start in any order)
      local r = assert(fs.open(p))
      local started = 0
      local function start(fn)
        local n = started
        local t = corio.spawn(function() started = started + 1; return fn() end)
        while started == n do corio.sleep(0) end
        return t
      end
      local first = start(function() return r:read_all() end)
      local closer = start(function() return r:close() end)
      local late = start(function() return r:read() end)
      assert.equals(#table.concat(lines, "\n") + 1, #first:await())
      assert.is_true(closer:await())
      assert.same({ nil, "closed" }, { late:await() })
    end)
  end)
end)
