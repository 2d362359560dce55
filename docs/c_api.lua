-- docs/c_api.lua: the reference of corio.h, made from the header's own
-- comments (docs/c-api.md). Each banner (/* ---- name */) starts a
-- section; each comment becomes prose; the declarations it speaks of
-- follow it as C. `make docs` writes the page; `make test` checks that the
-- committed page is what the header gives and that every function the
-- header declares has a comment above it.
--
--   lua5.4 docs/c_api.lua c/include/corio.h > docs/c-api.md
--   lua5.4 docs/c_api.lua --check c/include/corio.h docs/c-api.md
local check = arg[1] == "--check"
local header = assert(arg[check and 2 or 1], "usage: docs/c_api.lua [--check] corio.h [page]")

local f = assert(io.open(header))
local src = f:read("a")
f:close()

local out, code, problems = {}, {}, {}
local commented = false  -- a comment came since the last blank line

local function flush_code()
  if #code == 0 then return end
  out[#out + 1] = "```c\n" .. table.concat(code, "\n") .. "\n```\n"
  code = {}
end

local function prose(text)
  flush_code()
  text = text:gsub("\n%s*%*%*? ?", "\n"):gsub("^%s+", ""):gsub("%s+$", "")
  out[#out + 1] = text .. "\n"
end

out[1] = "# corio.h: the C API\n\nMade by `docs/c_api.lua` from the comments of " ..
  "`c/include/corio.h`; do not edit (`make docs` writes it again). How a host " ..
  "uses it: [embedding.md](embedding.md).\n"

local pos, n = 1, #src
local skip = { ["#ifndef CORIO_H"] = true, ["#define CORIO_H"] = true, ["#endif"] = true }
while pos <= n do
  local s, e = src:find("^/%*.-%*/", pos)
  if s then  -- a comment
    local body = src:sub(s + 2, e - 2)
    local title = body:match("^%s*%-%-%-+%s*(.-)%s*$")
    if title then
      flush_code()
      out[#out + 1] = "## " .. title .. "\n"
    elseif pos == 1 then
      prose(body:gsub("^%*%s*", ""))  -- the file's own heading comment
    else
      prose(body)
    end
    commented = true
    pos = e + 1
    local rest = src:match("^[ \t]*\n", pos)
    if rest then pos = pos + #rest end
  else
    local line_end = src:find("\n", pos, true) or n + 1
    local line = src:sub(pos, line_end - 1)
    pos = line_end + 1
    if line:match("^%s*$") then
      flush_code()
      commented = false
    elseif not skip[line] and not line:match("^#include") then
      local fn = line:match("^[%w_ %*]-%**([%w_]+)%(") or line:match("^#define%s+(corio_[%w_]+)%(")
      if fn and not commented and not line:match("^typedef") then
        local section = out[#out]
        if not (section and section:match("^## ")) then problems[#problems + 1] = fn end
      end
      code[#code + 1] = line
    end
  end
end
flush_code()
local page = table.concat(out, "\n")

if check then
  local path = arg[3] or error("--check needs the page")
  local p = assert(io.open(path))
  local have = p:read("a")
  p:close()
  local ok = true
  if have ~= page then
    io.stderr:write("c_api: ", arg[3], " is not what ", header, " gives: run make docs\n")
    ok = false
  end
  if #problems > 0 then
    io.stderr:write("c_api: no comment above: ", table.concat(problems, ", "), "\n")
    ok = false
  end
  if not ok then os.exit(1) end
  print("c_api: " .. arg[3] .. " matches " .. header)
else
  io.write(page)
end
