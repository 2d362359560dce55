/*
** lua_host.c: the Lua-embedding harness of the fuzz targets (lua_host.h).
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include <lualib.h>
#include "corio.h"
#include "lua_host.h"

static lua_State *L;
static uv_loop_t loop;
static int run_ref;
static const char *target_name = "fuzz";

void fuzz_host_die(const char *what) {
  fprintf(stderr, "%s: %s\n", target_name, what);
  abort();
}

lua_State *fuzz_host_init(const char *target, const char *setup, const char *script) {
  target_name = target;
  if (uv_loop_init(&loop) != 0) fuzz_host_die("uv_loop_init");
  L = luaL_newstate();
  if (L == NULL) fuzz_host_die("luaL_newstate");
  luaL_openlibs(L);
  if (luaL_dostring(L, "package.path = '" CORIO_LUA_DIR "/?.lua;" CORIO_LUA_DIR
                    "/?/init.lua;' .. package.path") != LUA_OK)
    fuzz_host_die(lua_tostring(L, -1));
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_corio_core);
  lua_setfield(L, -2, "corio.core");
  lua_pop(L, 1);
  if (luaL_dostring(L, "corio = require 'corio'") != LUA_OK) fuzz_host_die(lua_tostring(L, -1));
  if (setup != NULL && luaL_dostring(L, setup) != LUA_OK) fuzz_host_die(lua_tostring(L, -1));
  if (corio_attach(L, &loop) != 0) fuzz_host_die("corio_attach");
  if (luaL_dofile(L, script) != LUA_OK) fuzz_host_die(lua_tostring(L, -1));
  run_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  /* the task's outcome: a global the wrapper sets */
  if (luaL_dostring(L, "function fuzz_wrap(run, input, path)\n"
                    "  local ok, err = xpcall(run, debug.traceback, input, path)\n"
                    "  fuzz_result = ok and 'ok' or tostring(err)\n"
                    "end") != LUA_OK)
    fuzz_host_die(lua_tostring(L, -1));
  return L;
}

void fuzz_host_run(const uint8_t *data, size_t size, const char *path) {
  const char *res;
  lua_pushnil(L);
  lua_setglobal(L, "fuzz_result");
  lua_getglobal(L, "fuzz_wrap");
  lua_rawgeti(L, LUA_REGISTRYINDEX, run_ref);
  lua_pushlstring(L, (const char *)data, size);
  lua_pushstring(L, path);
  if (corio_spawn(L, 3) != 0) fuzz_host_die("corio_spawn");
  lua_pop(L, 1);  /* the Task */
  if (uv_run(&loop, UV_RUN_DEFAULT) != 0) fuzz_host_die("the loop did not come back empty");
  lua_getglobal(L, "fuzz_result");
  res = lua_tostring(L, -1);
  if (res == NULL) fuzz_host_die("the task did not finish");
  if (strcmp(res, "ok") != 0) fuzz_host_die(res);
  lua_pop(L, 1);
  /* what the run made goes back now: libFuzzer's leak check (a scan of
     the whole heap) runs only after a run whose mallocs and frees differ */
  lua_gc(L, LUA_GCCOLLECT);
}
