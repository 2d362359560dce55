-- The corio command (c/cli/main.c): runs a script as the main task.
-- Each spec writes a small script to a temporary file and runs the built
-- command on it through the shell, stderr folded into stdout.

local helper = require "helper"
local CORIO, exists, quote = helper.CORIO, helper.exists, helper.quote

-- run(args [, stdin]) -> output (stdout and stderr), exit status.
-- 'args' is a list of words, each quoted for the shell.
local function run(args, stdin)
  local words = { quote(CORIO) }
  for i, a in ipairs(args) do words[i + 1] = quote(a) end
  local cmd = table.concat(words, " ")
  if stdin then cmd = "printf '%s' " .. quote(stdin) .. " | " .. cmd end
  local p = assert(io.popen("timeout 20 " .. "sh -c " .. quote(cmd) .. " 2>&1"))
  local out = p:read("a")
  local _, how, code = p:close()
  if how == "signal" then code = 128 + code end
  return out, code
end

-- script(source) -> the path of a new temporary file holding 'source';
-- cleanup() removes every path in tmpfiles
local tmpfiles, _, script, cleanup = helper.tmpfiles()

if not exists(CORIO) then
  describe("corio command", function()
    pending(CORIO .. " is not built (cmake -S . -B build && cmake --build build)")
  end)
  return
end

describe("corio command", function()
  after_each(cleanup)

  it("runs a script whose top level awaits", function()
    local path = script([[
      local corio = require "corio"
      print("before")
      corio.sleep(0.01)
      local t = corio.spawn(function(x) corio.sleep(0.01) return x * 2 end, 21)
      print("after", t:await())
    ]])
    local out, code = run({ path })
    assert.are.equal("before\nafter\t42\n", out)
    assert.are.equal(0, code)
  end)

  it("sets arg and passes the arguments as ...", function()
    local path = script([[
      print(arg[-1] ~= nil, arg[0], #arg, arg[1], arg[2])
      print(select("#", ...), ...)
    ]])
    local out, code = run({ path, "one", "two words" })
    assert.are.equal(("true\t%s\t2\tone\ttwo words\n2\tone\ttwo words\n"):format(path), out)
    assert.are.equal(0, code)
  end)

  it("puts the command path at arg[-1]", function()
    local path = script("print(arg[-1])")
    local out, code = run({ path })
    assert.are.equal(CORIO .. "\n", out)
    assert.are.equal(0, code)
  end)

  it("runs -e code as the main task, with the arguments after it", function()
    local out, code = run({ "-e",
      "local corio = require 'corio'; corio.sleep(0.01); print('e', #arg, ...)", "a", "b" })
    assert.are.equal("e\t2\ta\tb\n", out)
    assert.are.equal(0, code)
  end)

  it("reads the script from stdin with - and with no script", function()
    local src = "require('corio').sleep(0.001); print('stdin', ...)"
    local out, code = run({ "-", "x" }, src)
    assert.are.equal("stdin\tx\n", out)
    assert.are.equal(0, code)
    out, code = run({}, src)
    assert.are.equal("stdin\n", out)
    assert.are.equal(0, code)
  end)

  it("prints its version with -v", function()
    local out, code = run({ "-v" })
    assert.matches("^corio %d+%.%d+%.%d+%S* %(Lua 5%.4%.%d+, libuv %d+%.%d+%.%d+%S*%)\n$", out)
    assert.are.equal(0, code)
  end)

  it("rejects an unknown option with a usage message and status 2", function()
    local out, code = run({ "-Z" })
    assert.matches("unrecognized option '%-Z'", out)
    assert.matches("usage: corio", out)
    assert.are.equal(2, code)
  end)

  it("runs the prompt with -i (spec/repl_spec.lua has the rest)", function()
    local out, code = run({ "-i" }, "return 6 * 7\n")
    assert.are.equal("> 42\n> ", out)
    assert.are.equal(0, code)
  end)

  it("reports a failing main task with its traceback and status 1", function()
    local path = script([[
      local corio = require "corio"
      local function explode()
        corio.sleep(0.001)
        error("kaboom")
      end
      explode()
    ]])
    local out, code = run({ path })
    assert.are.equal(1, code)
    assert.matches("^corio: [^\n]*:4: kaboom\n", out)
    assert.matches("stack traceback:", out, 1, true)
    assert.matches("explode", out, 1, true)
  end)

  it("reports a non-string error through __tostring", function()
    local out, code = run({ "-e",
      "error(setmetatable({}, { __tostring = function() return 'custom error' end }))" })
    assert.are.equal(1, code)
    assert.matches("^corio: custom error", out)
  end)

  it("reports a syntax error with status 1 without running anything", function()
    local path = script("print('ran')\nlocal x = = 1\n")
    local out, code = run({ path })
    assert.are.equal(1, code)
    assert.matches("^corio: [^\n]*:2: unexpected symbol near '='", out)
    assert.is_nil(out:find("ran", 1, true))
  end)

  it("reports a missing script with status 1", function()
    local out, code = run({ "/nonexistent/script.lua" })
    assert.are.equal(1, code)
    assert.matches("^corio: cannot open /nonexistent/script.lua", out)
  end)

  -- signal_run(name, source) -> output, how, code: runs the script with a
  -- marker file as arg[1]; once the script has written to it, the shell sends
  -- signal 'name' to the command (the exec'd command keeps the shell's pid).
  local function signal_run(name, source)
    local marker = os.tmpname()
    os.remove(marker)
    tmpfiles[#tmpfiles + 1] = marker
    local path = script(source)
    local cmd = ("(while [ ! -s %s ]; do sleep 0.05; done; kill -%s $$) & exec %s %s %s")
      :format(quote(marker), name, quote(CORIO), quote(path), quote(marker))
    local p = assert(io.popen("timeout 20 sh -c " .. quote(cmd) .. " 2>&1"))
    local out = p:read("a")
    local _, how, code = p:close()
    return out, how, code
  end

  it("prints the task dump on SIGUSR1 and goes on", function()
    local out, how, code = signal_run("USR1", [[
      local corio = require "corio"
      local t = corio.spawn(corio.sleep, 30)
      t:set_name("sleeper")
      local f = assert(io.open(arg[1], "w"))
      f:write("started\n")
      f:close()
      corio.sleep(1)
      t:cancel()
      print("done")
    ]])
    assert.are.equal("exit", how)
    assert.are.equal(0, code)
    assert.matches('"sleeper"', out, 1, true)
    assert.matches("done\n$", out)
  end)

  it("exits with status 130 when Ctrl-C cancels the main task", function()
    local t0 = os.time()
    local out, how, code = signal_run("INT", [[
      local corio = require "corio"
      local f = assert(io.open(arg[1], "w"))
      f:write("started\n")
      f:close()
      do
        local _guard <close> = setmetatable({}, { __close = function() print("closed") end })
        corio.sleep(30)
      end
      print("not reached")
    ]])
    assert.are.equal("exit", how)
    assert.are.equal(130, code)
    assert.is_true(os.time() - t0 < 15)
    assert.matches("closed\n", out, 1, true)
    assert.matches("corio: interrupted", out, 1, true)
    assert.is_nil(out:find("not reached", 1, true))
  end)

  it("a second Ctrl-C ends a script that never returns to the loop", function()
    local marker = os.tmpname()
    os.remove(marker)
    tmpfiles[#tmpfiles + 1] = marker
    local path = script([[
      local f = assert(io.open(arg[1], "w"))
      f:write("started\n")
      f:close()
      while true do end
    ]])
    local cmd = ("(while [ ! -s %s ]; do sleep 0.05; done; kill -INT $$; sleep 0.2; kill -INT $$) & exec %s %s %s")
      :format(quote(marker), quote(CORIO), quote(path), quote(marker))
    local t0 = os.time()
    local p = assert(io.popen("timeout 20 sh -c " .. quote(cmd) .. " 2>&1; echo \"status=$?\""))
    local out = p:read("a")
    p:close()
    assert.is_true(os.time() - t0 < 15)
    assert.matches("status=130", out, 1, true)  -- killed by SIGINT, as lua5.4 would be
  end)
end)
