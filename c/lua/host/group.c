/*
** group.c: groups of tasks a host owns (a plugin's tasks): spawn into one,
** cancel it, wait for it with a deadline through a callback, without
** blocking the host's loop. A task spawned by a task of a group joins the
** group, so cancelling a plugin's group reaches everything it started.
**
** Registry: GROUPS[id] = {name = ..., n = live members, live = {Task = true}},
** MEMBER[Task] = id and MEMBER_NAME[Task] = name (weak keys: they outlive
** the membership and the group, so an error report can still name it).
*/
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "host.h"
#include "corio-internal.h"

#define GROUPS_KEY "corio.hostgroups"
#define MEMBER_KEY "corio.hostgroup_of"
#define MEMBER_NAME_KEY "corio.hostgroup_name_of"
#define HANDLE(id) ((corio_hostgroup_t *)(uintptr_t)(id))
#define ID(g) ((lua_Integer)(uintptr_t)(g))
#define POLL_MS 1

typedef struct gwait {
  uv_timer_t timer;
  corio_list_t node;       /* in S->group_waits */
  corio_State *S;
  lua_State *L;
  lua_Integer id;
  uint64_t deadline, ms;
  corio_group_wait_cb cb;
  void *ud;
} gwait;

static void push_reg(lua_State *L, const char *key, int weak) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, key) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    if (weak) {
      lua_createtable(L, 0, 1);
      lua_pushliteral(L, "k");
      lua_setfield(L, -2, "__mode");
      lua_setmetatable(L, -2);
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, key);
  }
}

/* push group id's record; 0 (nothing pushed) if there is none */
static int push_group(lua_State *L, lua_Integer id) {
  push_reg(L, GROUPS_KEY, 0);
  if (lua_rawgeti(L, -1, id) != LUA_TTABLE) {
    lua_pop(L, 2);
    return 0;
  }
  lua_remove(L, -2);
  return 1;
}

static lua_Integer group_size(lua_State *L, lua_Integer id) {
  lua_Integer n = -1;
  if (push_group(L, id)) {
    lua_getfield(L, -1, "n");
    n = lua_tointeger(L, -1);
    lua_pop(L, 2);
  }
  return n;
}

corio_hostgroup_t *corio_hostgroup_new(lua_State *L, const char *name) {
  corio_State *S = corio_state(L);
  uint64_t id;
  if (S == NULL) return NULL;
#ifndef NDEBUG
  if (corio__host_wrong_thread(S, "corio_hostgroup_new")) return NULL;
#endif
  id = ++S->hostfutures;
  push_reg(L, GROUPS_KEY, 0);
  lua_createtable(L, 0, 3);
  lua_pushstring(L, name != NULL ? name : "");
  lua_setfield(L, -2, "name");
  lua_pushinteger(L, 0);
  lua_setfield(L, -2, "n");
  lua_newtable(L);
  lua_setfield(L, -2, "live");
  lua_rawseti(L, -2, (lua_Integer)id);
  lua_pop(L, 1);
  S->hostgroups++;
  return HANDLE(id);
}

/* done callback of a member: upvalue 1 the group's id */
static int member_done(lua_State *L) {
  lua_Integer id = lua_tointeger(L, lua_upvalueindex(1));
  if (!push_group(L, id)) return 0;
  lua_getfield(L, -1, "live");
  lua_pushvalue(L, 1);
  if (lua_rawget(L, -2) != LUA_TNIL) {
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    lua_rawset(L, -4);
    lua_getfield(L, -3, "n");
    lua_pushinteger(L, lua_tointeger(L, -1) - 1);
    lua_setfield(L, -5, "n");
  }
  return 0;
}

/* the Task at tidx joins group id (a live record at gidx) */
static void join(lua_State *L, lua_Integer id, int tidx) {
  int top = lua_gettop(L);
  if (!push_group(L, id)) return;
  lua_getfield(L, -1, "live");
  lua_pushvalue(L, tidx);
  lua_pushboolean(L, 1);
  lua_rawset(L, -3);
  lua_getfield(L, -2, "n");
  lua_pushinteger(L, lua_tointeger(L, -1) + 1);
  lua_setfield(L, -4, "n");
  push_reg(L, MEMBER_KEY, 1);
  lua_pushvalue(L, tidx);
  lua_pushinteger(L, id);
  lua_rawset(L, -3);
  push_reg(L, MEMBER_NAME_KEY, 1);
  lua_pushvalue(L, tidx);
  lua_getfield(L, top + 1, "name");
  lua_rawset(L, -3);
  lua_getfield(L, tidx, "add_done_callback");
  lua_pushvalue(L, tidx);
  lua_pushinteger(L, id);
  lua_pushcclosure(L, member_done, 1);
  lua_call(L, 2, 0);
  lua_settop(L, top);
}

/* From corio__spawn: a task spawned by a member joins its group. */
void corio__hostgroup_inherit(lua_State *L, corio_State *S, int tidx) {
  lua_Integer id;
  if (S->current == NULL) return;
  tidx = lua_absindex(L, tidx);
  push_reg(L, MEMBER_KEY, 1);
  corio__push_task(L, S, S->current);
  lua_rawget(L, -2);
  id = lua_tointeger(L, -1);
  lua_pop(L, 2);
  if (id != 0) join(L, id, tidx);
}

int corio_hostgroup_spawn(lua_State *L, corio_hostgroup_t *g, int nargs) {
  corio_State *S = corio_state(L);
  int err;
  if (S == NULL || !S->running) return CORIO_EINVAL;
  CORIO_LOOP_THREAD(S, "corio_hostgroup_spawn");
  if (group_size(L, ID(g)) < 0) return CORIO_EINVAL;
  err = corio_spawn(L, nargs);
  if (err) return err;
  join(L, ID(g), lua_gettop(L));
  return 0;
}

int corio_hostgroup_cancel(lua_State *L, corio_hostgroup_t *g) {
  corio_State *S = corio_state(L);
  int top = lua_gettop(L);
  if (S == NULL) return CORIO_EINVAL;
  CORIO_LOOP_THREAD(S, "corio_hostgroup_cancel");
  if (!push_group(L, ID(g))) return CORIO_EINVAL;
  lua_getfield(L, -1, "live");
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    luatask *t = (luatask *)lua_touserdata(L, -2);
    lua_pop(L, 1);
    if (S->running) corio_task_cancel(&S->loop, &t->core);
  }
  lua_settop(L, top);
  return 0;
}

size_t corio_hostgroup_size(lua_State *L, corio_hostgroup_t *g) {
  lua_Integer n = group_size(L, ID(g));
  return n < 0 ? 0 : (size_t)n;
}

const char *corio_hostgroup_name_of(lua_State *L, int idx) {
  const char *name;
  idx = lua_absindex(L, idx);
  if (corio_state(L) == NULL) return NULL;
  push_reg(L, MEMBER_NAME_KEY, 1);
  lua_pushvalue(L, idx);
  lua_rawget(L, -2);
  name = lua_tostring(L, -1);  /* the weak table holds it while the Task lives */
  lua_pop(L, 2);
  return name;
}

/* ------------------------------------------------------------ waiting */

static void on_wait_closed(uv_handle_t *h) {
  free(h->data);
}

static void wait_stop(gwait *w) {
  corio__list_remove(&w->node);
  uv_timer_stop(&w->timer);
  uv_close((uv_handle_t *)&w->timer, on_wait_closed);
}

/* the members still alive, named (at most 5), pushed */
static void push_unfinished(lua_State *L, corio_State *S, lua_Integer id, uint64_t ms) {
  int top = lua_gettop(L), k = 0;
  lua_Integer n = group_size(L, id);
  push_group(L, id);
  lua_getfield(L, -1, "live");
  lua_getfield(L, -2, "name");
  lua_pushfstring(L, "group \"%s\": %d task%s did not finish within %d ms:",
                  lua_tostring(L, -1), (int)n, n == 1 ? "" : "s", (int)ms);
  lua_replace(L, top + 1);  /* the message where the record was */
  lua_pop(L, 1);
  lua_pushnil(L);
  while (k < 5 && lua_next(L, top + 2)) {
    luatask *t = (luatask *)lua_touserdata(L, -2);
    lua_pop(L, 1);
    lua_pushvalue(L, top + 1);
    lua_pushfstring(L, "%s task %d", k == 0 ? "" : ",", (int)TASK_ID(t));
    lua_concat(L, 2);
    lua_replace(L, top + 1);
    k++;
  }
  lua_settop(L, top + 1);
  if (n > 5) {
    lua_pushfstring(L, " and %d more", (int)(n - 5));
    lua_concat(L, 2);
  }
  (void)S;
}

static void on_wait_poll(uv_timer_t *h) {
  gwait *w = (gwait *)h->data;
  lua_Integer n = group_size(w->L, w->id);
  corio_group_wait_cb cb = w->cb;
  void *ud = w->ud;
  lua_State *L = w->L;
  corio_hostgroup_t *g = HANDLE(w->id);
  char *msg = NULL;
  int status = 0;
  if (n > 0 && uv_hrtime() < w->deadline) return;
  if (n > 0) {
    size_t len;
    const char *m;
    push_unfinished(L, w->S, w->id, w->ms);
    m = lua_tolstring(L, -1, &len);
    msg = (char *)malloc(len + 1);
    if (msg != NULL) memcpy(msg, m, len + 1);
    lua_pop(L, 1);
    status = CORIO_ETIMEDOUT;
  }
  wait_stop(w);
  cb(L, g, status, msg, ud);
  free(msg);
}

int corio_hostgroup_wait(lua_State *L, corio_hostgroup_t *g, uint64_t timeout_ms,
                         corio_group_wait_cb cb, void *ud) {
  corio_State *S = corio_state(L);
  gwait *w;
  if (S == NULL || !S->running || cb == NULL) return CORIO_EINVAL;
  CORIO_LOOP_THREAD(S, "corio_hostgroup_wait");
  if (group_size(L, ID(g)) < 0) return CORIO_EINVAL;
  w = (gwait *)malloc(sizeof *w);
  if (w == NULL) return CORIO_ENOMEM;
  w->S = S;
  w->L = L;
  w->id = ID(g);
  w->ms = timeout_ms;
  w->deadline = uv_hrtime() + timeout_ms * 1000000u;
  w->cb = cb;
  w->ud = ud;
  if (S->group_waits.next == NULL) corio__list_init(&S->group_waits);
  corio__list_push(&S->group_waits, &w->node);
  uv_timer_init(S->loop.uv, &w->timer);
  w->timer.data = w;
  uv_timer_start(&w->timer, on_wait_poll, 0, POLL_MS);
  return 0;
}

/* Waits on group id end without their callback (NULL: every wait). */
static void stop_waits(corio_State *S, lua_Integer id) {
  corio_list_t *n;
  if (S->group_waits.next == NULL) return;
  n = S->group_waits.next;
  while (n != &S->group_waits) {
    gwait *w = corio__container_of(n, gwait, node);
    n = n->next;
    if (id == 0 || w->id == id) wait_stop(w);
  }
}

void corio__hostgroup_close(corio_State *S) {
  stop_waits(S, 0);
}

void corio_hostgroup_free(lua_State *L, corio_hostgroup_t *g) {
  corio_State *S = corio_state(L);
  if (S == NULL) return;
  if (!push_group(L, ID(g))) return;
  lua_pop(L, 1);
  stop_waits(S, ID(g));
  push_reg(L, GROUPS_KEY, 0);
  lua_pushnil(L);
  lua_rawseti(L, -2, ID(g));
  lua_pop(L, 1);
  S->hostgroups--;
}
