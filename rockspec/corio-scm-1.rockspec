-- luarocks --lua-version 5.4 make rockspec/corio-scm-1.rockspec   (from the repo root)
-- Builds the Lua module (corio/core.so + lua/corio/*.lua) and the `corio` command against
-- the system libuv and liblua5.4, found with pkg-config; no network needed.
-- TLS (corio.tls) is built when CMake finds OpenSSL (Debian: libssl-dev); without it
-- corio.tls raises a clear error.
package = "corio"
version = "scm-1"
source = {
   url = "git+https://github.com/corio-lua/corio.git",  -- placeholder
}
description = {
   summary = "asyncio-style concurrency for Lua 5.4 on libuv",
   detailed = [[
Tasks, futures, task groups, cancellation, timeouts, queues and streams:
a C core on libuv maps each Lua coroutine onto a task.]],
   license = "MIT",
}
dependencies = {
   "lua >= 5.4",
}
build = {
   type = "cmake",
   variables = {
      CMAKE_BUILD_TYPE = "Release",
      CMAKE_C_FLAGS = "$(CFLAGS)",
      LUA_INCDIR = "$(LUA_INCDIR)",
      -- install targets: the rock's own lib/ and lua/ dirs, which luarocks then deploys
      LIBDIR = "$(LIBDIR)",
      LUADIR = "$(LUADIR)",
      -- the command goes to the rock's bin/, which luarocks deploys to the tree's bin/;
      -- it finds the Lua files at bin/../share/lua/5.4, where luarocks deploys them
      BINDIR = "$(BINDIR)",
      CORIO_BUILD_CLI = "ON",
      -- the C tests are for the source tree; libcorio and corio.h are for `make install`
      CORIO_BUILD_TESTS = "OFF",
      CORIO_INSTALL_HOST = "OFF",
      -- a newer compiler's new warning must not break a user's install
      CORIO_WERROR = "OFF",
      -- corio.tls on OpenSSL, when found
      CORIO_TLS = "ON",
   },
}
