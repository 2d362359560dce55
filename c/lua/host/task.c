/*
** task.c: a C handle on a Task (its state, cancelling it, a C callback
** when it is done) without calling into Lua. Handles are ids, never
** reused; the Task stays alive until the host releases its handle.
*/
#include <stdint.h>
#include "host.h"

#define TASKS_KEY "corio.hosttasks"
#define HANDLE(id) ((corio_taskref_t *)(uintptr_t)(id))
#define ID(r) ((lua_Integer)(uintptr_t)(r))

/* push the registry's id -> Task table */
static void push_tasks(lua_State *L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, TASKS_KEY) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, TASKS_KEY);
  }
}

/* the task behind r, pushed; NULL (nothing pushed) if released or unknown */
static luatask *push_task(lua_State *L, corio_taskref_t *r) {
  push_tasks(L);
  if (lua_rawgeti(L, -1, ID(r)) != LUA_TUSERDATA) {
    lua_pop(L, 2);
    return NULL;
  }
  lua_remove(L, -2);
  return (luatask *)lua_touserdata(L, -1);
}

corio_taskref_t *corio_taskref(lua_State *L, int idx) {
  corio_State *S = corio_state(L);
  int is_task;
  uint64_t id;
  if (S == NULL) return NULL;
#ifndef NDEBUG
  if (corio__host_wrong_thread(S, "corio_taskref")) return NULL;
#endif
  idx = lua_absindex(L, idx);
  if (!lua_getmetatable(L, idx)) return NULL;
  is_task = lua_topointer(L, -1) == S->task_mt;
  lua_pop(L, 1);
  if (!is_task) return NULL;
  id = ++S->hostfutures;  /* one counter for every host handle */
  push_tasks(L);
  lua_pushvalue(L, idx);
  lua_rawseti(L, -2, (lua_Integer)id);
  lua_pop(L, 1);
  return HANDLE(id);
}

int corio_taskref_state(lua_State *L, corio_taskref_t *r) {
  luatask *t = push_task(L, r);
  int state;
  if (t == NULL) return CORIO_EINVAL;
  state = t->core.done.state;
  lua_pop(L, 1);
  return state;
}

int corio_taskref_cancel(lua_State *L, corio_taskref_t *r) {
  corio_State *S = corio_state(L);
  luatask *t;
  int err;
  if (S == NULL) return CORIO_EINVAL;
  CORIO_LOOP_THREAD(S, "corio_taskref_cancel");
  t = push_task(L, r);
  if (t == NULL) return CORIO_EINVAL;
  err = S->running ? corio_task_cancel(&S->loop, &t->core) : CORIO_EDONE;
  lua_pop(L, 1);
  return err;
}

typedef struct done_cb {
  corio_task_done_cb cb;
  void *ud;
  lua_Integer id;
} done_cb;

static int call_done(lua_State *L) {
  done_cb *d = (done_cb *)lua_touserdata(L, lua_upvalueindex(1));
  luatask *t = (luatask *)lua_touserdata(L, 1);
  d->cb(L, HANDLE(d->id), t->core.done.state, d->ud);
  return 0;
}

int corio_taskref_on_done(lua_State *L, corio_taskref_t *r,
                          corio_task_done_cb cb, void *ud) {
  corio_State *S = corio_state(L);
  done_cb *d;
  int top = lua_gettop(L), status;
  if (S == NULL || cb == NULL) return CORIO_EINVAL;
  CORIO_LOOP_THREAD(S, "corio_taskref_on_done");
  if (push_task(L, r) == NULL) return CORIO_EINVAL;
  lua_getfield(L, -1, "add_done_callback");
  lua_insert(L, -2);
  d = (done_cb *)lua_newuserdatauv(L, sizeof *d, 0);
  d->cb = cb;
  d->ud = ud;
  d->id = ID(r);
  lua_pushcclosure(L, call_done, 1);
  status = lua_pcall(L, 2, 0, 0);  /* runs it now if the task is done */
  lua_settop(L, top);
  return status == LUA_OK ? 0 : CORIO_ENOMEM;
}

void corio_taskref_release(lua_State *L, corio_taskref_t *r) {
  if (corio_state(L) == NULL) return;
  push_tasks(L);
  lua_pushnil(L);
  lua_rawseti(L, -2, ID(r));
  lua_pop(L, 1);
}
