/*
** host_test.h: what the host tests (spec/c/host_*.c) share: a Lua state
** with corio open on a host's uv loop, as an application embeds it.
*/
#ifndef CORIO_HOST_TEST_H
#define CORIO_HOST_TEST_H

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include "corio.h"
#include "test_core.h"

/* a Lua state with `corio` as a global (the Lua layer from the source tree) */
static inline lua_State *host_state(void) {
  lua_State *L = luaL_newstate();
  CHECK(L != NULL);
  luaL_openlibs(L);
  CHECK(luaL_dostring(L, "package.path = '" CORIO_LUA_DIR "/?.lua;"
                      CORIO_LUA_DIR "/?/init.lua;' .. package.path") == LUA_OK);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_corio_core);
  lua_setfield(L, -2, "corio.core");
  lua_pop(L, 1);
  CHECK(luaL_dostring(L, "corio = require 'corio'") == LUA_OK);
  return L;
}

/* ... attached to loop */
static inline lua_State *host_attached(uv_loop_t *loop) {
  lua_State *L = host_state();
  CHECK(corio_attach(L, loop) == 0);
  return L;
}

static inline void host_do(lua_State *L, const char *code) {
  if (luaL_dostring(L, code) != LUA_OK) {
    fprintf(stderr, "%s\n", lua_tostring(L, -1));
    CHECK(0);
  }
}

/* spawn code as a task; the Task is dropped */
static inline void host_spawn(lua_State *L, const char *code) {
  CHECK(luaL_loadstring(L, code) == LUA_OK);
  CHECK(corio_spawn(L, 0) == 0);
  lua_pop(L, 1);
}

static inline lua_Integer host_int(lua_State *L, const char *name) {
  lua_Integer v;
  lua_getglobal(L, name);
  v = lua_tointeger(L, -1);
  lua_pop(L, 1);
  return v;
}

/* detach, let the closes complete, close everything */
static inline void host_close(lua_State *L, uv_loop_t *loop) {
  CHECK(corio_detach(L) == 0);
  CHECK(uv_run(loop, UV_RUN_DEFAULT) == 0);
  lua_close(L);
  CHECK(uv_loop_close(loop) == 0);
}

#endif
