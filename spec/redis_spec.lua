-- Debian's lua-redis, unchanged, over corio.socket.install() against a
-- real redis-server of the spec's own (a free port, a temporary directory,
-- always stopped): commands, pipelines and pub/sub from 100 tasks at once,
-- a socket timeout, and the cancellation of a blocked BLPOP.
local corio = require "corio"
local helper = require "helper"
local socket = corio.socket

local redis = helper.lua_redis()
local port, stop
local describe_redis = redis and describe or pending

-- the number of clients connected to the server, asked over c
local function client_count(c)
  local list = c:raw_cmd("CLIENT LIST")
  local n = 0
  for _ in list:gmatch("[^\n]+") do n = n + 1 end
  return n
end

local function connect(opts)
  opts = opts or {}
  opts.host, opts.port = "127.0.0.1", port
  return redis.connect(opts)
end

describe_redis("lua-redis over corio.socket", function()
  lazy_setup(function()
    port, stop = helper.redis_server()
    assert(port, stop)
    socket.install()
  end)

  lazy_teardown(function()
    socket.uninstall()
    if stop then stop() end
  end)

  it("runs SET, GET, INCR and pipelines from 100 tasks at once", function()
    helper.run(function()
      local admin = connect()
      admin:flushdb()
      local fns = {}
      for i = 1, 100 do
        fns[i] = function()
          local c = connect()
          assert.is_true(c:set("key:" .. i, "value " .. i))
          assert.equals("value " .. i, c:get("key:" .. i))
          for _ = 1, 5 do c:incr("counter") end
          -- lua-redis's pipeline breaks on Lua 5.3+ (table.insert with a
          -- hole) unless every command in it has a reply parser: these do
          local replies = c:pipeline(function(p)
            for j = 1, 10 do p:hset("hash:" .. i, "f" .. j, j) end
            p:hgetall("hash:" .. i)
            p:exists("hash:" .. i)
            p:ping()
          end)
          c:quit()
          assert.equals(13, #replies)
          assert.is_true(replies[1] and replies[12] and replies[13])
          local n = 0
          for _ in pairs(replies[11]) do n = n + 1 end
          assert.equals("7", replies[11].f7)
          return n
        end
      end
      local lengths = corio.gather(fns)
      for i = 1, 100 do assert.equals(10, lengths[i]) end
      assert.equals("500", admin:get("counter"))
      assert.equals("value 42", admin:get("key:42"))
      admin:quit()
    end)
  end)

  it("delivers pub/sub messages: 50 subscribers and 50 publishers", function()
    helper.run(function()
      local subscribed, all_in = 0, corio.event()
      local tasks = {}
      for i = 1, 50 do
        tasks[#tasks + 1] = corio.spawn(function()
          local c = connect()
          local got = {}
          for msg, abort in c:pubsub({ subscribe = { "news" } }) do
            if msg.kind == "subscribe" then
              subscribed = subscribed + 1
              if subscribed == 50 then all_in:set() end
            elseif msg.kind == "message" then
              got[#got + 1] = msg.payload
              if #got == 50 then abort() end
            end
          end
          c:quit()
          table.sort(got)
          return i, table.concat(got, ",")
        end)
      end
      all_in:wait()
      for i = 1, 50 do
        tasks[#tasks + 1] = corio.spawn(function()
          local c = connect()
          local receivers = c:publish("news", ("m%02d"):format(i))
          c:quit()
          return receivers
        end)
      end
      local want = {}
      for i = 1, 50 do want[i] = ("m%02d"):format(i) end
      want = table.concat(want, ",")
      for i = 1, 50 do
        local _, got = tasks[i]:await()
        assert.equals(want, got)
      end
      for i = 51, 100 do assert.equals(50, tasks[i]:await()) end
    end)
  end)

  it("a socket timeout ends a blocked command with lua-redis's error", function()
    helper.run(function()
      local c = connect({ timeout = 0.1 })
      local ok, err = pcall(c.blpop, c, "never:filled", 0)
      assert.is_false(ok)
      assert.matches("connection error: timeout", tostring(err))
    end)
  end)

  it("cancelling a blocked BLPOP closes its connection and leaves the server unharmed", function()
    helper.run(function()
      local admin = connect()
      admin:del("jobs")
      local before = client_count(admin)
      local blocked_client
      local blocked = corio.spawn(function()
        blocked_client = connect()
        return blocked_client:blpop("jobs", 0)
      end)
      -- wait (bounded) until the server sees the extra client blocked
      for _ = 1, 500 do
        if client_count(admin) == before + 1 then break end
        corio.sleep(0.01)
      end
      assert.equals(before + 1, client_count(admin))
      corio.sleep(0.05)
      blocked:cancel()
      helper.cancelled_await(blocked)
      -- its socket is closed: the protocol state was unknown
      local sock = blocked_client.network.socket
      local r, e = sock:receive("*l")
      assert.same({ nil, "closed" }, { r, e })
      assert.error_matches(function() blocked_client:ping() end, "closed")
      -- the server drops the connection, and nothing was taken from the list
      for _ = 1, 500 do
        if client_count(admin) == before then break end
        corio.sleep(0.01)
      end
      assert.equals(before, client_count(admin))
      assert.equals(1, admin:rpush("jobs", "job 1"))
      assert.equals(1, admin:llen("jobs"))
      local c = connect()
      assert.same({ "jobs", "job 1" }, c:blpop("jobs", 1))
      assert.is_true(c:ping())
      c:quit()
      admin:quit()
    end)
  end)
end)
