-- Name resolution (DESIGN.md "I/O"): only "localhost" and numeric
-- addresses, so that no lookup leaves the machine for a DNS server.
local corio = require "corio"
local helper = require "helper"

-- /etc/hosts names 127.0.0.1: its reverse lookup needs no DNS server
local function hosts_has_loopback()
  local f = io.open("/etc/hosts")
  if not f then return false end
  local text = f:read("a")
  f:close()
  return text:match("\n%s*127%.0%.0%.1%s") ~= nil or text:match("^%s*127%.0%.0%.1%s") ~= nil
end

describe("corio.getaddrinfo", function()
  it("resolves numeric addresses, with every field", function()
    helper.run(function()
      local list = assert(corio.getaddrinfo("127.0.0.1", 8080, { socktype = "stream" }))
      assert.same({ { family = "inet", address = "127.0.0.1", port = 8080,
                      socktype = "stream", protocol = "tcp" } }, list)
      list = assert(corio.getaddrinfo("::1", 53, { socktype = "dgram", numeric = true }))
      assert.same({ { family = "inet6", address = "::1", port = 53,
                      socktype = "dgram", protocol = "udp" } }, list)
      -- no socktype: one entry per kind of socket
      list = assert(corio.getaddrinfo("127.0.0.1"))
      assert.is_true(#list >= 2)
      for _, ai in ipairs(list) do
        assert.equals("127.0.0.1", ai.address)
        assert.equals(0, ai.port)
      end
      -- a service name (from the machine's services file), no host
      list = assert(corio.getaddrinfo(nil, 7, { family = "inet", socktype = "dgram" }))
      assert.same({ family = "inet", address = "127.0.0.1", port = 7,
                    socktype = "dgram", protocol = "udp" }, list[1])
      list = assert(corio.getaddrinfo(nil, 0, { family = "inet6", socktype = "stream", passive = true }))
      assert.equals("::", list[1].address)
    end)
  end)

  it("resolves localhost", function()
    helper.run(function()
      local list = assert(corio.getaddrinfo("localhost", 80, { socktype = "stream" }))
      assert.is_true(#list >= 1)
      for _, ai in ipairs(list) do
        assert.is_truthy(ai.address == "127.0.0.1" or ai.address == "::1", ai.address)
        assert.equals(80, ai.port)
        assert.is_truthy(ai.family == "inet" or ai.family == "inet6")
      end
      list = assert(corio.getaddrinfo("localhost", nil, { family = "inet", socktype = "dgram" }))
      assert.equals("127.0.0.1", list[1].address)
    end)
  end)

  it("returns nil, msg, code on failure", function()
    helper.run(function()
      -- numeric = true: no lookup is made, a name is simply not found
      assert.same({ nil, "EAI_NONAME: unknown node or service", "EAI_NONAME" },
                  { corio.getaddrinfo("not-an-address", 80, { numeric = true }) })
      local none, msg, code = corio.getaddrinfo("127.0.0.1", "no-such-service-x")
      assert.is_nil(none)
      assert.equals("EAI_SERVICE", code)
      assert.matches("^EAI_SERVICE: ", msg)
      none, msg, code = corio.getaddrinfo("127.0.0.1", nil, { family = "inet6", numeric = true })
      assert.is_nil(none)
      assert.matches("^EAI_", code)
      assert.matches("^" .. code .. ": ", msg)
    end)
  end)

  it("raises on misuse and outside a task", function()
    assert.has_error(function() corio.getaddrinfo("127.0.0.1") end,
      "corio.getaddrinfo: not inside a task (start one with corio.run)")
    helper.run(function()
      assert.has_error(function() corio.getaddrinfo() end)
      assert.has_error(function() corio.getaddrinfo("127.0.0.1", 70000) end)
      assert.has_error(function() corio.getaddrinfo("127.0.0.1", {}) end)
      assert.has_error(function() corio.getaddrinfo("127.0.0.1", 1, 5) end)
      assert.has_error(function() corio.getaddrinfo("127.0.0.1", 1, { family = "ipx" }) end,
        "option 'family': invalid value")
      assert.has_error(function() corio.getaddrinfo("127.0.0.1", 1, { socktype = 1 }) end,
        "option 'socktype': invalid value")
    end)
  end)

  it("is cancelled cleanly while it runs, and by an enclosing timeout", function()
    helper.run(function()
      local t = corio.spawn(corio.getaddrinfo, "localhost", 80)
      corio.sleep(0)  -- t runs up to its wait on the thread pool
      assert.matches("waiting: lookup", tostring(t))
      t:cancel()
      local ok, err = pcall(t.await, t)
      assert.is_false(ok)
      assert.is_true(corio.is_cancelled(err))
      -- many at once, all cancelled: each request finishes or is withdrawn
      -- and its memory is freed either way
      local ts = {}
      for i = 1, 20 do ts[i] = corio.spawn(corio.getaddrinfo, "127.0.0.1", i) end
      corio.sleep(0)
      for i = 1, 20 do ts[i]:cancel() end
      for i = 1, 20 do assert.is_false((pcall(ts[i].await, ts[i]))) end
      -- an enclosing timeout already due stops it at its checkpoint
      local res = table.pack(pcall(function()
        local _t <close> = corio.timeout(0)
        return corio.getaddrinfo("localhost", 80)
      end))
      assert.is_false(res[1])
      assert.is_true(corio.TimeoutError.is(res[2]), tostring(res[2]))
      -- a generous one is not needed
      assert.equals("127.0.0.1", corio.timeout(5, corio.getaddrinfo, "127.0.0.1")[1].address)
    end)
    -- a lookup still under way when the run ends is finished and freed
    helper.run(function()
      corio.spawn(corio.getaddrinfo, "localhost", 80)
      corio.sleep(0)
    end)
  end)
end)

describe("corio.getnameinfo", function()
  it("returns a host and a service for loopback addresses", function()
    helper.run(function()
      assert.same({ "127.0.0.1", "53" },
                  { corio.getnameinfo("127.0.0.1", 53, { numerichost = true, numericserv = true }) })
      assert.same({ "::1", "8080" },
                  { corio.getnameinfo("::1", 8080, { numerichost = true, numericserv = true }) })
      -- an entry of getaddrinfo's list works as the address
      local ai = assert(corio.getaddrinfo("::1", 7, { socktype = "dgram", numeric = true }))[1]
      local host, service = corio.getnameinfo(ai, { numerichost = true, dgram = true })
      assert.equals("::1", host)
      assert.is_string(service)
      assert.is_true(#service > 0)
      if hosts_has_loopback() then  -- /etc/hosts answers: no DNS server is asked
        host, service = corio.getnameinfo("127.0.0.1", 80)
        assert.is_string(host)
        assert.is_true(#host > 0)
        assert.is_true(#service > 0)
        host = corio.getnameinfo({ address = "127.0.0.1" })
        assert.is_true(#host > 0)
      end
    end)
  end)

  it("raises on misuse", function()
    assert.has_error(function() corio.getnameinfo("127.0.0.1", 80) end,
      "corio.getnameinfo: not inside a task (start one with corio.run)")
    helper.run(function()
      assert.has_error(function() corio.getnameinfo("localhost", 80) end)
      assert.has_error(function() corio.getnameinfo("127.0.0.1", 70000) end)
      assert.has_error(function() corio.getnameinfo({ port = 80 }) end)
      assert.has_error(function() corio.getnameinfo({ address = "127.0.0.1", port = "x" }) end)
      assert.has_error(function() corio.getnameinfo("127.0.0.1", 80, 5) end)
    end)
  end)

  it("is cancelled cleanly while it runs", function()
    helper.run(function()
      local t = corio.spawn(corio.getnameinfo, "127.0.0.1", 80, { numerichost = true })
      corio.sleep(0)
      assert.matches("waiting: lookup", tostring(t))
      t:cancel()
      assert.is_true(corio.is_cancelled(select(2, pcall(t.await, t))))
      local ok, err = pcall(function()
        local _t <close> = corio.timeout(0)
        return corio.getnameinfo("::1", 80, { numerichost = true })
      end)
      assert.is_false(ok)
      assert.is_true(corio.TimeoutError.is(err))
    end)
  end)
end)
