/*
** future.c: the Future type: a result that something else will set.
** Its values live in the userdata's uservalue (one value as is, more
** packed in a table).
*/
#include "binding.h"

static luafuture *check_future(lua_State *L, const char *method) {
  return (luafuture *)corio__check_self(L, 1, FUTURE_MT, method, "Future");
}

int corio__future_new(lua_State *L) {
  luafuture *f = (luafuture *)lua_newuserdatauv(L, sizeof *f, 1);
  corio_future_init(&f->core);
  f->n = 0;
  f->packed = 0;
  luaL_setmetatable(L, FUTURE_MT);
  return 1;
}

/* push the outcome of the finished future at idx, or raise its error */
int corio__future_outcome(lua_State *L, int idx) {
  luafuture *f = (luafuture *)lua_touserdata(L, idx);
  int i, n = f->n;
  lua_getiuservalue(L, idx, 1);
  if (f->core.state != CORIO_DONE) return lua_error(L);
  if (!f->packed) {
    if (n == 0) lua_pop(L, 1);
    return n;
  }
  luaL_checkstack(L, n, "too many results");
  for (i = 1; i <= n; i++) lua_rawgeti(L, -i, i);
  lua_remove(L, -n - 1);
  return n;
}

static void settle(lua_State *L, luafuture *f, int state) {
  corio_State *S = corio__state(L);
  corio_future_finish(&S->loop, &f->core, state);
  corio__run_callbacks(L, S, 1);
}

static luafuture *check_pending(lua_State *L, const char *fname) {
  luafuture *f = check_future(L, fname);
  if (f->core.state != CORIO_PENDING)
    luaL_error(L, "%s: future already done", fname);
  return f;
}

static int f_set_result(lua_State *L) {
  luafuture *f = check_pending(L, "future:set_result");
  int n = lua_gettop(L) - 1, i;
  if (n == 1) lua_pushvalue(L, 2);
  else if (n == 0) lua_pushnil(L);
  else {
    lua_createtable(L, n, 1);
    for (i = 1; i <= n; i++) {
      lua_pushvalue(L, i + 1);
      lua_rawseti(L, -2, i);
    }
  }
  lua_setiuservalue(L, 1, 1);
  f->n = n;
  f->packed = n > 1;
  settle(L, f, CORIO_DONE);
  return 0;
}

static int f_set_error(lua_State *L) {
  luafuture *f = check_pending(L, "future:set_error");
  luaL_checkany(L, 2);
  lua_settop(L, 2);
  lua_setiuservalue(L, 1, 1);
  settle(L, f, corio__is_cancel(L, 2) ? CORIO_CANCELLED : CORIO_FAILED);
  return 0;
}

static int f_cancel(lua_State *L) {
  luafuture *f = check_future(L, "future:cancel");
  lua_settop(L, 2);
  if (f->core.state != CORIO_PENDING) {
    lua_pushboolean(L, 0);
    return 1;
  }
  lua_createtable(L, 0, 1);
  lua_pushvalue(L, 2);
  lua_setfield(L, -2, "message");
  luaL_setmetatable(L, CANCEL_MT);
  lua_setiuservalue(L, 1, 1);
  settle(L, f, CORIO_CANCELLED);
  lua_pushboolean(L, 1);
  return 1;
}

static int f_done(lua_State *L) {
  lua_pushboolean(L, check_future(L, "future:done")->core.state != CORIO_PENDING);
  return 1;
}

static int f_cancelled(lua_State *L) {
  lua_pushboolean(L, check_future(L, "future:cancelled")->core.state == CORIO_CANCELLED);
  return 1;
}

static int f_result(lua_State *L) {
  luafuture *f = check_future(L, "future:result");
  if (f->core.state == CORIO_PENDING)
    return luaL_error(L, "future:result: future not done");
  lua_settop(L, 1);
  return corio__future_outcome(L, 1);
}

static int f_error(lua_State *L) {
  luafuture *f = check_future(L, "future:error");
  if (f->core.state == CORIO_PENDING)
    return luaL_error(L, "future:error: future not done");
  if (f->core.state == CORIO_DONE) lua_pushnil(L);
  else lua_getiuservalue(L, 1, 1);
  return 1;
}

static int f_add_done_callback(lua_State *L) {
  luafuture *f = check_future(L, "future:add_done_callback");
  return corio__add_done_callback(L, f->core.state != CORIO_PENDING);
}

static int f_tostring(lua_State *L) {
  static const char *const states[] = {"pending", "done", "failed", "cancelled"};
  luafuture *f = check_future(L, "future:__tostring");
  lua_pushfstring(L, "future (%s): %p", states[f->core.state], (void *)f);
  return 1;
}

static const luaL_Reg future_methods[] = {
  {"set_result", f_set_result},
  {"set_error", f_set_error},
  {"cancel", f_cancel},
  {"done", f_done},
  {"cancelled", f_cancelled},
  {"result", f_result},
  {"error", f_error},
  {"add_done_callback", f_add_done_callback},
  {NULL, NULL}
};

const luaL_Reg corio__future_funcs[] = {
  {"future", corio__future_new},
  {NULL, NULL}
};

/* stack: state userdata at -1; "await" is added by the module */
void corio__open_future(lua_State *L) {
  luaL_newmetatable(L, FUTURE_MT);
  lua_newtable(L);
  lua_pushvalue(L, -3);
  luaL_setfuncs(L, future_methods, 1);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, f_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
}
