-- corio.fs.watch: a receiver of the changes under a directory or on a file
-- (uv_fs_event), with wait(), close(), iteration and <close>.
local corio = require "corio"
local helper = require "helper"
local fs = corio.fs

local in_dir = helper.in_dir

-- wait on w until an event (name, kind) comes; every event seen is counted in seen
local function wait_for(w, name, kind, seen)
  return corio.timeout(10, function()
    while true do
      local n, k = w:wait()
      assert(n, k)
      seen[#seen + 1] = n .. " " .. k
      if n == name and k == kind then return true end
    end
  end)
end

describe("corio.fs.watch", function()
  it("sees a create and a rename in a directory", function()
    in_dir(function(dir)
      local w <close> = assert(fs.watch(dir))
      assert.equals("watcher " .. dir .. " (open)", tostring(w))
      local seen = {}
      assert(fs.write_file(dir .. "/new", "x"))
      assert.is_true(wait_for(w, "new", "rename", seen))  -- a name appeared
      assert(fs.rename(dir .. "/new", dir .. "/moved"))
      assert.is_true(wait_for(w, "moved", "rename", seen))
      assert.truthy(helper.contains(seen, "new rename"))
      -- a change of content
      assert(fs.append_file(dir .. "/moved", "more"))
      assert.is_true(wait_for(w, "moved", "change", seen))
    end)
  end)

  it("watches a file; events wait in the queue until taken", function()
    in_dir(function(dir)
      local p = dir .. "/f"
      assert(fs.write_file(p, ""))
      local w = assert(fs.watch(p))
      assert(fs.append_file(p, "a"))
      corio.sleep(0.05)  -- nobody waits: the event is queued
      local name, kind = corio.timeout(10, w.wait, w)
      assert.equals("f", name)
      assert.equals("change", kind)
      assert.equals(0, w:dropped())
      assert.is_true(w:close())
      assert.is_true(w:close())
      assert.equals("watcher (closed)", tostring(w))
    end)
  end)

  it("iterates until another task closes it; wait after close is nil", function()
    in_dir(function(dir)
      local w = assert(fs.watch(dir))
      local got = 0
      local reader = corio.spawn(function()
        for _ in w do got = got + 1 end
        return "ended"
      end)
      assert(fs.write_file(dir .. "/a", "x"))
      corio.timeout(10, function() while got == 0 do corio.sleep(0.01) end end)
      w:close()
      assert.equals("ended", reader:await())
      assert.is_nil(w:wait())
    end)
  end)

  it("gives nil, msg, code for a missing path and raises on misuse", function()
    in_dir(function(dir)
      local _, msg, code = fs.watch(dir .. "/none")
      assert.equals("ENOENT", code)
      assert.equals("ENOENT: no such file or directory: " .. dir .. "/none", msg)
      assert.has_error(function() fs.watch(dir, 5) end,
        "corio.fs.watch: bad argument #2 (an options table expected, got number)")
      local w <close> = assert(fs.watch(dir))
      local t = corio.spawn(w.wait, w)
      corio.sleep(0)
      assert.has_error(function() w:wait() end, "watcher:wait: another task is already waiting")
      assert.has_error(function() w.wait(1) end,
        "bad self to 'watcher:wait' (Watcher expected, got number): use watcher:wait(...)")
      t:cancel()
      helper.cancelled_await(t)
      -- a cancelled wait leaves the watcher usable
      assert(fs.write_file(dir .. "/b", ""))
      assert.equals("b", (corio.timeout(10, w.wait, w)))
    end)
  end)

  it("is closed at the run's end; a task left waiting on it is cancelled", function()
    local dir
    finally(function() if dir then os.execute("rm -rf '" .. dir .. "'") end end)
    local w, waiter
    helper.run(function()
      dir = assert(fs.mkdtemp("/tmp/corio-fs-XXXXXX"))
      w = assert(fs.watch(dir))
      waiter = corio.spawn(w.wait, w)
      corio.sleep(0.01)
    end)
    assert.equals("watcher (closed)", tostring(w))
    assert.is_true(waiter:cancelled())
  end)
end)
