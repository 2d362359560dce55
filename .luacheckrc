-- luacheck configuration (make lint)
std = "lua54"
exclude_files = { "build/**", "build-asan/**", "build-tsan/**", "build.luarocks/**" }
-- luacheck cannot tell that a to-be-closed local is "used" by its scope's end, so
-- `local t <close> = corio.timeout(1)` warns; name such locals _ or _t (_anything).
ignore = { "211/_.*" }
-- specs use many to-be-closed scopes named for readability (t, tg, outer...)
files["spec/"] = { std = "+busted", ignore = { "211" }, max_line_length = 140 }
-- corio installs marker-forwarding coroutine.resume/wrap on load (DESIGN.md section 4)
files["lua/corio/"] = { globals = { "coroutine.resume", "coroutine.wrap" } }
-- Lua run by a C host that sets the global `corio` (corio -i and -e do too)
files["examples/host/plugins/"] = { read_globals = { "corio" } }
files["spec/install/"] = { read_globals = { "corio" } }
