-- luacheck configuration (make lint)
std = "lua54"
exclude_files = { "build/**", "build-asan/**", "build.luarocks/**" }
-- luacheck cannot tell that a to-be-closed local is "used" by its scope's end, so
-- `local t <close> = corio.timeout(1)` warns; name such locals _ or _t (_anything).
ignore = { "211/_.*" }
-- specs use many to-be-closed scopes named for readability (t, tg, outer...)
files["spec/"] = { std = "+busted", ignore = { "211" }, max_line_length = 140 }
-- corio installs marker-forwarding coroutine.resume/wrap on load (DESIGN.md section 4)
files["lua/corio/"] = { globals = { "coroutine.resume", "coroutine.wrap" } }
