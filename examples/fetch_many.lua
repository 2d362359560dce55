-- A crawler: fetch 50 pages over HTTP, one after another, then ten at a
-- time. Each page takes its server a while to answer, so in sequence the
-- waits add up; concurrently they overlap.
--
--   corio examples/fetch_many.lua [SCALE]
--
-- It starts its own slow web server on 127.0.0.1 (a free port), whose page
-- /page/N answers after 20 to 100 ms (times SCALE, default 1), and a
-- minimal HTTP/1.1 client written with corio.connect fetches from it (it
-- takes https:// URLs as well: corio.connect's tls option).
local corio = require "corio"

local scale = tonumber(arg and arg[1]) or 1
local PAGES, AT_ONCE = 50, 10

local function delay_of(n) return (n % 5 + 1) * 0.020 * scale end

-- ---- the server: every page is slow --------------------------------------

local busy, most_busy = 0, 0  -- requests the server is answering now, at most

local function serve_page(stream)
  local request = stream:read_line()
  if not request then return end
  repeat local header = stream:read_line() until header == "" or header == nil
  local n = math.tointeger(tonumber(request:match("^GET /page/(%d+) ")))
  local body, status = "not found", "404 Not Found"
  if n then
    busy = busy + 1
    if busy > most_busy then most_busy = busy end
    corio.sleep(delay_of(n))  -- the slow part (think of a database)
    busy = busy - 1
    body, status = ("page %d\n"):format(n), "200 OK"
  end
  stream:write("HTTP/1.1 ", status, "\r\nContent-Length: ", #body,
               "\r\nConnection: close\r\n\r\n", body)
end

-- ---- the client: GET one URL ------------------------------------------------

-- fetch("http://127.0.0.1:PORT/path") -> status, body; or nil, error message.
-- https:// URLs work too: the stream is TLS, its certificate verified.
local function fetch(url)
  local scheme, host, port, path = url:match("^(https?)://([^:/]+):?(%d*)(/.*)$")
  if not scheme then return nil, "not an http(s) URL: " .. url end
  port = tonumber(port) or (scheme == "https" and 443 or 80)
  local stream <close>, err = corio.connect(host, port, { tls = scheme == "https" })
  if not stream then return nil, err end
  stream:write("GET ", path, " HTTP/1.1\r\nHost: ", host, "\r\nConnection: close\r\n\r\n")
  local status = tonumber((stream:read_line() or ""):match("^HTTP/1%.%d (%d%d%d)"))
  if not status then return nil, "bad response from " .. url end
  local length
  while true do
    local header = stream:read_line()
    if header == nil then return nil, "connection closed in the headers" end
    if header == "" then break end
    local name, value = header:match("^([^:]+):%s*(.-)%s*$")
    if name and name:lower() == "content-length" then length = tonumber(value) end
  end
  local body
  if length then body = stream:read_exactly(length) else body = stream:read_all() end
  if not body then return nil, "connection closed in the body" end
  return status, body
end

-- ---- fetching them all ------------------------------------------------------

local server <close> = assert(corio.serve("127.0.0.1", 0, serve_page))
local host, port = server:address()
local urls, total_delay = {}, 0
for n = 1, PAGES do
  urls[n] = ("http://%s:%d/page/%d"):format(host, port, n)
  total_delay = total_delay + delay_of(n)
end
print(("%d pages from %s:%d, each taking the server %.0f to %.0f ms (%.2f s in all)")
  :format(PAGES, host, port, delay_of(0) * 1000, delay_of(4) * 1000, total_delay))

local function check(n, status, body)
  assert(status == 200 and body == ("page %d\n"):format(n), ("page %d: %s"):format(n, body))
end

-- One after another: each fetch waits for the previous one.
local t0 = corio.now()
for n, url in ipairs(urls) do check(n, fetch(url)) end
local sequential = corio.now() - t0
print(("sequential: %d pages in %.3f s"):format(PAGES, sequential))

-- Concurrently: a task per page, but at most AT_ONCE fetching at a time,
-- so a real site is not flooded. The semaphore's unit goes back when the
-- block ends, even if the fetch fails.
local limit = corio.semaphore(AT_ONCE)
local function fetch_politely(url)
  local _ <close> = limit:acquire()
  return fetch(url)
end
most_busy = 0
t0 = corio.now()
local tasks = {}
for n, url in ipairs(urls) do tasks[n] = corio.spawn(fetch_politely, url) end
for n, task in ipairs(tasks) do check(n, task:await()) end
local concurrent = corio.now() - t0
print(("concurrent, %d at a time: %d pages in %.3f s (the server answered at most %d at once)")
  :format(AT_ONCE, PAGES, concurrent, most_busy))
print(("speedup: %.1fx"):format(sequential / concurrent))
