/*
** future.c: Futures the host resolves. The host holds a handle that is a
** number, not an address: handles are never reused in the state's life,
** so resolving one twice, or one whose Future was settled and collected,
** is detected instead of settling some newer Future.
*/
#include <stdint.h>
#include "host.h"

#define HANDLE(id) ((corio_promise_t *)(uintptr_t)(id))
#define ID(f) ((uint64_t)(uintptr_t)(f))

corio_promise_t *corio_future_new(lua_State *L) {
  corio_State *S = corio_state(L);
  uint64_t id;
  if (S == NULL || !S->running) return NULL;
#ifndef NDEBUG
  if (corio__host_wrong_thread(S, "corio_future_new")) return NULL;
#endif
  corio__future_new(L);
  id = ++S->hostfutures;
  corio__push_side(L, S, SIDE_HOSTFUTURES);       /* anchor until settled */
  lua_pushvalue(L, -2);
  lua_rawseti(L, -2, (lua_Integer)id);
  lua_pop(L, 1);
  return HANDLE(id);
}

/* call fut:method(top n values of L), dropping the anchor first */
static int settle(lua_State *L, corio_promise_t *f, const char *method, int n,
                  const char *fn) {
  corio_State *S = corio_state(L);
  uint64_t id = ID(f);
  int base = lua_gettop(L) - n;
  if (S == NULL || n < 0 || base < 0) return CORIO_EINVAL;
  CORIO_LOOP_THREAD(S, fn);
  if (id == 0 || id > S->hostfutures) {
    lua_settop(L, base);
    return CORIO_EINVAL;
  }
  corio__push_side(L, S, SIDE_HOSTFUTURES);
  if (lua_rawgeti(L, -1, (lua_Integer)id) != LUA_TUSERDATA) {  /* settled before */
    lua_settop(L, base);
    return CORIO_EDONE;
  }
  lua_pushnil(L);
  lua_rawseti(L, -3, (lua_Integer)id);
  lua_remove(L, -2);                              /* the Future */
  if (((luafuture *)lua_touserdata(L, -1))->core.state != CORIO_PENDING) {
    lua_settop(L, base);                          /* cancelled by Lua */
    return CORIO_EDONE;
  }
  lua_getfield(L, -1, method);
  lua_insert(L, base + 1);                        /* method, values, fut */
  lua_insert(L, base + 2);                        /* method, fut, values */
  lua_call(L, n + 1, 0);
  return 0;
}

int corio_future_resolve(lua_State *L, corio_promise_t *f, int n) {
  return settle(L, f, "set_result", n, "corio_future_resolve");
}

int corio_future_fail(lua_State *L, corio_promise_t *f) {
  return settle(L, f, "set_error", 1, "corio_future_fail");
}
