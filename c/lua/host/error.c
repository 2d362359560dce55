/*
** error.c: one protected-call path for what corio runs on the host's
** behalf (posts, done callbacks, the error handler, hooks), and one place
** every error lands: the host's error hook, or stderr.
*/
#include <stdio.h>
#include "host.h"

/* message handler: {error, traceback} */
static int msgh(lua_State *L) {
  lua_createtable(L, 2, 0);
  lua_pushvalue(L, 1);
  lua_rawseti(L, -2, 1);
  luaL_traceback(L, L, NULL, 1);
  lua_rawseti(L, -2, 2);
  return 1;
}

/* Call the function below nargs values of L; on an error, the error and
   its traceback go to corio__host_error. Returns the lua_pcall status. */
int corio__host_pcall(lua_State *L, corio_State *S, int nargs, const char *what) {
  int base = lua_gettop(L) - nargs, status;
  lua_pushcfunction(L, msgh);
  lua_insert(L, base);
  status = lua_pcall(L, nargs, 0, base);
  if (status != LUA_OK) {
    if (lua_type(L, -1) == LUA_TTABLE) {
      lua_rawgeti(L, -1, 1);
      lua_rawgeti(L, -2, 2);
      lua_remove(L, -3);
    }
    else lua_pushnil(L);  /* out of memory in the handler: no traceback */
    corio__host_error(L, S, what);
  }
  lua_settop(L, base - 1);
  return status;
}

static int call_hook(lua_State *L) {
  corio_State *S = (corio_State *)lua_touserdata(L, lua_upvalueindex(1));
  S->error_hook(L, S->error_hook_ud);
  return 0;
}

/* The hook with the three values on top of L (popped), protected. */
void corio__call_hook(lua_State *L, corio_State *S) {
  int base = lua_gettop(L) - 3;
  lua_pushlightuserdata(L, S);
  lua_pushcclosure(L, call_hook, 1);
  lua_insert(L, base + 1);
  if (lua_pcall(L, 3, 0, 0) != LUA_OK) {
    fprintf(stderr, "corio: error in the host's error hook: %s\n",
            lua_isstring(L, -1) ? lua_tostring(L, -1) : luaL_typename(L, -1));
    fflush(stderr);
  }
  lua_settop(L, base);
}

/* The error and traceback on top of L (popped) came from `what`. */
void corio__host_error(lua_State *L, corio_State *S, const char *what) {
  if (S->error_hook != NULL) {
    lua_pushstring(L, what);
    corio__call_hook(L, S);
    return;
  }
  {
    const char *tb = lua_isstring(L, -1) ? lua_tostring(L, -1) : "(no traceback)";
    const char *msg = luaL_tolstring(L, -2, NULL);
    fprintf(stderr, "corio: error in a %s: %s\n%s\n", what, msg, tb);
    fflush(stderr);
  }
  lua_pop(L, 3);
}

void corio_set_error_hook(lua_State *L, corio_error_hook hook, void *ud) {
  corio_State *S = corio_state(L);
  if (S == NULL) return;
  S->error_hook = hook;
  S->error_hook_ud = ud;
}
