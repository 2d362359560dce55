/* A minimal corio host: the host's uv loop, a Lua state, one plugin task. */
#include <stdio.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include <corio.h>

static int failed;

static void on_error(lua_State *L, void *ud) {  /* error, traceback, task */
  (void)ud;
  fprintf(stderr, "plugin failed: %s\n", lua_tostring(L, -2));
  failed = 1;
}

int main(int argc, char **argv) {
  uv_loop_t loop;
  lua_State *L = luaL_newstate();
  if (argc != 2) return fprintf(stderr, "usage: host plugin.lua\n"), 2;
  uv_loop_init(&loop);
  luaL_openlibs(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_corio_core);       /* corio's C half, linked in */
  lua_setfield(L, -2, "corio.core");
  if (luaL_dostring(L, "corio = require 'corio'") != LUA_OK ||
      corio_attach(L, &loop) != 0 || luaL_loadfile(L, argv[1]) != LUA_OK)
    return fprintf(stderr, "%s\n", lua_tostring(L, -1)), 1;
  corio_set_error_hook(L, on_error, NULL);
  corio_spawn(L, 0);                              /* the plugin runs as a task */
  lua_pop(L, 2);                                  /* the Task, the preload table */
  uv_run(&loop, UV_RUN_DEFAULT);                  /* the host's own loop */
  corio_detach(L);
  uv_run(&loop, UV_RUN_DEFAULT);                  /* corio's handles close */
  lua_close(L);
  return uv_loop_close(&loop) != 0 || failed;
}
