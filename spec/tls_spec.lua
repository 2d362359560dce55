-- TLS streams (docs/tls.md): a test CA and certificates made with openssl at
-- test time; corio against openssl s_server, s_client and curl, and against
-- itself. Loopback only, port 0.
local corio = require "corio"
local helper = require "helper"

local certs = helper.tls_certs()
local _, tmpname, tmpfile, cleanup = helper.tmpfiles()
local it_tls = (certs and corio.tls.available()) and it or pending

teardown(function()
  cleanup()
  helper.tls_cleanup()
end)

local function server_opts(extra)
  local o = { server = true, cert = certs.server, key = certs.server_key }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

-- a corio TLS server on an ephemeral port: it, its port
local function tls_serve(handler, tls, opts)
  opts = opts or {}
  opts.tls = tls or server_opts()
  local srv = assert(corio.serve("127.0.0.1", 0, handler, opts))
  local _, port = srv:address()
  return srv, port
end

local function client_ctx(extra)
  local o = { ca_file = certs.ca }
  for k, v in pairs(extra or {}) do o[k] = v end
  return assert(corio.tls.context(o))
end

-- background(cmd) -> wait: runs sh command cmd in the background, its output
-- to a file; wait() (suspends) -> that output, once cmd has ended (a call
-- back over TCP says so: the wait is on an event)
local function background(cmd)
  local out = tmpname()
  local ended = corio.future()
  local srv = assert(corio.serve("127.0.0.1", 0, function(s)
    s:read_all()
    if not ended:done() then ended:set_result(true) end
  end))
  local _, port = srv:address()
  -- (LD_PRELOAD: the sanitizer build's runtime is for corio, not for these)
  os.execute(("unset LD_PRELOAD; ( (%s) >%s 2>&1; nc -N 127.0.0.1 %d </dev/null >/dev/null 2>&1 ) &")
    :format(cmd, out, port))
  return function()
    corio.timeout(30, function() ended:await() end)
    srv:close()
    return helper.slurp(out)
  end
end

-- an openssl s_server (its -rev mode answers each line reversed) started
-- before the run: its port and a function that stops it
local function s_server(args)
  local p = assert(io.popen(("unset LD_PRELOAD; echo $$; exec openssl s_server -accept 127.0.0.1:0 %s 2>&1")
    :format(args)))
  local pid = p:read("l")
  local port
  repeat
    local line = p:read("l")
    port = line and tonumber(line:match("^ACCEPT .*:(%d+)$"))
  until port or line == nil
  return port, function()
    if not pid then return end
    os.execute("kill " .. pid .. " 2>/dev/null")
    p:close()
    pid = nil
  end
end

describe("corio.tls with openssl and curl", function()
  it_tls("connects to openssl s_server, verifying it", function()
    local port, stop = s_server(("-cert %s -key %s -rev"):format(certs.server, certs.server_key))
    local ok, err = pcall(helper.run, function()
      local s = assert(corio.connect("127.0.0.1", port, { tls = { ca_file = certs.ca } }))
      assert(s:write("hello tls\n"))
      assert.equals("slt olleh", s:read_line())
      local info = s:tls_info()
      assert.equals("CN=localhost,O=corio test", info.subject)
      assert.equals("CN=corio test CA", info.issuer)
      assert.is_false(info.resumed)
      s:abort()
    end)
    stop()
    assert(ok, err)
  end)

  it_tls("serves openssl s_client and curl", function()
    helper.run(function()
      local srv, port = tls_serve(function(s)
        local line = s:read_line()
        if line == "hello from s_client" then
          s:write("hi s_client\n")
        else  -- curl's request line
          repeat local h = s:read_line() until h == "" or h == nil
          s:write("HTTP/1.1 200 OK\r\nContent-Length: 11\r\nConnection: close\r\n\r\nhello curl\n")
        end
      end)
      local wait1 = background(("printf 'hello from s_client\\n' | timeout 20 openssl s_client -connect 127.0.0.1:%d "
        .. "-servername localhost -CAfile %s -verify_return_error -quiet"):format(port, certs.ca))
      local wait2 = background(("curl -sS --max-time 20 --cacert %s https://localhost:%d/ --resolve localhost:%d:127.0.0.1")
        :format(certs.ca, port, port))
      assert.matches("hi s_client", wait1())
      assert.equals("hello curl\n", wait2())
      srv:close()
    end)
  end)

  it_tls("reads a peer that ends without close_notify as an error, or as the end on request", function()
    for _, eof_ok in ipairs { false, true } do
      local port, stop = s_server(("-cert %s -key %s -rev"):format(certs.server, certs.server_key))
      local ok, err = pcall(helper.run, function()
        local s = assert(corio.connect("127.0.0.1", port,
          { tls = { ca_file = certs.ca, ignore_unexpected_eof = eof_ok } }))
        s:write("abc\n")
        assert.equals("cba", s:read_line())
        stop()  -- the process dies: its socket closes with no close_notify
        local data, msg, code = s:read()
        assert.is_nil(data)
        if eof_ok then
          assert.is_nil(msg)
        else
          assert.equals("TLS: unexpected eof", msg)
          assert.equals("ETLS", code)
        end
        s:close()
      end)
      stop()
      assert(ok, err)
    end
  end)
end)

describe("corio.tls streams", function()
  it_tls("carries messages of 1 B to 1 MiB with every read method", function()
    helper.run(function()
      local srv, port = tls_serve(function(s)
        while true do
          local n = s:read_line()
          if not n then break end
          local data = assert(s:read_exactly(tonumber(n)))
          s:write(#data, "\n", data)
        end
      end)
      local s = assert(corio.connect("127.0.0.1", port, { tls = client_ctx() }))
      local n = 1
      while n <= 1024 * 1024 do
        local msg = string.rep(string.char(n % 251), n)
        assert(s:write(n, "\n", msg))
        assert.equals(tostring(n), s:read_until("\n"))
        local got = s:read_exactly(n)
        assert.equals(n, #got)
        assert(got == msg, "message of " .. n .. " bytes differs")
        n = n * 4
      end
      assert(s:close())
      srv:close()
    end)
  end)

  it_tls("moves 64 MiB, checked on both sides", function()
    local CHUNK, N = 65536, 1024
    local function chunk(i) return string.rep(string.pack(">I4", i), CHUNK // 4) end
    helper.run(function()
      local srv, port = tls_serve(function(s)
        local sum = 0
        for i = 1, N do
          local got = assert(s:read_exactly(CHUNK))
          if got ~= chunk(i) then s:write("bad chunk ", i, "\n") return end
          sum = helper.checksum(got:sub(1, 64), sum)
        end
        assert.is_nil(s:read())  -- then close_notify
        s:write("ok ", sum, "\n")
      end)
      local s = assert(corio.connect("127.0.0.1", port, { tls = client_ctx() }))
      local sum = 0
      for i = 1, N do
        local c = chunk(i)
        sum = helper.checksum(c:sub(1, 64), sum)
        assert(s:write(c))
      end
      assert(s:shutdown())
      assert.equals("ok " .. sum, s:read_line())
      s:close()
      srv:close()
    end)
  end)

  it_tls("resumes a session through a context's cache", function()
    helper.run(function()
      local srv, port = tls_serve(function(s) s:write("hi\n") end)
      local ctx = client_ctx()
      local seen = {}
      for i = 1, 2 do
        local s = assert(corio.connect("localhost", port, { tls = ctx }) or
                         corio.connect("127.0.0.1", port, { tls = ctx }))
        assert.equals("hi", s:read_line())  -- the session ticket comes with it
        assert.is_nil(s:read())
        seen[i] = s:tls_info().resumed
        s:close()
      end
      assert.same({ false, true }, seen)
      assert.equals(1, ctx:sessions())
      srv:close()
    end)
  end)

  it_tls("hands out a ticket from a server that never writes, with its close", function()
    helper.run(function()
      local srv, port = tls_serve(function(s) s:read_line() end)
      local ctx = client_ctx()
      local seen = {}
      for i = 1, 2 do
        local s = assert(corio.connect("127.0.0.1", port, { tls = ctx }))
        s:write("bye\n")
        assert.is_nil(s:read())  -- the ticket, then close_notify
        seen[i] = s:tls_info().resumed
        s:close()
        assert.is_nil(s:tls_info())  -- closed
      end
      assert.same({ false, true }, seen)
      srv:close()
    end)
  end)

  it_tls("chooses a certificate by SNI", function()
    helper.run(function()
      local other = assert(corio.tls.context { server = true, cert = certs.other, key = certs.other_key })
      local names = {}
      local srv, port = tls_serve(function(s)
        s:write(s:tls_info().server_name or "-", "\n")
      end, server_opts { sni = function(name)
        names[#names + 1] = name
        if name == "other.test" then return other end
      end })
      local ctx = client_ctx()
      for _, name in ipairs { "other.test", "localhost" } do
        local s = assert(corio.tls.wrap(assert(corio.connect("127.0.0.1", port)),
          { context = ctx, server_name = name }))
        assert.equals(name, s:read_line())
        assert.equals("CN=" .. name .. ",O=corio test", s:tls_info().subject)
        s:close()
      end
      assert.same({ "other.test", "localhost" }, names)
      srv:close()
    end)
  end)

  it_tls("negotiates ALPN", function()
    helper.run(function()
      local srv, port = tls_serve(function(s)
        s:write(s:tls_info().alpn or "none", "\n")
      end, server_opts { alpn = { "h2", "http/1.1" } })
      local s = assert(corio.connect("127.0.0.1", port,
        { tls = { ca_file = certs.ca, alpn = { "foo", "http/1.1" } } }))
      assert.equals("http/1.1", s:tls_info().alpn)
      assert.equals("http/1.1", s:read_line())
      s:close()
      s = assert(corio.connect("127.0.0.1", port, { tls = { ca_file = certs.ca, alpn = { "foo" } } }))
      assert.is_nil(s:tls_info().alpn)
      assert.equals("none", s:read_line())
      s:close()
      srv:close()
    end)
  end)

  it_tls("speaks TLS 1.2 with the ciphers asked for, resuming there too", function()
    helper.run(function()
      local srv, port = tls_serve(function(s)
        s:write(s:tls_info().protocol, "\n")
        s:read_all()
      end, server_opts { max_version = "1.2", ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256" })
      local ctx = client_ctx()
      local seen = {}
      for i = 1, 2 do
        local s = assert(corio.connect("127.0.0.1", port, { tls = ctx }))
        assert.equals("TLSv1.2", s:read_line())
        local info = s:tls_info()
        assert.equals("ECDHE-ECDSA-AES128-GCM-SHA256", info.cipher)
        seen[i] = info.resumed
        s:close()
      end
      assert.same({ false, true }, seen)
      -- a client that wants 1.3 only
      local s, msg, code = corio.connect("127.0.0.1", port,
        { tls = { ca_file = certs.ca, min_version = "1.3" } })
      assert.is_nil(s)
      assert.equals("ETLS", code)
      assert.equals("TLS: tlsv1 alert protocol version", msg)
      srv:close()
    end)
  end)

  it_tls("works over a Unix socket", function()
    local path = tmpname()
    os.remove(path)
    helper.run(function()
      local srv = assert(corio.serve_unix(path, function(s)
        assert(corio.tls.wrap(s, server_opts()))
        s:write(s:read_line(), "!\n")
      end))
      local s = assert(corio.connect_unix(path))
      assert(corio.tls.wrap(s, { ca_file = certs.ca, server_name = "localhost" }))
      s:write("unix\n")
      assert.equals("unix!", s:read_line())
      s:close()
      srv:close()
    end)
    os.remove(path)
  end)

  it_tls("upgrades a plain stream with start_tls", function()
    helper.run(function()
      local srv = assert(corio.serve("127.0.0.1", 0, function(s)
        assert.equals("EHLO", s:read_line())
        s:write("250 ok\n")
        assert.equals("STARTTLS", s:read_line())
        s:write("220 go ahead\n")
        assert(s:start_tls(server_opts()))
        assert.equals("secret", s:read_line())
        s:write("got it\n")
      end))
      local _, port = srv:address()
      local s = assert(corio.connect("127.0.0.1", port))
      assert.is_nil(s:tls_info())
      s:write("EHLO\n")
      assert.equals("250 ok", s:read_line())
      s:write("STARTTLS\n")
      assert.equals("220 go ahead", s:read_line())
      assert.equals(s, s:start_tls { ca_file = certs.ca, server_name = "localhost" })
      assert.equals("TLSv1.3", s:tls_info().protocol)
      s:write("secret\n")
      assert.equals("got it", s:read_line())
      s:close()
      srv:close()
    end)
  end)

  it_tls("asks for a client certificate and checks it", function()
    helper.run(function()
      local failures = {}
      local srv, port = tls_serve(function(s)
        s:write(s:tls_info().subject, "\n")
      end, server_opts { verify = true, ca_file = certs.ca })
      -- with one
      local s = assert(corio.connect("127.0.0.1", port, { tls = { ca_file = certs.ca,
        cert = certs.client, key = certs.client_key } }))
      assert.equals("CN=corio client,O=corio test", s:read_line())
      s:close()
      -- without: TLS 1.3 finishes the client's handshake; the server's alert comes next
      s = assert(corio.connect("127.0.0.1", port, { tls = { ca_file = certs.ca } }))
      local line, msg, code = s:read_line()
      failures[1] = { line, msg, code }
      s:close()
      assert.same({ nil, "TLS: tlsv13 alert certificate required", "ETLS" }, failures[1])
      srv:close()
    end)
  end)

  it_tls("fails a server's handshake when the client certificate is missing", function()
    helper.run(function()
      local result = corio.future()
      local srv = assert(corio.serve("127.0.0.1", 0, function(s)
        result:set_result(s:start_tls(server_opts { verify = true, ca_file = certs.ca }))
      end))
      local _, port = srv:address()
      local s = assert(corio.connect("127.0.0.1", port, { tls = { ca_file = certs.ca } }))
      local data, msg = s:read()
      assert.is_nil(data)
      assert.equals("TLS: tlsv13 alert certificate required", msg)
      local ok, smsg, code = result:await()
      assert.is_nil(ok)
      assert.equals("TLS: peer did not return a certificate", smsg)
      assert.equals("ETLS", code)
      s:close()
      srv:close()
    end)
  end)

  it_tls("gives clear errors for a bad certificate, closing the stream", function()
    local cases = {
      { cert = certs.server, key = certs.server_key, name = "wrong.test",
        msg = "TLS: certificate verify failed: hostname mismatch" },
      { cert = certs.expired, key = certs.expired_key,
        msg = "TLS: certificate verify failed: certificate has expired" },
      { cert = certs.rogue, key = certs.rogue_key,
        msg = "TLS: certificate verify failed: unable to get local issuer certificate" },
      { cert = certs.ca, key = certs.dir .. "/ca.key", system = true,
        msg = "TLS: certificate verify failed: self-signed certificate" },
    }
    helper.run(function()
      for _, case in ipairs(cases) do
        local srv, port = tls_serve(function() end, { cert = case.cert, key = case.key },
          { handshake_timeout = 10 })
        local plain = assert(corio.connect("127.0.0.1", port))
        local ctx = case.system and {} or { ca_file = certs.ca }
        ctx.server_name = case.name or "localhost"
        local s, msg, code = corio.tls.wrap(plain, ctx)
        assert.is_nil(s)
        assert.equals(case.msg, msg)
        assert.equals("ETLS", code)
        assert.matches("closed", tostring(plain))
        srv:close()
        srv:wait_closed()
      end
    end)
  end)

  it_tls("bounds a handshake with a timeout and cancellation, leaving nothing open", function()
    helper.run(function()
      local held = {}
      local srv = assert(corio.serve("127.0.0.1", 0, function(s)
        held[#held + 1] = s
        s:read_all()  -- says nothing
      end))
      local _, port = srv:address()
      local s, msg, code = corio.connect("127.0.0.1", port, { tls = client_ctx(), timeout = 0.2 })
      assert.is_nil(s)
      assert.equals("ETIMEDOUT: TLS handshake timed out", msg)
      assert.equals("ETIMEDOUT", code)
      local plain = assert(corio.connect("127.0.0.1", port))
      local t = corio.spawn(corio.tls.wrap, plain, client_ctx())
      helper.settle()
      t:cancel()
      helper.cancelled_await(t)
      assert.matches("closed", tostring(plain))
      local err = select(2, pcall(corio.timeout, 0.1, corio.tls.wrap,
        assert(corio.connect("127.0.0.1", port)), client_ctx()))
      assert.matches("timeout", tostring(err))
      srv:close()
    end)
  end)

  it_tls("bounds a large write with a timeout, leaving nothing open", function()
    helper.run(function()
      local reading = corio.future()
      local srv, port = tls_serve(function(s)
        s:read(1)
        reading:set_result(true)
        corio.sleep(30)  -- and reads no more
      end)
      local s = assert(corio.connect("127.0.0.1", port, { tls = client_ctx() }))
      s:write("x")
      reading:await()
      local big = string.rep("y", 1024 * 1024)
      local ok, err = pcall(corio.timeout, 0.3, function()
        for _ = 1, 64 do s:write(big) end
      end)
      assert.is_false(ok)
      assert.matches("timeout", tostring(err))
      s:abort()
      srv:close()
    end)
  end)

  it_tls("survives a peer that vanishes mid-handshake, on both sides", function()
    helper.run(function()
      -- a server that takes the ClientHello and hangs up
      local srv = assert(corio.serve("127.0.0.1", 0, function(s) s:read(10) end))
      local _, port = srv:address()
      local s, msg, code = corio.connect("127.0.0.1", port, { tls = client_ctx() })
      assert.is_nil(s)
      assert.truthy(code == "ETLS" or code == "ECONNRESET", msg)
      srv:close()
      -- a client that sends half a ClientHello and hangs up: the TLS server goes on
      local calls = 0
      local tsrv, tport = tls_serve(function(c) calls = calls + 1; c:write("hi\n") end)
      local p = assert(corio.connect("127.0.0.1", tport))
      p:write("\22\3\1\0\200\1\0\0")
      p:close()
      local c = assert(corio.connect("127.0.0.1", tport, { tls = client_ctx() }))
      assert.equals("hi", c:read_line())
      c:close()
      assert.equals(1, calls)
      tsrv:close()
    end)
  end)

  it_tls("frees everything: handshakes, failures, cancellations (leak check under the sanitizer build)", function()
    local sh = helper.shell(tmpfile)
    -- the command under test, in a process of its own, with leak detection on
    -- when it is the sanitizer build (the specs' own process runs with it off)
    local out, code = sh("ASAN_OPTIONS=detect_leaks=1 CORIO SCRIPT 2>&1", ([[
      local corio = require "corio"
      local ca, cert, key = %q, %q, %q
      local srv = assert(corio.serve("127.0.0.1", 0, function(s)
        for line in s:lines() do s:write("echo ", line, "\n") end
      end, { tls = { cert = cert, key = key } }))
      local _, port = srv:address()
      local ctx = assert(corio.tls.context { ca_file = ca })
      for _ = 1, 3 do
        local s = assert(corio.connect("127.0.0.1", port, { tls = ctx }))
        s:write("hello\n")
        assert(s:read_line() == "echo hello")
        s:close()
      end
      assert(ctx:sessions() == 1)
      assert(not corio.connect("127.0.0.1", port, { tls = { verify = true } }))
      local mute = assert(corio.serve("127.0.0.1", 0, function(s) s:read_all() end))
      local _, mport = mute:address()
      assert(not corio.connect("127.0.0.1", mport, { tls = ctx, timeout = 0.1 }))
      local t = corio.spawn(corio.tls.wrap, assert(corio.connect("127.0.0.1", mport)), ctx)
      corio.sleep(0.05)
      t:cancel()
      assert(not pcall(t.await, t))
      local s = assert(corio.connect("127.0.0.1", port, { tls = ctx }))
      s:write(string.rep("x", 1 << 20))  -- queued when the stream is dropped
      s:abort()
      srv:close()
      mute:close()
      print("done")
    ]]):format(certs.ca, certs.server, certs.server_key))
    assert.equals(0, code, out)
    assert.equals("done\n", out)
  end)

  it_tls("raises on misuse", function()
    helper.run(function()
      local srv = assert(corio.serve("127.0.0.1", 0, function(s) s:read_all() end))
      local _, port = srv:address()
      local s = assert(corio.connect("127.0.0.1", port))
      assert.has_error(function() corio.tls.wrap(s, 42) end)
      assert.has_error(function() corio.tls.context { alpn = "h2" } end,
        "corio.tls.context: option 'alpn': a list of strings expected")
      assert.has_error(function() corio.tls.context { server = true } end,
        "corio.tls.context: a server context needs option 'cert'")
      local ctx, msg, code = corio.tls.context { ca_file = "/nonexistent/ca.pem" }
      assert.is_nil(ctx)
      assert.equals("ETLS", code)
      assert.equals("TLS: ca_file: /nonexistent/ca.pem: No such file or directory", msg)
      s:close()
      srv:close()
    end)
  end)
end)
