-- corio.fs on paths (DESIGN.md "I/O"): whole-file reads and writes, stat,
-- directories, links, permissions, and each function's errors. The File
-- has fs_file_spec.lua, cancellation fs_cancel_spec.lua, watch
-- fs_watch_spec.lua.
local corio = require "corio"
local helper = require "helper"
local fs = corio.fs

local is_root = io.popen("id -u"):read("l") == "0"

local in_dir = helper.in_dir

-- the error triple's code, checking its shape: nil, "CODE: message: path", "CODE"
local function code_of(path, ...)
  local v, msg, code = ...
  assert.is_nil(v)
  assert.equals("string", type(code))
  assert.equals(code .. ":", msg:sub(1, #code + 1))
  if path then assert.truthy(msg:find(path, 1, true), msg) end
  return code
end

describe("corio.fs whole files", function()
  it("reads to the end what has no size or outgrows it: /proc, a FIFO, a growing file", function()
    in_dir(function(dir)
      local status = assert(fs.read_file("/proc/self/status"))  -- stat says size 0
      assert.truthy(status:find("^Name:"))
      assert.truthy(status:find("\nPid:"))
      local fifo = dir .. "/fifo"
      assert.is_true(os.execute("mkfifo '" .. fifo .. "'"))
      local writer = corio.spawn(function()
        -- a child writes 300,000 bytes through the FIFO (more than a pipe holds)
        local p = assert(corio.exec({ "sh", "-c", "head -c 300000 /dev/zero > '" .. fifo .. "'" }))
        return p:wait()
      end)
      assert.equals(("\0"):rep(300000), fs.read_file(fifo))
      assert.equals(0, writer:await())
      -- a file that grows while it is read: all of it, up to the end the read found
      local p = dir .. "/grows"
      assert.is_true(fs.write_file(p, ("a"):rep(1000)))
      local grower = corio.spawn(function()
        for _ = 1, 50 do assert.is_true(fs.append_file(p, ("b"):rep(100000))) end
      end)
      local seen = 1000
      while not grower:done() do
        local data = fs.read_file(p)
        assert.truthy(#data >= seen, "a read_file returned less than an earlier one")
        assert.truthy(data:find("^a+b*$"))
        seen = #data
      end
      grower:await()
      assert.equals(1000 + 50 * 100000, #fs.read_file(p))
    end)
  end)

  it("round-trips read_file, write_file and append_file, binary-safe", function()
    in_dir(function(dir)
      local p = dir .. "/a.bin"
      local data = {}
      for i = 0, 255 do data[#data + 1] = string.char(i) end
      data = table.concat(data):rep(1000)  -- 256,000 bytes, every byte value
      assert.is_true(fs.write_file(p, data))
      assert.equals(data, fs.read_file(p))
      assert.is_true(fs.append_file(p, "tail"))
      assert.equals(data .. "tail", fs.read_file(p))
      assert.is_true(fs.write_file(p, ""))
      assert.equals("", fs.read_file(p))
      assert.is_true(fs.append_file(dir .. "/new", 42))  -- created; numbers are written as text
      assert.equals("42", fs.read_file(dir .. "/new"))
    end)
  end)

  it("write_file atomic replaces the file whole and leaves no temporary file", function()
    in_dir(function(dir)
      local p = dir .. "/conf"
      assert.is_true(fs.write_file(p, "old"))
      assert.is_true(fs.write_file(p, "new content", { atomic = true }))
      assert.equals("new content", fs.read_file(p))
      local names = {}
      for name in assert(fs.scandir(dir)) do names[#names + 1] = name end
      assert.same({ "conf" }, names)
      -- a failing atomic write (the directory is missing) leaves nothing either
      assert.equals("ENOENT", code_of(nil, fs.write_file(dir .. "/no/conf", "x", { atomic = true })))
      -- perm applies to the new file
      assert.is_true(fs.write_file(dir .. "/private", "s", { atomic = true, perm = tonumber("600", 8) }))
      assert.equals(tonumber("600", 8), fs.stat(dir .. "/private").perm)
    end)
  end)

  it("gives nil, msg, code for a missing file, a directory, a missing parent", function()
    in_dir(function(dir)
      assert.equals("ENOENT", code_of(dir .. "/none", fs.read_file(dir .. "/none")))
      assert.equals("EISDIR", code_of(dir, fs.read_file(dir)))
      assert.equals("EISDIR", code_of(dir, fs.write_file(dir, "x")))
      assert.equals("ENOENT", code_of(dir .. "/a/b", fs.write_file(dir .. "/a/b", "x")))
      assert.is_true(fs.write_file(dir .. "/f", "x"))
      assert.equals("ENOTDIR", code_of(nil, fs.read_file(dir .. "/f/g")))
      assert.equals("ENOTDIR", code_of(nil, fs.append_file(dir .. "/f/g", "x")))
    end)
  end)

  it("gives EACCES and EPERM where permissions forbid (as root: files the kernel refuses to root too)", function()
    in_dir(function(dir)
      if not is_root then
        local p = dir .. "/secret"
        assert.is_true(fs.write_file(p, "x", { perm = 0 }))
        assert.equals("EACCES", code_of(p, fs.read_file(p)))
        assert.equals("EACCES", code_of(p, fs.open(p)))
        assert.equals("EACCES", code_of(nil, fs.write_file(p, "y")))
        return
      end
      -- root passes every permission check of an ordinary file system: sysfs
      -- refuses to write a read-only attribute and procfs to remove its files
      if fs.stat("/sys/kernel/notes") then
        assert.equals("EACCES", code_of("/sys/kernel/notes", fs.write_file("/sys/kernel/notes", "x")))
        assert.equals("EACCES", code_of(nil, fs.open("/sys/kernel/notes", "w")))
      end
      assert.equals("EPERM", code_of("/proc/version", fs.unlink("/proc/version")))
    end)
  end)

  it("raises on misuse, naming the function", function()
    helper.run(function()
      assert.has_error(function() fs.read_file(nil) end,
        "corio.fs.read_file: bad argument #1 (a path string expected, got nil)")
      assert.has_error(function() fs.write_file("/tmp/x", {}) end,
        "corio.fs.write_file: bad argument #2 (a string expected, got table)")
      assert.has_error(function() fs.write_file("/tmp/x", "", 5) end,
        "corio.fs.write_file: bad argument #3 (an options table expected, got number)")
      assert.has_error(function() fs.append_file("/tmp/x", "", { atomic = true }) end,
        "corio.fs.append_file: option 'atomic' is for write_file")
      assert.has_error(function() fs.stat("a\0b") end,
        "corio.fs.stat: bad argument #1 (the path contains a zero byte)")
      assert.has_error(function() fs.mkdtemp("/tmp/nox") end,
        "corio.fs.mkdtemp: the template must end in XXXXXX")
      assert.has_error(function() fs.chmod("/tmp/x") end,
        "corio.fs.chmod: bad argument #2 (permission bits expected)")
      assert.has_error(function() fs.chmod("/tmp/x", 1.5) end)
      assert.has_error(function() fs.chmod("/tmp/x", 99999) end,
        "corio.fs.chmod: permission bits out of range (0 to 0o7777)")
      assert.has_error(function() fs.access("/tmp", "q") end,
        "corio.fs.access: bad mode (letters of \"rwx\" expected)")
      assert.has_error(function() fs.open("/tmp/x", "z") end,
        "corio.fs.open: bad mode 'z' (\"r\", \"w\", \"a\" or \"x\", with \"+\" and \"b\")")
      assert.has_error(function() fs.open("/tmp/x", "r", { limit = 0 }) end,
        "corio.fs.open: option 'limit': a positive integer expected")
      assert.has_error(function() fs.utime("/tmp/x", "now") end,
        "corio.fs.utime: bad argument #2 (seconds expected, got string)")
    end)
    -- outside a task
    assert.has_error(function() fs.stat("/") end,
      "corio.fs.stat: not inside a task (start one with corio.run)")
    assert.has_error(function() fs.read_file("/etc/hostname") end,
      "corio.fs.read_file: not inside a task (start one with corio.run)")
    assert.has_error(function() fs.watch("/tmp") end,
      "corio.fs.watch: no running loop (start one with corio.run)")
  end)
end)

describe("corio.fs metadata", function()
  it("stat and lstat give type, size, perm and times; errors name the path", function()
    in_dir(function(dir)
      local p = dir .. "/f"
      assert.is_true(fs.write_file(p, "12345"))
      local st = assert(fs.stat(p))
      assert.equals("file", st.type)
      assert.equals(5, st.size)
      assert.equals(1, st.nlink)
      assert.equals("number", type(st.mtime))
      assert.equals(st.perm, st.mode & tonumber("7777", 8))
      assert.equals("directory", fs.stat(dir).type)
      assert.is_true(fs.symlink(p, dir .. "/l"))
      assert.equals("link", fs.lstat(dir .. "/l").type)
      assert.equals("file", fs.stat(dir .. "/l").type)
      assert.equals("ENOENT", code_of(dir .. "/none", fs.stat(dir .. "/none")))
      assert.equals("ENOENT", code_of(nil, fs.lstat(dir .. "/none")))
      assert.equals("ENOTDIR", code_of(nil, fs.stat(p .. "/x")))
    end)
  end)

  it("chmod, utime and access", function()
    in_dir(function(dir)
      local p = dir .. "/f"
      assert.is_true(fs.write_file(p, ""))
      assert.is_true(fs.chmod(p, tonumber("640", 8)))
      assert.equals(tonumber("640", 8), fs.stat(p).perm)
      assert.is_true(fs.utime(p, 1000, 2000.5))
      local st = fs.stat(p)
      assert.equals(1000, st.atime)
      assert.equals(2000.5, st.mtime)
      assert.is_true(fs.utime(p))  -- now
      assert.truthy(math.abs(fs.stat(p).mtime - os.time()) < 600)
      assert.is_true(fs.access(p))
      assert.is_true(fs.access(p, "rw"))
      assert.equals("ENOENT", code_of(nil, fs.access(dir .. "/none")))
      assert.equals("ENOENT", code_of(nil, fs.chmod(dir .. "/none", 420)))
      assert.equals("ENOENT", code_of(nil, fs.utime(dir .. "/none", 1, 1)))
      if not is_root then
        assert.is_true(fs.chmod(p, 0))
        assert.equals("EACCES", code_of(nil, fs.access(p, "r")))
      end
    end)
  end)
end)

describe("corio.fs directories", function()
  it("mkdir, with parents; rmdir; their errors", function()
    in_dir(function(dir)
      assert.is_true(fs.mkdir(dir .. "/a"))
      assert.equals("EEXIST", code_of(dir .. "/a", fs.mkdir(dir .. "/a")))
      assert.equals("ENOENT", code_of(nil, fs.mkdir(dir .. "/x/y")))
      assert.is_true(fs.mkdir(dir .. "/x/y/z/", { parents = true }))
      assert.equals("directory", fs.stat(dir .. "/x/y/z").type)
      assert.is_true(fs.mkdir(dir .. "/x/y/z", { parents = true }))  -- exists: fine
      assert.is_true(fs.mkdir(dir .. "/a", { parents = true, perm = tonumber("700", 8) }))
      assert.is_true(fs.mkdir(dir .. "/p", { perm = tonumber("700", 8) }))
      assert.equals(tonumber("700", 8), fs.stat(dir .. "/p").perm)
      assert.is_true(fs.write_file(dir .. "/f", ""))
      assert.equals("EEXIST", code_of(nil, fs.mkdir(dir .. "/f", { parents = true })))
      assert.equals("ENOTDIR", code_of(nil, fs.mkdir(dir .. "/f/g/h", { parents = true })))
      assert.equals("ENOTEMPTY", code_of(dir .. "/x", fs.rmdir(dir .. "/x")))
      assert.equals("ENOTDIR", code_of(nil, fs.rmdir(dir .. "/f")))
      assert.is_true(fs.rmdir(dir .. "/x/y/z"))
      assert.equals("ENOENT", code_of(nil, fs.rmdir(dir .. "/x/y/z")))
      assert.has_error(function() fs.mkdir(dir .. "/q", 5) end,
        "corio.fs.mkdir: bad argument #2 (an options table expected, got number)")
    end)
  end)

  it("scandir yields each name with its type", function()
    in_dir(function(dir)
      assert.is_true(fs.write_file(dir .. "/file", ""))
      assert.is_true(fs.mkdir(dir .. "/sub"))
      assert.is_true(fs.symlink("file", dir .. "/link"))
      local seen = {}
      for name, t in assert(fs.scandir(dir)) do seen[name] = t end
      assert.same({ file = "file", sub = "directory", link = "link" }, seen)
      for _ in assert(fs.scandir(dir .. "/sub")) do error("empty directory") end
      assert.equals("ENOENT", code_of(nil, fs.scandir(dir .. "/none")))
      assert.equals("ENOTDIR", code_of(nil, fs.scandir(dir .. "/file")))
      -- an iterator left half-way is collected without leaking
      local it = assert(fs.scandir(dir))
      it()
      it = nil  -- luacheck: ignore
      collectgarbage()
    end)
  end)

  it("mkdtemp makes a new private directory each time", function()
    in_dir(function(dir)
      local a = assert(fs.mkdtemp(dir .. "/t-XXXXXX"))
      local b = assert(fs.mkdtemp(dir .. "/t-XXXXXX"))
      assert.are_not.equal(a, b)
      assert.equals("directory", fs.stat(a).type)
      assert.equals(tonumber("700", 8), fs.stat(a).perm)
      assert.equals("ENOENT", code_of(nil, fs.mkdtemp(dir .. "/none/t-XXXXXX")))
    end)
  end)
end)

describe("corio.fs names", function()
  it("unlink, rename and copyfile, with their errors", function()
    in_dir(function(dir)
      local a, b, c = dir .. "/a", dir .. "/b", dir .. "/c"
      assert.is_true(fs.write_file(a, "data"))
      assert.is_true(fs.rename(a, b))
      assert.equals("ENOENT", code_of(nil, fs.stat(a)))
      assert.equals("data", fs.read_file(b))
      local _, msg, code = fs.rename(a, c)
      assert.equals("ENOENT", code)
      assert.equals("ENOENT: no such file or directory: " .. a .. " -> " .. c, msg)
      assert.is_true(fs.copyfile(b, c))
      assert.equals("data", fs.read_file(c))
      assert.is_true(fs.write_file(c, "other"))
      assert.equals("EEXIST", code_of(nil, fs.copyfile(b, c, { excl = true })))
      assert.is_true(fs.copyfile(b, c))  -- replaces
      assert.equals("data", fs.read_file(c))
      assert.equals("ENOENT", code_of(nil, fs.copyfile(a, c)))
      assert.is_true(fs.unlink(b))
      assert.equals("ENOENT", code_of(b, fs.unlink(b)))
      assert.equals("EISDIR", code_of(nil, fs.unlink(dir)))
      assert.is_true(fs.mkdir(dir .. "/d"))
      assert.equals("EISDIR", code_of(nil, fs.rename(c, dir .. "/d")))
    end)
  end)

  it("symlink, readlink and realpath", function()
    in_dir(function(dir)
      local real = assert(fs.realpath(dir))
      assert.is_true(fs.write_file(dir .. "/t", ""))
      assert.is_true(fs.symlink("t", dir .. "/l"))
      assert.equals("t", fs.readlink(dir .. "/l"))
      assert.equals(real .. "/t", fs.realpath(dir .. "/l"))
      assert.equals(real .. "/t", fs.realpath(dir .. "/./l"))
      assert.equals("EEXIST", code_of(nil, fs.symlink("t", dir .. "/l")))
      assert.equals("EINVAL", code_of(nil, fs.readlink(dir .. "/t")))
      assert.equals("ENOENT", code_of(nil, fs.readlink(dir .. "/none")))
      assert.is_true(fs.symlink("nowhere", dir .. "/dangling"))
      assert.equals("ENOENT", code_of(nil, fs.realpath(dir .. "/dangling")))
    end)
  end)

  it("lets many tasks work at once (every result is theirs)", function()
    in_dir(function(dir)
      local tasks = {}
      for i = 1, 200 do
        tasks[i] = corio.spawn(function()
          local p = dir .. "/f" .. i
          assert(fs.write_file(p, ("x"):rep(i)))
          return fs.stat(p).size + #assert(fs.read_file(p))
        end)
      end
      for i = 1, 200 do assert.equals(2 * i, tasks[i]:await()) end
    end)
  end)
end)
