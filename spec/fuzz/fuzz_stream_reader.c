/*
** fuzz_stream_reader.c: the stream reader (c/lua/net/stream_read.c:
** read_line, read_until, read_exactly, read, read_all) over arbitrary
** chunk splits, checked against a plain Lua model.
**
** The reader lives in the Lua binding, so the target embeds Lua as a host
** application does (corio.h): one lua_State and one uv loop for the whole
** run, the binding's objects linked in. Each input runs stream_reader.lua's
** function as a task: a Unix socket server reads with a program decoded
** from the input while a client writes the input's data in fuzzed chunks.
** A difference from the model, an error in the task, or anything left on
** the loop afterwards aborts (libFuzzer keeps the input).
*/
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include "corio.h"

#define FUZZ_MAX_INPUT 8192

static lua_State *L;
static uv_loop_t loop;
static int run_ref;
static char path[64];

static void die(const char *what) {
  fprintf(stderr, "fuzz_stream_reader: %s\n", what);
  abort();
}

static int dostring(const char *src) {
  return luaL_dostring(L, src);
}

/* fuzz_abort(msg): a difference from the model stops the run at once */
static int l_abort(lua_State *L1) {
  die(luaL_checkstring(L1, 1));
  return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  snprintf(path, sizeof path, "/tmp/corio-fuzz-%d.sock", (int)getpid());
  if (uv_loop_init(&loop) != 0) die("uv_loop_init");
  L = luaL_newstate();
  if (L == NULL) die("luaL_newstate");
  luaL_openlibs(L);
  if (dostring("package.path = '" CORIO_LUA_DIR "/?.lua;" CORIO_LUA_DIR
               "/?/init.lua;' .. package.path") != LUA_OK)
    die(lua_tostring(L, -1));
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_corio_core);
  lua_setfield(L, -2, "corio.core");
  lua_pop(L, 1);
  if (dostring("corio = require 'corio'") != LUA_OK) die(lua_tostring(L, -1));
  if (corio_attach(L, &loop) != 0) die("corio_attach");
  if (luaL_dofile(L, CORIO_FUZZ_DIR "/stream_reader.lua") != LUA_OK) die(lua_tostring(L, -1));
  run_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_register(L, "fuzz_abort", l_abort);
  /* the task's outcome: a global the wrapper sets */
  if (dostring("function fuzz_wrap(run, input, path)\n"
               "  local ok, err = xpcall(run, debug.traceback, input, path)\n"
               "  fuzz_result = ok and 'ok' or tostring(err)\n"
               "end") != LUA_OK)
    die(lua_tostring(L, -1));
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *res;
  if (size > FUZZ_MAX_INPUT) return -1;  /* not added to the corpus */
  lua_pushnil(L);
  lua_setglobal(L, "fuzz_result");
  lua_getglobal(L, "fuzz_wrap");
  lua_rawgeti(L, LUA_REGISTRYINDEX, run_ref);
  lua_pushlstring(L, (const char *)data, size);
  lua_pushstring(L, path);
  if (corio_spawn(L, 3) != 0) die("corio_spawn");
  lua_pop(L, 1);  /* the Task */
  if (uv_run(&loop, UV_RUN_DEFAULT) != 0) die("the loop did not come back empty");
  lua_getglobal(L, "fuzz_result");
  res = lua_tostring(L, -1);
  if (res == NULL) die("the task did not finish");
  if (res[0] != 'o' || res[1] != 'k' || res[2] != '\0') die(res);
  lua_pop(L, 1);
  /* what the run made goes back now: libFuzzer's leak check (a scan of
     the whole heap) runs only after a run whose mallocs and frees differ */
  lua_gc(L, LUA_GCCOLLECT);
  unlink(path);
  return 0;
}
