-- LuaSocket's own socket.http on corio sockets, fetching from a local corio
-- HTTP server in 50 tasks at once: through corio.socket.install(), and
-- through the request's `create` option with LuaSocket's socket.http as it
-- is (no install).
local corio = require "corio"
local helper = require "helper"
local socket = corio.socket

local have_http = package.searchpath("socket.http", package.path) ~= nil
  and pcall(require, "ltn12")
local describe_http = have_http and describe or pending

-- a minimal HTTP/1.1 server: answers "hello <path>" (after a short pause,
-- so the requests overlap) and closes; returns the server and its port
local function http_server(stats)
  local srv = assert(corio.serve("127.0.0.1", 0, function(s)
    local line = s:read_line()
    if not line then return end
    local path = line:match("^GET (%S+) HTTP/1%.[01]$")
    repeat local h = s:read_line() until h == nil or h == ""
    stats.active = stats.active + 1
    stats.most = math.max(stats.most, stats.active)
    corio.sleep(0.05)
    stats.active = stats.active - 1
    local body = path and ("hello " .. path) or "bad request"
    s:write(("HTTP/1.1 %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s")
      :format(path and "200 OK" or "400 Bad Request", #body, body))
  end))
  local _, port = srv:address()
  return srv, port
end

-- fetch_all(request, port) -> list of {code, body} for /page/1 .. /page/50,
-- each fetched by a task of its own
local function fetch_all(request, port)
  local fns = {}
  for i = 1, 50 do
    fns[i] = function()
      local body, code = request(("http://127.0.0.1:%d/page/%d"):format(port, i))
      return { code = code, body = body }
    end
  end
  return corio.gather(fns)
end

local function check(results, stats)
  for i = 1, 50 do
    assert.equals(200, results[i].code)
    assert.equals("hello /page/" .. i, results[i].body)
  end
  -- the fetches waited on the server together, not one after another
  assert.is_true(stats.most > 1, "at most " .. stats.most .. " request(s) at once")
end

describe_http("socket.http on corio.socket", function()
  after_each(function() socket.uninstall() end)

  it("fetches in 50 tasks at once through install()", function()
    socket.install()
    local http = require "socket.http"
    assert.equals(socket, package.loaded.socket)
    helper.run(function()
      local stats = { active = 0, most = 0 }
      local srv, port = http_server(stats)
      check(fetch_all(function(url) return http.request(url) end, port), stats)
      -- a refused connection is LuaSocket's error string
      srv:close()
      assert.same({ nil, "connection refused" }, { http.request(("http://127.0.0.1:%d/"):format(port)) })
    end)
  end)

  it("fetches in 50 tasks at once through the create option, without install()", function()
    assert.is_false(socket.installed())
    local http = require "socket.http"
    local ltn12 = require "ltn12"
    helper.run(function()
      local stats = { active = 0, most = 0 }
      local srv, port = http_server(stats)
      check(fetch_all(function(url)
        local parts = {}
        local ok, code = http.request {
          url = url, create = socket.tcp, sink = ltn12.sink.table(parts),
        }
        assert(ok, code)
        return table.concat(parts), code
      end, port), stats)
      srv:close()
    end)
  end)
end)
