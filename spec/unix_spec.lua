-- Unix domain sockets: corio.connect_unix, corio.serve_unix (DESIGN.md
-- "I/O"). Every socket lives in a fresh temporary directory.
local corio = require "corio"
local helper = require "helper"

local dirs = {}

-- a new empty directory; removed with what is in it after each test
local function tempdir()
  local p = assert(io.popen("mktemp -d"))
  local dir = p:read("l")
  p:close()
  dirs[#dirs + 1] = dir
  return dir
end

local function cleanup()
  for i = #dirs, 1, -1 do
    os.execute("rm -rf '" .. dirs[i] .. "'")
    dirs[i] = nil
  end
end

local function exists(path)
  return os.execute("test -e '" .. path .. "'") == true
end

local checksum = helper.checksum

describe("corio.serve_unix and corio.connect_unix", function()
  after_each(cleanup)

  it("echo over a Unix socket, with addresses and tostring", function()
    local path = tempdir() .. "/echo.sock"
    helper.run(function()
      local srv = assert(corio.serve_unix(path, function(s)
        assert.equals(path, (s:address()))
        assert.matches("^unix stream " .. path:gsub("%p", "%%%0") .. " %(open%)$", tostring(s))
        while true do
          local line = s:read_line()
          if not line then break end
          s:write(line, "\n")
        end
      end))
      assert.equals(path, srv:address())
      assert.matches("^unix server .* %(0 connections%)$", tostring(srv))
      assert.is_true(exists(path))
      local c = assert(corio.connect_unix(path))
      assert.equals(path, c:peer())
      assert.equals("", c:address())  -- the client's end has no name
      assert.matches("^unix stream " .. path:gsub("%p", "%%%0") .. " %(open%)$", tostring(c))
      assert.is_true(c:write("hello\n", "world ", 42, "\n"))
      assert.equals("hello", c:read_line())
      assert.equals("world 42", c:read_line())
      -- TCP-only options: an operational answer, not an error
      assert.same({ nil, "ENOTSUP: operation not supported on socket", "ENOTSUP" },
                  { c:set_nodelay(true) })
      assert.equals("ENOTSUP", select(3, c:set_keepalive(true)))
      c:shutdown()
      assert.is_nil(c:read_line())
      assert.is_true(c:close())
      assert.equals("unix stream (closed)", tostring(c))
      assert.same({ nil, "closed" }, { c:read() })
      srv:close()
      assert.equals("unix server (closed)", tostring(srv))
      srv:wait_closed()
      assert.is_false(exists(path))  -- the server removed its socket file
    end)
  end)

  it("returns nil, message, code: ENOENT, ECONNREFUSED, EADDRINUSE, ENAMETOOLONG", function()
    local dir = tempdir()
    helper.run(function()
      local s, msg, code = corio.connect_unix(dir .. "/nobody.sock")
      assert.is_nil(s)
      assert.equals("ENOENT", code)
      assert.equals("ENOENT: no such file or directory", msg)
      -- a socket file nobody listens on: a server's, left by a process
      -- that did not close it (here, a hard link kept after the close)
      local path = dir .. "/stale.sock"
      local srv = assert(corio.serve_unix(path, function() end))
      assert.is_true(os.execute("ln '" .. path .. "' '" .. dir .. "/kept.sock'"))
      srv:close()
      srv:wait_closed()
      local s2, _, code2 = corio.connect_unix(dir .. "/kept.sock")
      assert.is_nil(s2)
      assert.equals("ECONNREFUSED", code2)
      -- an existing file at the path: EADDRINUSE, and the file is left alone
      local srv2, msg3, code3 = corio.serve_unix(dir .. "/kept.sock", function() end)
      assert.is_nil(srv2)
      assert.equals("EADDRINUSE", code3)
      assert.equals("EADDRINUSE: address already in use", msg3)
      assert.is_true(exists(dir .. "/kept.sock"))
      local live = assert(corio.serve_unix(path, function() end))
      assert.equals("EADDRINUSE", select(3, corio.serve_unix(path, function() end)))
      live:close()
      -- longer than a socket address holds
      local long = dir .. "/" .. string.rep("x", 200)
      assert.equals("ENAMETOOLONG", select(3, corio.connect_unix(long)))
      assert.equals("ENAMETOOLONG", select(3, corio.serve_unix(long, function() end)))
    end)
  end)

  it("raises on misuse", function()
    local dir = tempdir()
    assert.has_error(function() corio.serve_unix(dir .. "/x.sock", function() end) end,
                     "corio.serve_unix: no running loop (start one with corio.run)")
    helper.run(function()
      assert.has_error(function() corio.connect_unix() end)
      assert.has_error(function() corio.connect_unix("") end)
      assert.has_error(function() corio.connect_unix("a\0b") end)
      assert.has_error(function() corio.connect_unix(dir .. "/x.sock", { timeout = -1 }) end)
      assert.has_error(function() corio.serve_unix(dir .. "/x.sock") end)
      assert.has_error(function() corio.serve_unix(dir .. "/x.sock", function() end, 5) end)
    end)
  end)

  it("connect honours an enclosing timeout already due", function()
    local path = tempdir() .. "/t.sock"
    helper.run(function()
      local srv = assert(corio.serve_unix(path, function() end))
      local res = table.pack(pcall(function()
        local _t <close> = corio.timeout(0)
        return corio.connect_unix(path)
      end))
      assert.is_false(res[1])
      assert.is_true(corio.TimeoutError.is(res[2]), tostring(res[2]))
      local c = assert(corio.connect_unix(path, { timeout = 5 }))
      c:close()
      srv:close()
    end)
  end)

  it("read limits and close flushes, as for TCP", function()
    local path = tempdir() .. "/l.sock"
    helper.run(function()
      local result = corio.future()
      local data = string.rep("0123456789abcdef", 262144)  -- 4 MiB
      local srv = assert(corio.serve_unix(path, function(s)
        local line, msg = s:read_line()
        assert.is_nil(line)
        assert.equals("limit exceeded", msg)
        assert.equals(string.rep("a", 100), s:read_exactly(100))
        assert.equals("", s:read_line())
        corio.sleep(0.05)  -- let the client queue up and close first
        local all = s:read_all()
        result:set_result(#all, checksum(all))
      end, { limit = 64 }))
      local c = assert(corio.connect_unix(path, { high_water = 16384 }))
      c:write(string.rep("a", 100), "\n")
      c:write(data)
      assert.is_true(c:close())
      local n, sum = result:await()
      assert.equals(#data, n)
      assert.equals(checksum(data), sum)
      srv:close()
      srv:wait_closed()
    end)
  end)

  it("serves 100 concurrent clients", function()
    local path = tempdir() .. "/many.sock"
    helper.run(function()
      local live, peak = 0, 0
      local srv = assert(corio.serve_unix(path, function(s)
        live = live + 1
        peak = math.max(peak, live)
        local line = s:read_line()
        corio.sleep(0.05)
        s:write(line, "!\n")
        live = live - 1
      end, { backlog = 128 }))
      local fns = {}
      for i = 1, 100 do
        fns[i] = function()
          local c = assert(corio.connect_unix(path))
          c:write("client ", i, "\n")
          local r = c:read_line()
          c:close()
          return r
        end
      end
      local results = corio.gather(fns)
      for i = 1, 100 do assert.equals("client " .. i .. "!", results[i]) end
      assert.is_true(peak > 50)
      srv:close()
      srv:wait_closed()
    end)
  end)

  it("close stops accepting; close{cancel = true} cancels live handlers", function()
    local path = tempdir() .. "/c.sock"
    helper.run(function()
      local cancelled = 0
      local srv = assert(corio.serve_unix(path, function(s)
        local ok, err = pcall(s.read, s)
        if not ok and corio.is_cancelled(err) then cancelled = cancelled + 1 end
        error(err, 0)
      end))
      local clients = {}
      for i = 1, 3 do clients[i] = assert(corio.connect_unix(path)) end
      corio.sleep(0.02)
      srv:close { cancel = true }
      assert.equals("ENOENT", select(3, corio.connect_unix(path)))
      srv:wait_closed()
      assert.equals(3, cancelled)
      for i = 1, 3 do
        assert.is_nil(clients[i]:read())
        clients[i]:close()
      end
    end)
  end)

  it("is closed, with its streams and socket file, when the run ends", function()
    local path = tempdir() .. "/end.sock"
    helper.run(function()
      assert(corio.serve_unix(path, function(s)
        s:write("hello\n")
        s:read()  -- until the run ends
      end))
      local c = assert(corio.connect_unix(path))
      assert.equals("hello", c:read_line())
    end)
    assert.is_false(exists(path))
  end)
end)
