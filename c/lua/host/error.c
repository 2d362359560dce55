/*
** error.c: one protected-call path for what corio runs on the host's
** behalf (posts, done callbacks, the error handler, hooks), and one place
** every error lands: the host's error hook, or stderr.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* ------------------------------------------------------------ __gc errors */
/* Lua reports an error in a __gc metamethod as a warning ("error in __gc
   (message)"), which is off by default: with a hook set, corio takes the
   state's warnings, posts such an error to the hook (no Lua runs inside a
   finaliser's warning), and handles the rest as Lua's own warn function
   does ("@on", "@off", "Lua warning: ..." on stderr). */
typedef struct warnbuf {
  corio_State *S;
  int on;
  size_t len;
  char msg[512];
} warnbuf;

static void gc_error_post(lua_State *L, void *payload) {
  corio_State *S = corio_state(L);
  lua_pushstring(L, (const char *)payload);
  free(payload);
  lua_pushnil(L);
  if (S != NULL) corio__host_error(L, S, "__gc");
}

static void warn_piece(void *ud, const char *msg, int tocont) {
  warnbuf *w = (warnbuf *)ud;
  size_t n = strlen(msg);
  if (w->len == 0 && !tocont && msg[0] == '@') {  /* a control message */
    if (strcmp(msg, "@on") == 0) w->on = 1;
    else if (strcmp(msg, "@off") == 0) w->on = 0;
    return;
  }
  if (n > sizeof w->msg - 1 - w->len) n = sizeof w->msg - 1 - w->len;
  memcpy(w->msg + w->len, msg, n);
  w->len += n;
  w->msg[w->len] = '\0';
  if (tocont) return;
  w->len = 0;
  if (strncmp(w->msg, "error in __gc", 13) == 0) {  /* "error in __gc (msg)" */
    char *copy = (char *)malloc(strlen(w->msg) + 1);
    if (copy != NULL) {
      strcpy(copy, w->msg);
      if (w->S != NULL && corio_post(w->S, gc_error_post, copy) == 0) return;
      free(copy);
    }
  }
  if (w->on || strncmp(w->msg, "error in ", 9) == 0) {
    fprintf(stderr, "Lua warning: %s\n", w->msg);
    fflush(stderr);
  }
}

/* the state's finaliser: later warnings go to stderr */
void corio__warn_forget(lua_State *L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, "corio.warn") == LUA_TUSERDATA)
    ((warnbuf *)lua_touserdata(L, -1))->S = NULL;
  lua_pop(L, 1);
}

void corio_set_error_hook(lua_State *L, corio_error_hook hook, void *ud) {
  corio_State *S = corio_state(L);
  if (S == NULL) return;
  S->error_hook = hook;
  S->error_hook_ud = ud;
  if (hook != NULL && lua_getfield(L, LUA_REGISTRYINDEX, "corio.warn") != LUA_TUSERDATA) {
    warnbuf *w;
    lua_pop(L, 1);
    w = (warnbuf *)lua_newuserdatauv(L, sizeof *w, 0);  /* lives with L */
    memset(w, 0, sizeof *w);
    w->S = S;
    lua_setfield(L, LUA_REGISTRYINDEX, "corio.warn");
    lua_setwarnf(L, warn_piece, w);
    return;
  }
  lua_pop(L, 1);
}
