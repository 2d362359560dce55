-- corio.socket.ssl: LuaSec's ssl.wrap / dohandshake over corio.tls, and
-- require "ssl" after corio.socket.install()
local corio = require "corio"
local helper = require "helper"
local csocket = require "corio.socket"

local certs = corio.tls.available() and helper.tls_certs()
local it_tls = certs and it or pending

-- a TLS line echo server on 127.0.0.1: returns it and its port
local function echo_server()
  local srv = assert(corio.serve("127.0.0.1", 0, function(s)
    local line = s:read_line()
    if line then s:write("echo ", line, "\n") end
    s:close()
  end, { tls = { cert = certs.server, key = certs.server_key } }))
  local _, port = srv:address()
  return srv, port
end

describe("corio.socket.ssl", function()
  teardown(function()
    csocket.uninstall()
    helper.tls_cleanup()
  end)

  it_tls("wraps a connected socket; dohandshake verifies the server", function()
    helper.run(function()
      local srv, port = echo_server()
      assert.equals(csocket, csocket.install())
      local socket, ssl = require "socket", require "ssl"
      assert.equals(require "corio.socket.ssl", ssl)
      local sock = socket.tcp()
      assert(sock:connect("127.0.0.1", port))
      sock = assert(ssl.wrap(sock, { mode = "client", protocol = "any", verify = "peer",
                                     cafile = certs.ca }))
      assert.is_true(sock:sni("localhost"))
      assert.is_true(sock:dohandshake())
      assert.equals(true, sock:dohandshake())       -- once done, done
      assert.truthy(sock:info().protocol:find("TLS", 1, true))
      assert.equals(6, sock:send("hello\n"))
      assert.equals("echo hello", sock:receive("*l"))
      sock:close()
      srv:close()
    end)
  end)

  it_tls("reports a server its CA does not know", function()
    helper.run(function()
      local srv, port = echo_server()
      local ssl = require "corio.socket.ssl"
      local ctx = assert(ssl.newcontext({ mode = "client", verify = "peer", cafile = certs.rogue }))
      local sock = csocket.tcp()
      assert(sock:connect("127.0.0.1", port))
      sock = assert(ssl.wrap(sock, ctx))
      sock:sni("localhost")
      local ok, msg = sock:dohandshake()
      assert.is_nil(ok)
      assert.truthy(msg:find("certificate verify failed", 1, true))
      sock:close()
      srv:close()
    end)
  end)

  it_tls("refuses bad parameters and a socket ssl.wrap never saw", function()
    local ssl = require "corio.socket.ssl"
    assert.has_error(function() ssl.newcontext({ mode = "both" }) end,
      'ssl.newcontext: mode must be "client" or "server"')
    assert.has_error(function() ssl.newcontext({ protocol = "sslv3" }) end)
    helper.run(function()
      local srv, port = echo_server()
      local sock = csocket.tcp()
      assert(sock:connect("127.0.0.1", port))
      assert.has_error(function() sock:dohandshake() end,
        "tcp:dohandshake: the socket was not given to ssl.wrap")
      sock:close()
      srv:close()
    end)
  end)
end)
