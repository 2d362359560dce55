-- stream_reader.lua: the body of the fuzz_stream_reader target (spec/fuzz/).
-- Returns run(input, path): a Unix socket server at path whose handler runs a
-- program of reads decoded from input on its stream, while a client writes the
-- input's data in chunks of fuzzed sizes (each drained, then a yield, so the
-- reads meet the bytes split as the chunks split them) and then closes. Every
-- read's results are checked against a plain model of the buffered bytes.
-- Raises on the first difference.
--
-- input: byte 1 the largest chunk (1..64) and the chunk sizes' seed, byte 2 the
-- limit (below 128: the default; else 1..64), byte 3 the number of reads (1..32),
-- then 2 bytes per read (kind, parameter), then the data.
local corio = require "corio"


local SEPS = { "\n", "\r\n", "ab", "aab", ";", "xyzzy", "\0", "aa" }

local function decode(input)
  local b1, b2, b3 = input:byte(1, 3)
  local p = { ops = {}, chunks = {} }
  p.limit = b2 >= 128 and b2 % 64 + 1 or nil
  local nops = b3 % 32 + 1
  local pos = 4
  for _ = 1, nops do
    local k, a = input:byte(pos, pos + 1)
    if not a then break end
    p.ops[#p.ops + 1] = { k % 7, a }
    pos = pos + 2
  end
  p.data = input:sub(pos)
  local maxc, x, i = b1 % 64 + 1, b1 + 1, 1
  while i <= #p.data do
    x = (x * 1103515245 + 12345) % 2147483648
    local n = x % maxc + 1
    p.chunks[#p.chunks + 1] = p.data:sub(i, i + n - 1)
    i = i + n
  end
  return p
end

local function show(...)
  local t = table.pack(...)
  for i = 1, t.n do t[i] = type(t[i]) == "string" and ("%q"):format(t[i]) or tostring(t[i]) end
  return "(" .. table.concat(t, ", ", 1, t.n) .. ")"
end

-- the model: rest is what has not been read yet (all of it arrives, then the end)
local function reader(s, p, fail)
  local rest = p.data
  local limit = p.limit or 65536
  local function same(what, exp, ...)
    if os.getenv("FUZZ_TRACE") then io.stderr:write(what, " -> ", show(...), "\n") end
    local got = table.pack(...)
    if got.n ~= exp.n then return fail(what .. ": got " .. show(...) .. ", model " .. show(table.unpack(exp, 1, exp.n))) end
    for i = 1, exp.n do
      if got[i] ~= exp[i] then
        return fail(what .. ": got " .. show(...) .. ", model " .. show(table.unpack(exp, 1, exp.n)))
      end
    end
  end
  local function exceeded(...)
    local a, b = ...
    return select("#", ...) == 2 and a == nil and b == "limit exceeded"
  end
  -- a read before a separator: found at i (or nil), of length len
  local function sep_read(what, i, len, keep, line, ...)
    if i then
      local n = i - 1
      if n > limit then return same(what, table.pack(nil, "limit exceeded"), ...) end
      -- the separator straddles the limit: whether the buffer held all of it
      -- when it went past the limit depends on how the bytes arrived
      if n + len - 1 > limit and exceeded(...) then return end
      local v
      if keep then v = rest:sub(1, n + len)
      elseif line and n > 0 and rest:sub(n, n) == "\r" then v = rest:sub(1, n - 1)
      else v = rest:sub(1, n) end
      rest = rest:sub(n + len + 1)
      return same(what, table.pack(v), ...)
    end
    if #rest > limit then return same(what, table.pack(nil, "limit exceeded"), ...) end
    if #rest == 0 then return same(what, table.pack(nil), ...) end
    local v = rest
    rest = ""
    if line then return same(what, table.pack(v), ...) end
    return same(what, table.pack(nil, "eof", v), ...)
  end
  for _, op in ipairs(p.ops) do
    if os.getenv("FUZZ_TRACE") then io.stderr:write(("op %d %d rest %d\n"):format(op[1], op[2], #rest)) end
    local k, a = op[1], op[2]
    if k == 0 or k == 1 then
      local keep = k == 1
      sep_read("read_line(" .. tostring(keep) .. ")", rest:find("\n", 1, true), 1, keep, true,
        s:read_line(keep))
    elseif k == 2 then
      local sep, keep = SEPS[(a >> 1) % #SEPS + 1], a & 1 == 1
      sep_read(("read_until(%q, %s)"):format(sep, keep), rest:find(sep, 1, true), #sep, keep, false,
        s:read_until(sep, keep))
    elseif k == 3 or k == 4 then
      local n = k == 3 and a % 40 + 1 or a * 33 + 1
      local what = "read_exactly(" .. n .. ")"
      if #rest >= n then
        local v = rest:sub(1, n)
        rest = rest:sub(n + 1)
        same(what, table.pack(v), s:read_exactly(n))
      else
        local v = rest
        rest = ""
        same(what, table.pack(nil, "eof", v), s:read_exactly(n))
      end
    elseif k == 5 then
      local n = a % 50 + 1
      local got = table.pack(s:read(n))
      local v, err = got[1], got[2]
      if #rest == 0 then
        same("read(" .. n .. ") at the end", table.pack(nil), table.unpack(got, 1, got.n))
      elseif type(v) ~= "string" or #v == 0 or #v > n or rest:sub(1, #v) ~= v then
        fail("read(" .. n .. "): got " .. show(v, err) .. ", model a prefix of " .. show(rest:sub(1, n)))
      else
        rest = rest:sub(#v + 1)
      end
    else
      same("read_all", table.pack(rest), s:read_all())
      rest = ""
    end
  end
  same("read_all at the end", table.pack(rest), s:read_all())
  same("read_line after the end", table.pack(nil), s:read_line())
end

return function(input, path)
  if #input < 3 then return end
  local p = decode(input)
  local failure
  local function fail(msg)
    failure = failure or msg
    fuzz_abort(msg)  -- luacheck: ignore 113 (the C target's)
  end
  os.remove(path)
  local srv <close> = assert(corio.serve_unix(path, function(s)
    local ok, err = pcall(reader, s, p, fail)
    if not ok then failure = failure or tostring(err) end
  end, { limit = p.limit }))
  local c = assert(corio.connect_unix(path))
  for _, chunk in ipairs(p.chunks) do
    assert(c:write(chunk))
    assert(c:drain())
    corio.sleep(0)
  end
  assert(c:close())
  srv:close()
  srv:wait_closed()
  if failure then error(failure, 0) end
end
