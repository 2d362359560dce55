/*
** fuzz_tls.c: the TLS record path (c/lua/tls/): arbitrary bytes as the
** peer's records, for a corio TLS stream in the client and in the server
** role, and a real handshake and exchange between two corio TLS streams
** through a proxy that flips, inserts, drops or cuts bytes, or passes them
** on in small pieces, as the input says.
**
** Like fuzz_stream_reader, the target embeds Lua as a host application
** does (corio.h): one lua_State and one uv loop for the whole run, the
** binding's objects linked in. Each input runs tls_records.lua's function
** as a task over Unix sockets. A failure that is not clean (ETLS,
** ECONNRESET, EPIPE or "closed"), bytes read that the other side never
** sent, a side that does not end once its peer is gone, an error in the
** task, or anything left on the loop afterwards aborts (libFuzzer keeps
** the input); ASan and UBSan watch the rest.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
  fprintf(stderr, "fuzz_tls: %s\n", what);
  abort();
}

static void unlink_all(void) {
  char p[80];
  unlink(path);
  snprintf(p, sizeof p, "%s.s", path);
  unlink(p);
  snprintf(p, sizeof p, "%s.p", path);
  unlink(p);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  snprintf(path, sizeof path, "/tmp/corio-fuzz-tls-%d.sock", (int)getpid());
  if (uv_loop_init(&loop) != 0) die("uv_loop_init");
  L = luaL_newstate();
  if (L == NULL) die("luaL_newstate");
  luaL_openlibs(L);
  if (luaL_dostring(L, "package.path = '" CORIO_LUA_DIR "/?.lua;" CORIO_LUA_DIR
                    "/?/init.lua;' .. package.path") != LUA_OK)
    die(lua_tostring(L, -1));
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_corio_core);
  lua_setfield(L, -2, "corio.core");
  lua_pop(L, 1);
  if (luaL_dostring(L, "corio = require 'corio'\n"
                    "assert(corio.tls.available(), 'this corio has no TLS')") != LUA_OK)
    die(lua_tostring(L, -1));
  if (corio_attach(L, &loop) != 0) die("corio_attach");
  if (luaL_dofile(L, CORIO_FUZZ_DIR "/tls_records.lua") != LUA_OK) die(lua_tostring(L, -1));
  run_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  if (luaL_dostring(L, "function fuzz_wrap(run, input, path)\n"
                    "  local ok, err = xpcall(run, debug.traceback, input, path)\n"
                    "  fuzz_result = ok and 'ok' or tostring(err)\n"
                    "end") != LUA_OK)
    die(lua_tostring(L, -1));
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *res;
  if (size > FUZZ_MAX_INPUT) return -1;  /* not added to the corpus */
  unlink_all();
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
  if (strcmp(res, "ok") != 0) die(res);
  lua_pop(L, 1);
  /* what the run made goes back now: libFuzzer's leak check (a scan of
     the whole heap) runs only after a run whose mallocs and frees differ */
  lua_gc(L, LUA_GCCOLLECT);
  unlink_all();
  return 0;
}
