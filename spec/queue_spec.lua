local corio = require "corio"
local helper = require "helper"

local settle, cancelled_await = helper.settle, helper.cancelled_await

local function error_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return tostring(err)
end

describe("corio.queue", function()
  it("is FIFO, with qsize, empty, full, maxsize and the nowait forms", function()
    helper.run(function()
      local q = corio.queue(3)
      assert.equal(3, q:maxsize())
      assert.is_true(q:empty())
      q:put("a")
      q:put_nowait("b")
      q:put(nil)                 -- nil is an item like any other
      assert.equal(3, q:qsize())
      assert.equal(3, #q)
      assert.is_true(q:full())
      assert.truthy(error_of(q.put_nowait, q, "d"):find("queue:put_nowait: queue full", 1, true))
      assert.equal("a", q:get())
      assert.equal("b", q:get_nowait())
      assert.is_nil(q:get())
      assert.is_true(q:empty())
      assert.truthy(error_of(q.get_nowait, q):find("queue:get_nowait: queue empty", 1, true))
      assert.truthy(tostring(q):find("corio queue (0 of 3 items", 1, true))
    end)
  end)

  it("is unbounded without a maxsize (or with 0), and grows keeping the order", function()
    helper.run(function()
      for _, q in ipairs { corio.queue(), corio.queue(0) } do
        assert.equal(0, q:maxsize())
        for i = 1, 1000 do q:put(i) end
        assert.is_false(q:full())
        for i = 1, 500 do assert.equal(i, q:get()) end
        for i = 1001, 1100 do q:put(i) end
        for i = 501, 1100 do assert.equal(i, q:get()) end
        assert.is_true(q:empty())
      end
      assert.has_error(function() corio.queue(1.5) end, "bad argument #1 to 'corio.queue' (maxsize must be an integer >= 0, got 1.5)")
    end)
  end)

  it("grows while its items wrap around the end of its storage, and up to a large maxsize", function()
    helper.run(function()
      local q = corio.queue()
      for i = 1, 60 do q:put(i) end
      for i = 1, 50 do assert.equal(i, q:get()) end
      for i = 61, 300 do q:put(i) end      -- wraps, then grows twice
      for i = 51, 300 do assert.equal(i, q:get()) end
      local big = corio.queue(1000)
      for i = 1, 1000 do big:put_nowait(i) end
      assert.is_true(big:full())
      assert.truthy(error_of(big.put_nowait, big, 0):find("queue full", 1, true))
      for i = 1, 1000 do assert.equal(i, big:get_nowait()) end
    end)
  end)

  it("matches a plain list under a random mix of puts and gets (nil items too)", function()
    helper.run(function()
      local rng = 12345
      local function rand(n)
        rng = (rng * 1103515245 + 12345) % 2147483648
        return rng % n
      end
      for _, max in ipairs { 1, 3, 100, 0 } do
        local q, model, head, tail = corio.queue(max), {}, 1, 0
        for step = 1, 5000 do
          local size = tail - head + 1
          if rand(2) == 0 and (max == 0 or size < max) then
            local item = rand(10) > 0 and step or nil
            if rand(2) == 0 then q:put(item) else q:put_nowait(item) end
            tail = tail + 1
            model[tail] = item
          elseif size > 0 then
            local got
            if rand(2) == 0 then got = q:get() else got = q:get_nowait() end
            assert.equal(model[head], got)
            model[head] = nil
            head = head + 1
          end
          assert.equal(tail - head + 1, q:qsize())
        end
      end
    end)
  end)

  it("get waits for a put; getters are served in FIFO order", function()
    local got = helper.run(function()
      local q, got = corio.queue(), {}
      local tasks = {}
      for i = 1, 3 do  -- one by one: tasks spawned together start in any order
        tasks[i] = corio.spawn(function()
          local v = q:get()
          got[#got + 1] = i .. v
        end)
        settle()
      end
      assert.truthy(tostring(tasks[1]):find("queue", 1, true))
      q:put("x"); q:put("y"); q:put("z")
      assert.equal(0, q:qsize())   -- handed straight to the waiting getters
      q:put("w")
      assert.equal("w", q:get_nowait())   -- nobody barged in before them
      corio.gather(tasks)
      return got
    end)
    assert.same({ "1x", "2y", "3z" }, got)
  end)

  it("put waits while full; putters are served in FIFO order and cannot be overtaken", function()
    local got = helper.run(function()
      local q = corio.queue(1)
      q:put(0)
      local tasks = {}
      for i = 1, 3 do  -- one by one: tasks spawned together start in any order
        tasks[i] = corio.spawn(q.put, q, i)
        settle()
      end
      assert.equal(1, q:qsize())
      assert.equal(0, q:get())   -- putter 1's item moves in at once
      assert.is_true(q:full())
      assert.truthy(error_of(q.put_nowait, q, 99):find("queue full", 1, true))
      local got = {}
      for i = 1, 3 do got[i] = q:get() end
      corio.gather(tasks)
      assert.is_true(q:empty())
      return got
    end)
    assert.same({ 1, 2, 3 }, got)
  end)

  it("a cancelled get leaves the item for the next getter", function()
    helper.run(function()
      local q = corio.queue()
      local a = corio.spawn(q.get, q)
      local b = corio.spawn(q.get, q)
      settle()
      a:cancel()                 -- woken by the cancellation, not yet run
      q:put("item")              -- skips a, goes to b
      cancelled_await(a)
      assert.equal("item", b:await())
      local c = corio.spawn(q.get, q)
      settle()
      c:cancel()
      q:put("kept")              -- no live getter: it stays in the queue
      cancelled_await(c)
      assert.equal(1, q:qsize())
      assert.equal("kept", q:get())
      assert.equal(0, q._getters.n)
    end)
  end)

  it("a cancelled put inserts nothing", function()
    helper.run(function()
      local q = corio.queue(1)
      q:put("first")
      local a = corio.spawn(q.put, q, "cancelled")
      local b = corio.spawn(q.put, q, "second")
      settle()
      a:cancel()
      assert.equal("first", q:get())   -- skips a, takes b's item in
      cancelled_await(a)
      b:await()
      assert.equal("second", q:get())
      assert.is_true(q:empty())
      assert.equal(0, q._putters.n)
      assert.equal(2, q._unfinished())
    end)
  end)

  it("get, put and join work under corio.timeout and leave no waiter behind", function()
    helper.run(function()
      local q = corio.queue(1)
      local ok, err = pcall(corio.timeout, 0.001, q.get, q)
      assert.is_false(ok)
      assert.is_true(corio.TimeoutError.is(err))
      q:put(1)
      assert.is_false(corio.move_on_after(0.001, q.put, q, 2))
      assert.is_false(corio.move_on_after(0.001, q.join, q))
      assert.equal(0, q._getters.n)
      assert.equal(0, q._putters.n)
      assert.equal(0, q._joiners.n)
      assert.equal(1, q:get())
      assert.is_true(q:empty())
    end)
  end)

  it("100,000 getters timing out leave no waiter behind; a later put reaches a live getter", function()
    helper.run(function()
      local q = corio.queue()
      local tasks = {}
      for i = 1, 100000 do tasks[i] = corio.spawn(corio.move_on_after, 0.01, q.get, q) end
      corio.gather(tasks)
      assert.equal(0, q._getters.n)
      assert.is_nil(next(q._getters.prv))
      local live = corio.spawn(q.get, q)
      settle()
      q:put("hello")
      assert.equal("hello", live:await())
      assert.is_true(q:empty())
    end)
  end)

  it("task_done and join", function()
    helper.run(function()
      local q = corio.queue()
      q:join()                   -- nothing put: returns at once
      q:put(1); q:put(2)
      local joined = false
      local j = corio.spawn(function() q:join(); joined = true end)
      settle()
      q:get(); q:task_done()
      settle()
      assert.is_false(joined)
      q:get(); q:task_done()
      j:await()
      assert.is_true(joined)
      assert.truthy(error_of(q.task_done, q):find("queue:task_done: called more times than there were items", 1, true))
    end)
  end)

  it("shutdown: puts fail, getters drain the rest and then fail, waiters are woken", function()
    helper.run(function()
      local q = corio.queue(1)
      local waiting_get = corio.spawn(function() return pcall(q.get, q) end)
      settle()
      q:shutdown()
      local ok, err = waiting_get:await()
      assert.is_false(ok)
      assert.truthy(tostring(err):find("queue:get: queue shut down", 1, true))
      assert.is_true(q:is_shutdown())
      assert.truthy(error_of(q.put, q, 1):find("queue:put: queue shut down", 1, true))
      assert.truthy(error_of(q.put_nowait, q, 1):find("queue:put_nowait: queue shut down", 1, true))

      local q2 = corio.queue(1)
      q2:put("left")
      local waiting_put = corio.spawn(function() return pcall(q2.put, q2, "blocked") end)
      settle()
      q2:shutdown()
      ok, err = waiting_put:await()
      assert.is_false(ok)
      assert.truthy(tostring(err):find("queue:put: queue shut down", 1, true))
      assert.equal("left", q2:get())    -- drained first
      assert.truthy(error_of(q2.get, q2):find("queue:get: queue shut down", 1, true))
      assert.truthy(error_of(q2.get_nowait, q2):find("queue:get_nowait: queue shut down", 1, true))
    end)
  end)

  it("shutdown(true) drops the items, counts them done and releases join", function()
    helper.run(function()
      local q = corio.queue()
      q:put(1); q:put(2); q:put(3)
      q:get(); q:task_done()
      local j = corio.spawn(q.join, q)
      settle()
      q:shutdown(true)
      j:await()
      assert.is_true(q:empty())
      assert.truthy(error_of(q.get, q):find("queue shut down", 1, true))
    end)
  end)

  it("get and put outside a task raise only when they would have to wait", function()
    local q = corio.queue(1)
    q:put(1)
    assert.truthy(error_of(q.put, q, 2):find("queue:put: not inside a task", 1, true))
    assert.equal(1, q:get())
    assert.truthy(error_of(q.get, q):find("queue:get: not inside a task", 1, true))
  end)
end)

describe("corio.priority_queue", function()
  it("gives the lowest priority first, FIFO among equals, with the priority", function()
    helper.run(function()
      local q = corio.priority_queue()
      q:put("c", 3); q:put("a1", 1); q:put("b", 2); q:put("a2", 1); q:put("z", -5); q:put("a3", 1)
      local got = {}
      while not q:empty() do
        local item, prio = q:get()
        got[#got + 1] = item .. ":" .. prio
      end
      assert.same({ "z:-5", "a1:1", "a2:1", "a3:1", "b:2", "c:3" }, got)
      assert.truthy(error_of(q.put, q, "x", {}):find("priority_queue:put: priority must be a number or a string, got table", 1, true))
    end)
  end)

  it("orders a number or a string item by itself when no priority is given", function()
    helper.run(function()
      local q = corio.priority_queue()
      q:put(5); q:put(-1); q:put_nowait(3); q:put(3.5)
      local got = {}
      while not q:empty() do
        local item, prio = q:get()
        assert.equals(item, prio)
        got[#got + 1] = item
      end
      assert.same({ -1, 3, 3.5, 5 }, got)
      q:put("pear"); q:put("apple"); q:put_nowait("fig")
      assert.equals("apple", q:get())
      assert.equals("fig", q:get())
      assert.equals("pear", q:get())
      -- an explicit priority still wins over the item's own order
      q:put(1, 9); q:put(9, 1); q:put(5)
      assert.same({ 9, 1 }, { q:get() })
      assert.same({ 5, 5 }, { q:get() })
      assert.same({ 1, 9 }, { q:get() })
      for _, bad in ipairs { {}, true, print } do
        local msg = error_of(q.put, q, bad)
        assert.truthy(msg:find("priority_queue:put: no priority given, and the item (a " .. type(bad)
          .. ") cannot be its own: only a number or a string can", 1, true), msg)
        msg = error_of(q.put_nowait, q, bad)
        assert.truthy(msg:find("priority_queue:put_nowait: no priority given", 1, true), msg)
      end
      assert.truthy(q:empty())
    end)
  end)

  it("a bounded priority queue waits while full and hands over with the priority", function()
    helper.run(function()
      local q = corio.priority_queue(2)
      local g = corio.spawn(function() return q:get() end)
      settle()
      q:put("direct", 7)
      local item, prio = g:await()
      assert.equal("direct", item)
      assert.equal(7, prio)
      q:put("b", 2); q:put("c", 3)
      local p = corio.spawn(q.put, q, "a", 1)
      settle()
      assert.equal("b", q:get())   -- then a moves in, ahead of c
      p:await()
      assert.equal("a", q:get())
      assert.equal("c", q:get())
    end)
  end)

  it("randomised: equals to a stable sort", function()
    helper.run(function()
      math.randomseed(3)
      local q, ref = corio.priority_queue(), {}
      for i = 1, 2000 do
        local p = math.random(1, 50)
        q:put(i, p)
        ref[i] = { p = p, i = i }
      end
      table.sort(ref, function(a, b) if a.p == b.p then return a.i < b.i end return a.p < b.p end)
      for i = 1, 2000 do assert.equal(ref[i].i, (q:get())) end
    end)
  end)
end)

describe("corio.lifo_queue", function()
  it("gives the last item put first, and waits like a queue", function()
    helper.run(function()
      local q = corio.lifo_queue(3)
      q:put(1); q:put(2); q:put(3)
      local p = corio.spawn(q.put, q, 4)
      settle()
      assert.equal(3, q:get())   -- then 4 moves in
      p:await()
      assert.same({ 4, 2, 1 }, { q:get(), q:get(), q:get() })
      assert.truthy(error_of(q.get_nowait, q):find("lifo_queue:get_nowait: queue empty", 1, true))
    end)
  end)
end)

describe("corio.channel", function()
  it("buffered: send does not wait while there is room; for loop until every send end is closed", function()
    local got = helper.run(function()
      local send, recv = corio.channel(10)
      local send2 = send:clone()
      local got = {}
      local consumer = corio.spawn(function()
        for item in recv do got[#got + 1] = item end
        return "ended"
      end)
      for i = 1, 3 do send:send(i) end
      send2:send_nowait("x")
      send:close()
      send:close()               -- idempotent
      settle()
      assert.is_false(consumer:done())   -- send2 still open
      send2:close()
      assert.equal("ended", consumer:await())
      assert.is_nil(recv:receive())      -- stays ended
      return got
    end)
    assert.same({ 1, 2, 3, "x" }, got)
  end)

  it("unbuffered (the default): send waits until a receiver takes the item", function()
    helper.run(function()
      local send, recv = corio.channel()
      local sent = false
      local s = corio.spawn(function() send:send("hi"); sent = true end)
      settle()
      assert.is_false(sent)
      assert.truthy(tostring(s):find("channel", 1, true))
      assert.equal("hi", recv:receive())
      s:await()
      assert.is_true(sent)
      assert.truthy(error_of(send.send_nowait, send, 1):find("channel send_nowait: channel full", 1, true))
      assert.truthy(error_of(recv.receive_nowait, recv):find("channel receive_nowait: channel empty", 1, true))
      local r = corio.spawn(recv.receive, recv)
      settle()
      send:send_nowait("direct")   -- a waiting receiver takes it at once
      assert.equal("direct", r:await())
    end)
  end)

  it("raises clear errors on closed ends and nil", function()
    helper.run(function()
      local send, recv = corio.channel(1)
      assert.truthy(error_of(send.send, send, nil):find("channel send: cannot send nil", 1, true))
      do
        local _s <close> = send:clone()
      end
      send:close()
      assert.is_true(send:is_closed())
      assert.truthy(error_of(send.send, send, 1):find("channel send: this send end is closed", 1, true))
      assert.truthy(error_of(send.clone, send):find("channel clone: this send end is closed", 1, true))
      recv:close()
      assert.truthy(error_of(recv.receive, recv):find("channel receive: this receive end is closed", 1, true))

      local send2, recv2 = corio.channel(1)
      local blocked = corio.spawn(function()
        send2:send(1)
        return pcall(send2.send, send2, 2)
      end)
      settle()
      recv2:close()
      local ok, err = blocked:await()
      assert.is_false(ok)
      assert.truthy(err:find("channel send: every receive end is closed", 1, true))
      assert.truthy(error_of(send2.send, send2, 3):find("every receive end is closed", 1, true))

      -- closing one end of several wakes the tasks blocked on that end only
      local s4, r4 = corio.channel(0)
      local s4b = s4:clone()
      local on_a = corio.spawn(function() return pcall(s4.send, s4, "a") end)
      local on_b = corio.spawn(function() return pcall(s4b.send, s4b, "b") end)
      settle()
      s4:close()
      ok, err = on_a:await()
      assert.is_false(ok)
      assert.truthy(err:find("channel send: this send end is closed", 1, true))
      assert.equal("b", r4:receive())   -- the other end's send stands
      assert.is_true(on_b:await())
      local r4b = r4:clone()
      local recv_a = corio.spawn(function() return pcall(r4.receive, r4) end)
      local recv_b = corio.spawn(function() return r4b:receive() end)
      settle()
      r4:close()
      ok, err = recv_a:await()
      assert.is_false(ok)
      assert.truthy(err:find("channel receive: this receive end is closed", 1, true))
      s4b:send("c")
      assert.equal("c", recv_b:await())
      assert.has_error(function() corio.channel(-1) end,
        "corio.channel: size must be an integer >= 0 or math.huge, got -1")
      local s3, r3 = corio.channel(math.huge)
      for i = 1, 100 do s3:send(i) end
      s3:close()
      local n = 0
      for _ in r3 do n = n + 1 end
      assert.equal(100, n)
    end)
  end)

  it("a cancelled receive leaves the item; a cancelled send delivers nothing", function()
    helper.run(function()
      local send, recv = corio.channel()
      local a = corio.spawn(recv.receive, recv)
      local b = corio.spawn(recv.receive, recv)
      settle()
      a:cancel()
      local s = corio.spawn(send.send, send, "v")
      cancelled_await(a)
      assert.equal("v", b:await())
      s:await()

      local c = corio.spawn(send.send, send, "lost?")
      settle()
      c:cancel()
      cancelled_await(c)
      assert.is_false(corio.move_on_after(0.001, recv.receive, recv))
      assert.equal(0, recv._ch._putters.n)
      assert.equal(0, recv._ch._getters.n)
      send:close()
      assert.is_nil(recv:receive())
    end)
  end)
end)
