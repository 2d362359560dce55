/*
** gather.c: corio.gather and corio.settle. One waiter per pending input,
** all in one userdata, so gathering a million tasks is one allocation
** and no Lua closure per task. The gathering task parks until every
** input is done or (gather) the first one fails; then it cancels what is
** still pending and waits for it, shielded, before it returns or raises.
*/
#include <string.h>
#include "binding.h"

#define GATHER_MT "corio.Gather"

enum { MODE_GATHER, MODE_SETTLE };
enum { WHY_NONE, WHY_ERROR, WHY_CANCELLED };

struct gather;

typedef struct gslot {
  corio_waiter_t w;
  struct gather *g;
} gslot;

typedef struct gather {
  corio_task_t *owner;
  corio_scope_t shield;  /* held while draining after an error or a cancel */
  size_t n, pending, first_err;
  int mode, why, draining;
  gslot slot[1];
} gather;

static void slot_cb(corio_loop_t *loop, corio_waiter_t *w, corio_future_t *f) {
  gslot *s = (gslot *)w;
  gather *g = s->g;
  g->pending--;
  if (g->mode == MODE_GATHER && f->state != CORIO_DONE && g->first_err == 0) {
    g->first_err = (size_t)(s - g->slot) + 1;
    corio_task_wake(loop, g->owner, CORIO_WAKE_NORMAL);
  }
  if (g->pending == 0) corio_task_wake(loop, g->owner, CORIO_WAKE_NORMAL);
}

static void detach_all(gather *g) {
  size_t i;
  for (i = 0; i < g->n; i++)
    if (corio_waiter_active(&g->slot[i].w)) corio_waiter_cancel(&g->slot[i].w);
  g->pending = 0;
}

static int gather_gc(lua_State *L) {
  detach_all((gather *)lua_touserdata(L, 1));
  return 0;
}

/* cancel every input still pending (a task is cancelled; a future too) */
static void cancel_pending(lua_State *L, corio_State *S, gather *g) {
  size_t i;
  for (i = 0; i < g->n; i++) {
    int is_task;
    corio_future_t *f;
    if (!corio_waiter_active(&g->slot[i].w)) continue;
    lua_rawgeti(L, 1, (lua_Integer)i + 1);
    f = corio__future_of(L, S, -1, &is_task);
    if (f != NULL && is_task)
      corio_task_cancel(&S->loop, &((luatask *)lua_touserdata(L, -1))->core);
    else if (f != NULL) {
      lua_getfield(L, -1, "cancel");
      lua_pushvalue(L, -2);
      lua_call(L, 1, 0);
    }
    lua_pop(L, 1);
  }
}

static int gather_k(lua_State *L, int status, lua_KContext ctx);

/* the results: first values (gather) or {ok=..} records (settle) */
static int gather_end(lua_State *L, corio_State *S, gather *g) {
  size_t i;
  int varargs = lua_toboolean(L, 3);
  if (g->why == WHY_CANCELLED) {
    corio__push_cancel(L, S, S->current);
    return lua_error(L);
  }
  if (g->first_err) {
    int is_task;
    lua_rawgeti(L, 1, (lua_Integer)g->first_err);
    corio__future_of(L, S, -1, &is_task);
    return is_task ? corio__push_outcome(L, lua_gettop(L))
                   : corio__future_outcome(L, lua_gettop(L));
  }
  lua_createtable(L, (int)g->n, 0);                  /* 4: results */
  for (i = 1; i <= g->n; i++) {
    int is_task, top;
    corio_future_t *f;
    lua_rawgeti(L, 1, (lua_Integer)i);
    top = lua_gettop(L);
    f = corio__future_of(L, S, top, &is_task);
    if (g->mode == MODE_SETTLE) {
      lua_newtable(L);
      lua_pushboolean(L, f->state == CORIO_DONE);
      lua_setfield(L, -2, "ok");
      if (f->state == CORIO_DONE) {
        int k, n = is_task ? corio__push_outcome(L, top)
                           : corio__future_outcome(L, top);
        for (k = n; k >= 1; k--) lua_rawseti(L, top + 1, k);
      }
      else {
        if (is_task) {
          ((luatask *)lua_touserdata(L, top))->bits |= TASK_RETRIEVED;
          corio__push_error(L, top);
        }
        else lua_getiuservalue(L, top, 1);
        lua_setfield(L, -2, "error");
      }
      lua_rawseti(L, 4, (lua_Integer)i);
    }
    else {
      int n = is_task ? corio__push_outcome(L, top) : corio__future_outcome(L, top);
      if (n == 0) lua_pushnil(L);
      lua_settop(L, top + 1);
      lua_rawseti(L, 4, (lua_Integer)i);
    }
    lua_settop(L, 4);
  }
  if (!varargs) return 1;
  luaL_checkstack(L, (int)g->n, "too many results");
  for (i = 1; i <= g->n; i++) lua_rawgeti(L, 4, (lua_Integer)i);
  return (int)g->n;
}

static int gather_step(lua_State *L, corio_State *S, gather *g) {
  luatask *t = S->current;
  for (;;) {
    if (!g->draining && g->first_err) {
      g->draining = 1;
      g->why = WHY_ERROR;
      cancel_pending(L, S, g);
    }
    if (g->pending == 0) break;
    if (g->draining && !g->shield.entered)
      corio_scope_enter(&g->shield, &t->core);
    corio_task_park(&S->loop, &t->core);
    t->what = W_GATHER;
    corio__push_marker(L);
    return lua_yieldk(L, 1, 0, gather_k);
  }
  if (g->shield.entered) corio_scope_leave(&S->loop, &g->shield);
  return gather_end(L, S, g);
}

static int gather_k(lua_State *L, int status, lua_KContext ctx) {
  corio_State *S = corio__state(L);
  gather *g = (gather *)lua_touserdata(L, 2);
  luatask *t = S->current;
  (void)status;
  (void)ctx;
  if (t->core.wake == CORIO_WAKE_CANCEL) {
    t->core.wake = CORIO_WAKE_NORMAL;
    if (!g->draining) {
      g->draining = 1;
      g->why = WHY_CANCELLED;
      cancel_pending(L, S, g);
    }
  }
  else if (t->core.wake != CORIO_WAKE_NORMAL) {
    detach_all(g);
    if (g->shield.entered) corio_scope_leave(&S->loop, &g->shield);
    corio__wake_check(L, S, t);
  }
  return gather_step(L, S, g);
}

static int start(lua_State *L, int mode, const char *fname) {
  corio_State *S = corio__state(L);
  int nargs = lua_gettop(L), varargs = 1;
  size_t n, i, size;
  luatask *t;
  gather *g;
  if (nargs == 1 && lua_type(L, 1) == LUA_TTABLE && !lua_getmetatable(L, 1))
    varargs = 0;
  else {
    lua_createtable(L, nargs, 0);
    for (i = (size_t)nargs; i >= 1; i--) {
      lua_pushvalue(L, (int)i);
      lua_rawseti(L, -2, (lua_Integer)i);
    }
    lua_replace(L, 1);
  }
  lua_settop(L, 1);
  t = corio__checkpoint(L, S, fname);
  n = lua_rawlen(L, 1);
  for (i = 1; i <= n; i++) {
    int is_task;
    int ty = lua_rawgeti(L, 1, (lua_Integer)i);
    if (ty == LUA_TFUNCTION) {
      if (!varargs) {  /* never write into the caller's list */
        size_t k;
        lua_createtable(L, (int)n, 0);
        for (k = 1; k <= n; k++) {
          lua_rawgeti(L, 1, (lua_Integer)k);
          lua_rawseti(L, -2, (lua_Integer)k);
        }
        lua_replace(L, 1);
        varargs = 2;  /* a copy, still returned as a list */
      }
      corio__spawn(L, S, 2, 0);
      lua_rawseti(L, 1, (lua_Integer)i);
    }
    else if (corio__future_of(L, S, 2, &is_task) == NULL)
      return luaL_error(L, "%s: item %d is a %s, not a function, task or future",
                        fname, (int)i, luaL_typename(L, 2));
    lua_settop(L, 1);
  }
  size = sizeof(gather) + (n > 0 ? n - 1 : 0) * sizeof(gslot);
  g = (gather *)lua_newuserdatauv(L, size, 1);       /* 2 */
  memset(g, 0, sizeof(gather));
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, 2, 1);  /* keeps the inputs alive while linked */
  luaL_setmetatable(L, GATHER_MT);
  lua_pushboolean(L, varargs == 1);                  /* 3 */
  g->owner = &t->core;
  corio_scope_init(&g->shield);
  g->shield.shield = 1;
  g->n = n;
  g->mode = mode;
  for (i = 0; i < n; i++) {
    int is_task;
    corio_future_t *f;
    corio_waiter_init(&g->slot[i].w, slot_cb);
    g->slot[i].g = g;
    lua_rawgeti(L, 1, (lua_Integer)i + 1);
    f = corio__future_of(L, S, 4, &is_task);
    lua_pop(L, 1);
    if (f->state == CORIO_PENDING) {
      corio_future_wait(f, &g->slot[i].w);
      g->pending++;
    }
    else if (mode == MODE_GATHER && f->state != CORIO_DONE && !g->first_err)
      g->first_err = i + 1;
  }
  return gather_step(L, S, g);
}

/* corio.gather(a, b, ...) / corio.gather(list) (suspends) */
static int l_gather(lua_State *L) {
  return start(L, MODE_GATHER, "corio.gather");
}

/* corio.settle(list) (suspends) */
static int l_settle(lua_State *L) {
  return start(L, MODE_SETTLE, "corio.settle");
}

static int open_gather(lua_State *L) {
  luaL_newmetatable(L, GATHER_MT);
  lua_pushcfunction(L, gather_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  return 0;
}

const luaL_Reg corio__gather_funcs[] = {
  {"gather", l_gather},
  {"settle", l_settle},
  {"_open_gather", open_gather},
  {NULL, NULL}
};
