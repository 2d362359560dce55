-- The prompt of the corio command (c/cli/repl.c): `corio -i`, and `corio`
-- alone on a terminal. Through a pipe here; through a pseudo-terminal by
-- spec/repl_pty.py (Ctrl-C, Ctrl-D, line editing).

local helper = require "helper"
local CORIO, exists, quote = helper.CORIO, helper.exists, helper.quote
local tmpfiles, _, script, cleanup = helper.tmpfiles()
local ROOT = debug.getinfo(1, "S").source:match("^@(.*)/spec/[^/]*$") or "."

-- run(args, stdin) -> stdout, stderr, exit status
local function run(args, stdin)
  local words = { quote(CORIO) }
  for i, a in ipairs(args) do words[i + 1] = quote(a) end
  local err = script("")
  local cmd = "printf '%s' " .. quote(stdin) .. " | " .. table.concat(words, " ") .. " 2>" .. quote(err)
  local p = assert(io.popen("timeout 20 sh -c " .. quote(cmd)))
  local out = p:read("a")
  local _, how, code = p:close()
  if how == "signal" then code = 128 + code end
  return out, helper.slurp(err), code
end

if not exists(CORIO) then
  describe("corio -i", function()
    pending(CORIO .. " is not built (cmake -S . -B build && cmake --build build)")
  end)
  return
end

describe("corio -i", function()
  after_each(cleanup)
  _ = tmpfiles

  it("prints a line's values as lua -i does; a line may wait at top level", function()
    local out, err, code = run({ "-i" },
      "x = 20\nx + 22\ncorio.sleep(0.01) return 'a', nil, x\nreturn\n")
    assert.are.equal("> > 42\n> a\tnil\t20\n> > ", out)
    assert.are.equal("", err)
    assert.are.equal(0, code)
  end)

  it("continues an incomplete block on the next line", function()
    local out, _, code = run({ "-i" }, "local t = {}\nfor i = 1, 3 do\nt[i] = i * i\nend\nfunction f(a,\nb) return a + b end\nf(1, 2)\n")
    assert.are.equal("> > >> >> > >> > 3\n> ", out)
    assert.are.equal(0, code)
  end)

  it("reports an error and goes on", function()
    local out, err, code = run({ "-i" }, "error('oops')\n1 +\n\nreturn 'after'\n")
    assert.matches("stdin:1: oops\nstack traceback:", err, 1, false)
    assert.matches("unexpected symbol", err)
    assert.matches("after\n> $", out)
    assert.are.equal(0, code)
  end)

  it("keeps spawned tasks running between lines; at the end cancels what is left", function()
    local out, _, code = run({ "-i" },
      "corio.spawn(function() corio.sleep(0.2) print('bg done') end) return 'spawned'\n" ..
      "corio.sleep(1)\n" ..  -- wide apart: a loaded machine took the 10 ms before the prompt
      "corio.spawn(function() local _c <close> = setmetatable({}, {__close = function() print('cleanup') end}) corio.sleep(100) end)\n" ..
      "corio.sleep(0.01)\n")
    assert.matches("spawned\n> bg done\n", out, 1, true)
    assert.matches("cleanup\n$", out)
    assert.are.equal(0, code)
  end)

  it("runs a script first with -i script, and -e code has corio as a global", function()
    local path = script("answer = 41 corio.sleep(0.01) print('script ran')")
    local out, _, code = run({ "-i", path }, "answer + 1\n")
    assert.are.equal("script ran\n> 42\n> ", out)
    assert.are.equal(0, code)
    out = run({ "-e", "corio.sleep(0.01) print(type(corio.spawn))" }, "")
    assert.are.equal("function\n", out)
    out = run({ "-", "x" }, "print(corio, ...)")   -- scripts still require it
    assert.are.equal("nil\tx\n", out)
  end)

  local has_python = os.execute("command -v python3 >/dev/null 2>&1")
  local pty_it = has_python and it or pending
  pty_it("works on a terminal: waits, background output, errors, blocks, Ctrl-C, Ctrl-D", function()
    local p = assert(io.popen("timeout 240 python3 " .. quote(ROOT .. "/spec/repl_pty.py") .. " " .. quote(CORIO) .. " 2>&1"))
    local out = p:read("a")
    p:close()
    assert.are.equal("repl_pty: ok\n", out)
  end)
end)
