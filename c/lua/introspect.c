/*
** introspect.c: core._introspect(), what the state holds right now, for
** the check that runs after every spec (spec/after_check.lua,
** docs/testing.md). Internal: not part of the public API.
*/
#include "binding.h"

static void count_kind(uv_handle_t *h, void *arg) {
  lua_State *L = (lua_State *)arg;
  const char *kind;
  if (uv_is_closing(h)) return;
  kind = uv_handle_type_name(uv_handle_get_type(h));
  if (kind == NULL) kind = "unknown";
  lua_pushinteger(L, (lua_getfield(L, -1, kind) == LUA_TNIL ? 0 : lua_tointeger(L, -1)) + 1);
  lua_setfield(L, -3, kind);
  lua_pop(L, 1);
}

/* entries of the table at idx (any keys) */
static lua_Integer count_entries(lua_State *L, int idx) {
  lua_Integer n = 0;
  idx = lua_absindex(L, idx);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    n++;
    lua_pop(L, 1);
  }
  return n;
}

/* the scheduler's slots that hold a value of a run (nil between runs) */
static const struct { int slot; const char *name; } held_slots[] = {
  {SLOT_TB, "traceback"}, {SLOT_MAIN, "main"}, {SLOT_CHAIN, "chain"},
  {SLOT_CHAINTB, "chain_traceback"}, {SLOT_DEADLOCK, "deadlock"},
  {SLOT_ERR, "error"}, {SLOT_ERRS, "errors"},
};

/* core._introspect() -> {
     loop = whether a loop is open, tasks = live tasks, pooled = idle
     coroutines kept for reuse, alive = uv_loop_alive (open loop only),
     handles = {[kind] = n} (the open loop's handles not closing, corio's
     own included), close_failed = loops whose uv_loop_close failed,
     side = {[name] = entries} (the side tables), held = {names of the
     scheduler's slots holding a value}, allocator = "corio" or "lua",
     pages = bytes of the allocator's pages carved, released = of those,
     bytes given back to the system (alloc.c) } */
static int l_introspect(lua_State *L) {
  corio_State *S = corio__state(L);
  size_t i, carved, released;
  lua_createtable(L, 0, 11);
  if (corio__alloc_stats(L, &carved, &released)) {
    lua_pushliteral(L, "corio");
    lua_pushinteger(L, (lua_Integer)carved);
    lua_setfield(L, -3, "pages");
    lua_pushinteger(L, (lua_Integer)released);
    lua_setfield(L, -3, "released");
  }
  else lua_pushliteral(L, "lua");
  lua_setfield(L, -2, "allocator");
  lua_pushboolean(L, S->running);
  lua_setfield(L, -2, "loop");
  lua_pushinteger(L, S->nlive);
  lua_setfield(L, -2, "tasks");
  lua_pushinteger(L, S->npool);
  lua_setfield(L, -2, "pooled");
  lua_pushinteger(L, S->close_failed);
  lua_setfield(L, -2, "close_failed");
  lua_newtable(L);
  if (S->running) {
    uv_walk(S->loop.uv, count_kind, L);
    lua_pushboolean(L, uv_loop_alive(S->loop.uv));
    lua_setfield(L, -3, "alive");
  }
  lua_setfield(L, -2, "handles");
  lua_newtable(L);
  lua_getfield(L, LUA_REGISTRYINDEX, SIDE_REGKEY);
  if (lua_type(L, -1) == LUA_TTABLE) {
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      if (lua_type(L, -1) == LUA_TTABLE && lua_type(L, -2) == LUA_TSTRING) {
        lua_pushvalue(L, -2);
        lua_pushinteger(L, count_entries(L, -2));
        lua_settable(L, -6);
      }
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  lua_setfield(L, -2, "side");
  lua_newtable(L);
  for (i = 0; i < sizeof held_slots / sizeof held_slots[0]; i++) {
    if (lua_isnil(S->L, held_slots[i].slot)) continue;
    lua_pushstring(L, held_slots[i].name);
    lua_rawseti(L, -2, (lua_Integer)luaL_len(L, -2) + 1);
  }
  lua_setfield(L, -2, "held");
  return 1;
}

const luaL_Reg corio__introspect_funcs[] = {
  {"_introspect", l_introspect},
  {NULL, NULL}
};
