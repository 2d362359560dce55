-- tls_records.lua: the body of the fuzz_tls target (spec/fuzz/).
-- Returns run(input, path). Byte 1 picks the mode:
--   0  client role: a corio TLS client meets a raw peer that sends the
--      input's bytes (in chunks) as the server's records, then ends;
--   1  server role: the same against a corio TLS server;
--   2  a corio client and a corio server through a proxy that changes the
--      bytes as a program from the input says (flip a byte, insert bytes,
--      drop bytes, close, pass them on in small pieces), one program each
--      way; the client sends the rest of the input, the server echoes it.
-- Byte 2: bit 0 the TLS version (1.2 or the newest), the rest the chunk size.
-- Every failure must be clean: nil, msg, code with code ETLS, ECONNRESET or
-- EPIPE (or "closed"); what a side reads must be what the other sent (a
-- prefix of it); and once the peer or the proxy is gone every side must end
-- (no hang). Raises on the first violation.
local corio = require "corio"

local CERT, KEY
do
  local p = assert(io.popen("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 " ..
    "-nodes -days 30 -subj /CN=localhost -keyout /dev/stdout -out /dev/stdout 2>/dev/null"))
  local pem = p:read("a")
  p:close()
  KEY = pem:match("%-%-%-%-%-BEGIN PRIVATE KEY%-%-%-%-%-.-%-%-%-%-%-END PRIVATE KEY%-%-%-%-%-\n")
  CERT = pem:match("%-%-%-%-%-BEGIN CERTIFICATE%-%-%-%-%-.-%-%-%-%-%-END CERTIFICATE%-%-%-%-%-\n")
  assert(KEY and CERT, "fuzz_tls: openssl req made no certificate")
end
local SERVER = assert(corio.tls.context { server = true, cert = CERT, key = KEY })

local CLEAN = { ETLS = true, ECONNRESET = true, EPIPE = true }

-- a failure must be clean
local function clean(what, msg, code)
  if CLEAN[code] or (msg == "closed" and code == nil) then return end
  error(("%s: not a clean failure: %s, %s"):format(what, tostring(msg), tostring(code)), 0)
end

local function client_ctx(v12)
  return assert(corio.tls.context { verify = false, max_version = v12 and "1.2" or nil })
end

-- the raw peer: sends data in chunks of n, ends its side, reads to the end
local function raw_peer(s, data, n)
  for i = 1, #data, n do
    if not s:write(data:sub(i, i + n - 1)) then break end
    corio.sleep(0)
  end
  s:shutdown()
  s:read_all()
  s:close()
end

local function garbage(mode, input, path, v12, n)
  local data = input:sub(3)
  local srv = assert(corio.serve_unix(path, function(s)
    if mode == 0 then raw_peer(s, data, n)
    else
      local ok, msg, code = corio.tls.wrap(s, SERVER)
      if not ok then return clean("server handshake", msg, code) end
      s:read_all()
      s:close()
    end
  end))
  local c = assert(corio.connect_unix(path))
  if mode == 0 then
    local ok, msg, code = corio.tls.wrap(c, { context = client_ctx(v12), server_name = "localhost" })
    if not ok then clean("client handshake", msg, code)
    else c:close() end
  else raw_peer(c, data, n) end
  srv:close()
  srv:wait_closed()
end

-- the proxy's program for one direction: ops by offset in its byte stream
local KINDS = { "flip", "insert", "drop", "close", "pieces" }
local function decode_ops(input, pos, count)
  local ops = {}
  for _ = 1, count do
    local k, hi, lo, arg = input:byte(pos, pos + 3)
    if not arg then break end
    local op = { kind = KINDS[k % #KINDS + 1], at = (hi * 256 + lo) % 4096, arg = arg }
    pos = pos + 4
    if op.kind == "insert" then
      op.data = input:sub(pos, pos + arg % 32)
      pos = pos + arg % 32 + 1
    end
    ops[#ops + 1] = op
  end
  table.sort(ops, function(a, b) return a.at < b.at end)
  return ops, pos
end

-- one direction of the proxy: from -> to, changed as ops say
local function pump(from, to, ops, st)
  local pos, dropping, piece, nxt = 0, 0, nil, 1
  while true do
    local chunk = from:read()
    if not chunk then break end
    local out, i = {}, 1
    while nxt <= #ops and ops[nxt].at < pos + #chunk do
      local op = ops[nxt]
      local rel = op.at - pos + 1
      if rel >= i then
        if dropping > 0 then  -- a drop still under way swallows up to here
          local d = math.min(dropping, rel - i)
          i, dropping = i + d, dropping - d
        end
        out[#out + 1] = chunk:sub(i, rel - 1)
        i = rel
        if op.kind == "flip" then
          out[#out + 1] = string.char(chunk:byte(rel) ~ (op.arg | 1))
          i = rel + 1
        elseif op.kind == "insert" then out[#out + 1] = op.data
        elseif op.kind == "drop" then dropping = op.arg + 1
        elseif op.kind == "close" then st.close(); return
        else piece = op.arg % 16 + 1 end
      end
      nxt = nxt + 1
    end
    if dropping > 0 then
      local d = math.min(dropping, #chunk - i + 1)
      i, dropping = i + d, dropping - d
    end
    out[#out + 1] = chunk:sub(i)
    local data = table.concat(out)
    pos = pos + #chunk
    st.moved = st.moved + 1
    if piece then
      for j = 1, #data, piece do
        if not to:write(data:sub(j, j + piece - 1)) then return end
        corio.sleep(0)
      end
    elseif not to:write(data) then return end
  end
  to:shutdown()
end

local function proxied(input, path, v12, n)
  local c2s, s2c, pos
  c2s, pos = decode_ops(input, 5, (input:byte(3) or 0) % 8)
  s2c, pos = decode_ops(input, pos, (input:byte(4) or 0) % 8)
  local msg = input:sub(pos)
  if msg == "" then msg = "hello" end
  local got_by_server = {}
  local real = assert(corio.serve_unix(path .. ".s", function(s)
    local ok, m, code = corio.tls.wrap(s, SERVER)
    if not ok then return clean("server handshake", m, code) end
    while true do
      local data, m2, c2 = s:read()
      if not data then
        if m2 then clean("server read", m2, c2) end
        break
      end
      got_by_server[#got_by_server + 1] = data
      local so_far = table.concat(got_by_server)
      if so_far ~= msg:sub(1, #so_far) then error("the server read bytes the client never sent", 0) end
      local ok2, m3, c3 = s:write(data)
      if not ok2 then clean("server write", m3, c3); break end
    end
    s:close()
  end))
  local conns = {}
  local proxy = assert(corio.serve_unix(path .. ".p", function(a)
    local b, m, code = corio.connect_unix(path .. ".s")
    if not b then a:close(); return clean("proxy connect", m, code) end
    local st = { moved = 0 }
    local done = false
    function st.close()
      done = true
      a:abort()
      b:abort()
    end
    conns[#conns + 1] = st
    local tg <close> = corio.task_group()
    local ended = 0
    local function pump_end(from, to, ops)
      pump(from, to, ops, st)
      ended = ended + 1
      if ended == 2 and not done then  -- both ways ended: a plain close
        done = true
        a:close()
        b:close()
      end
    end
    tg:spawn(pump_end, a, b, c2s)
    tg:spawn(pump_end, b, a, s2c)
    -- a watchdog: a lost byte can leave both ends waiting for the rest of
    -- a record, as a real network would; when nothing moves for a while,
    -- the proxy goes away (after which every side must end)
    tg:spawn(function()
      local last = -1
      while not done do
        corio.sleep(0.02)
        if st.moved == last and not done then st.close() end
        last = st.moved
      end
    end)
  end))
  local c = assert(corio.connect_unix(path .. ".p"))
  local ok, m, code = corio.tls.wrap(c, { context = client_ctx(v12), server_name = "localhost" })
  if not ok then clean("client handshake", m, code)
  else
    for i = 1, #msg, n * 64 do
      local part = msg:sub(i, i + n * 64 - 1)
      local w, m2, c2 = c:write(part)
      if not w then clean("client write", m2, c2); break end
      local echo, m3, c3 = c:read_exactly(#part)
      if not echo then clean("client read", m3, c3); break end
      if echo ~= part then error("the client read an echo that differs", 0) end
    end
    c:close()
  end
  for _, st in ipairs(conns) do st.close() end
  proxy:close()
  proxy:wait_closed()
  real:close()
  real:wait_closed()
end

return function(input, path)
  if #input < 2 then return end
  local mode = input:byte(1) % 3
  local v12 = input:byte(2) & 1 == 1
  local n = (input:byte(2) >> 1) % 64 + 1
  corio.timeout(15, function()
    if mode < 2 then garbage(mode, input, path, v12, n)
    else proxied(input, path, v12, n) end
  end)
end
