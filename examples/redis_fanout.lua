-- 100 tasks talk to Redis through Debian's lua-redis client, unchanged:
-- corio.socket.install() makes its require "socket" return corio's
-- LuaSocket-shaped sockets, so each client waits without blocking the
-- others. The same work is then done one client after another.
--
--   corio examples/redis_fanout.lua PORT [TASKS]
--
-- PORT: a redis-server on 127.0.0.1 that may be flushed (spec/examples.sh
-- starts one of its own in a temporary directory).
local corio = require "corio"

local port = tonumber(arg[1])
local ntasks = tonumber(arg[2]) or 100
if not port then
  io.stderr:write("usage: corio examples/redis_fanout.lua PORT [TASKS]\n")
  os.exit(2)
end

-- lua-redis is pure Lua, packaged by Debian for Lua 5.1 to 5.3: its
-- directory goes on the path (after everything else)
package.path = package.path .. ";/usr/share/lua/5.3/?.lua;/usr/share/lua/5.1/?.lua"
corio.socket.install()
local redis = require "redis"

local function connect(timeout)
  -- lua-redis passes timeout to socket:settimeout(timeout, "t")
  return redis.connect({ host = "127.0.0.1", port = port, timeout = timeout })
end

-- one client's work: a few commands, a pipeline, and a short server-side
-- wait (BLPOP on an empty list for 10 ms; redis-server --hz 100 keeps it
-- near that); returns how many commands it sent
local function work(i)
  local c = connect(2)
  assert(c:set("user:" .. i, "name " .. i))
  assert(c:get("user:" .. i) == "name " .. i)
  c:incr("counter")
  c:incr("counter")
  -- 20 HSETs and an HGETALL in one write, then the 21 replies
  local replies = c:pipeline(function(p)
    for j = 1, 20 do p:hset("hash:" .. i, "f" .. j, j) end
    p:hgetall("hash:" .. i)
  end)
  assert(#replies == 21 and replies[21].f20 == "20", "pipeline replies")
  assert(c:blpop("empty:" .. i, 0.01) == nil)
  c:quit()
  c.network.socket:close()
  return 4 + 21 + 2
end

local function flush()
  local c = connect(2)
  c:flushdb()
  c:quit()
  c.network.socket:close()
end

local function counter()
  local c = connect(2)
  local n = c:get("counter")
  c:quit()
  c.network.socket:close()
  return tonumber(n)
end

print(("%d tasks against redis at 127.0.0.1:%d"):format(ntasks, port))

flush()
local t0 = corio.now()
local jobs = {}
for i = 1, ntasks do jobs[i] = function() return work(i) end end
local counts = corio.gather(jobs)
local concurrent = corio.now() - t0
local commands = 0
for _, n in ipairs(counts) do commands = commands + n end
print(("concurrent: %d clients, %d commands in %.3f s"):format(ntasks, commands, concurrent))
print(("counter: %d (expected %d)"):format(counter(), 2 * ntasks))

flush()
t0 = corio.now()
commands = 0
for i = 1, ntasks do commands = commands + work(i) end
local sequential = corio.now() - t0
print(("sequential: %d clients, %d commands in %.3f s"):format(ntasks, commands, sequential))
print(("counter: %d (expected %d)"):format(counter(), 2 * ntasks))
print(("speedup: %.1fx"):format(sequential / concurrent))

-- a socket timeout: BLPOP with no server timeout on an empty list, from a
-- client whose socket gives up after 50 ms
local c = connect(0.05)
t0 = corio.now()
local ok, err = pcall(c.blpop, c, "never:filled", 0)
print(("timeout: the blocked BLPOP gave up after %.2f s (%s): %s"):format(
  corio.now() - t0, ok and "no error" or "an error", tostring(err)))
c.network.socket:close()
