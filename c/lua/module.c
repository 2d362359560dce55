/*
** module.c: luaopen_corio_core, the one loader. It makes the state
** userdata (upvalue 1 of every function), the metatables, and the module
** table; lua/corio/init.lua wraps it into the public `corio` module.
*/
#include <signal.h>
#include <string.h>
#include "binding.h"

static int cancelled_tostring(lua_State *L) {
  lua_getfield(L, 1, "message");
  if (lua_isnil(L, -1)) lua_pushliteral(L, "cancelled");
  else {
    luaL_tolstring(L, -1, NULL);
    lua_pushfstring(L, "cancelled: %s", lua_tostring(L, -1));
  }
  return 1;
}

static int l_is_cancelled(lua_State *L) {
  lua_pushboolean(L, corio__is_cancel(L, 1));
  return 1;
}

static void add(lua_State *L, int st, const luaL_Reg *funcs) {
  lua_pushvalue(L, st);          /* the state: upvalue 1 */
  luaL_setfuncs(L, funcs, 1);
}

int luaopen_corio_core(lua_State *L) {
  corio_State *S;
  int st;
  unsigned options = corio__options(L);  /* the host's choices (host/state.c) */
  if (!(options & CORIO_KEEP_SIGPIPE))
    signal(SIGPIPE, SIG_IGN);  /* a write to a closed peer is an error value */
  lua_getfield(L, LUA_REGISTRYINDEX, STATE_MT);
  if (lua_type(L, -1) == LUA_TUSERDATA) {  /* opened before: one state per Lua state */
    lua_getiuservalue(L, -1, 3);
    return 1;
  }
  lua_pop(L, 1);
  if (!(options & CORIO_KEEP_ALLOC)) corio__alloc_install(L);
  S = corio__new_state();
  if (S == NULL) return luaL_error(L, "corio: out of memory");
  *(corio_State **)lua_newuserdatauv(L, sizeof S, 3) = S;
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, corio__state_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, STATE_MT);
  corio__init_scheduler(L, S);
  st = lua_gettop(L);
  corio__open_task(L);
  luaL_getmetatable(L, TASK_MT);
  S->task_mt = lua_topointer(L, -1);
  lua_xmove(L, S->L, 1);
  lua_replace(S->L, SLOT_TASKMT);
  corio__open_future(L);
  luaL_getmetatable(L, FUTURE_MT);
  S->future_mt = lua_topointer(L, -1);
  lua_pop(L, 1);
  corio__open_scope(L);
  corio__open_stream(L);
  corio__open_tcp(L);
  corio__open_pipe(L);
  corio__open_udp(L);
  corio__open_tls(L);
  corio__iomod_add(S, &corio__net_iomod);
  corio__open_process(L);
  corio__iomod_add(S, &corio__proc_iomod);
  corio__open_signal(L);
  corio__iomod_add(S, &corio__signal_iomod);
  luaL_newmetatable(L, CANCEL_MT);
  lua_pushcfunction(L, cancelled_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);

  lua_newtable(L);                                /* the module */
  add(L, st, corio__task_funcs);
  add(L, st, corio__future_funcs);
  add(L, st, corio__run_funcs);
  add(L, st, corio__introspect_funcs);
  add(L, st, corio__scope_funcs);
  add(L, st, corio__gather_funcs);
  add(L, st, corio__queue_funcs);
  add(L, st, corio__tcp_funcs);
  add(L, st, corio__pipe_funcs);
  add(L, st, corio__udp_funcs);
  add(L, st, corio__tls_funcs);
  add(L, st, corio__tlsctx_funcs);
  add(L, st, corio__dns_funcs);
  add(L, st, corio__process_funcs);
  add(L, st, corio__signal_funcs);
  add(L, st, corio__checkpoint_funcs);
  corio__open_thread(L, st);
  corio__open_fs(L, st);
  lua_setfield(L, -2, "fs");
  corio__iomod_add(S, &corio__fs_iomod);
  lua_pushcfunction(L, l_is_cancelled);
  lua_setfield(L, -2, "is_cancelled");
  luaL_getmetatable(L, CANCEL_MT);
  lua_setfield(L, -2, "Cancelled");
  luaL_getmetatable(L, TASK_MT);
  lua_setfield(L, -2, "Task");
  luaL_getmetatable(L, FUTURE_MT);
  lua_setfield(L, -2, "Future");
  luaL_getmetatable(L, GROUP_MT);
  lua_setfield(L, -2, "TaskGroup");
  luaL_getmetatable(L, SCOPE_MT);
  lua_setfield(L, -2, "Scope");
  lua_getfield(L, -1, "_open_gather");
  lua_call(L, 0, 0);
  /* future:await is corio.await */
  luaL_getmetatable(L, FUTURE_MT);
  lua_getfield(L, -1, "__index");
  lua_getfield(L, -3, "await");
  lua_setfield(L, -2, "await");
  lua_pop(L, 2);
  /* corio's coroutine.resume and coroutine.wrap */
  lua_newtable(L);
  lua_getfield(L, LUA_REGISTRYINDEX, STATE_MT);
  luaL_setfuncs(L, corio__coroutine_funcs, 1);
  lua_setfield(L, -2, "coroutine_funcs");
  lua_pushliteral(L, CORIO_VERSION);
  lua_setfield(L, -2, "version");
  lua_pushboolean(L, !(options & CORIO_KEEP_COROUTINE));
  lua_setfield(L, -2, "replace_coroutine");
  /* remember the module for a second open */
  lua_getfield(L, LUA_REGISTRYINDEX, STATE_MT);
  lua_pushvalue(L, -2);
  lua_setiuservalue(L, -2, 3);
  lua_pop(L, 1);
  return 1;
}
