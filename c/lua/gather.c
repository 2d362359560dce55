/*
** gather.c: corio.gather and corio.settle, with no memory per input.
**
** The gathering task awaits its inputs one after another, each time the
** first one not yet done: inputs mostly finish in order, so it rarely
** waits more than a few times. A failure elsewhere must not wait its turn,
** so every task gathered carries a hint bit (TASK_GATHERED); when such a
** task fails or is cancelled, finish() alerts the gathers that are still
** waiting (corio__gather_alert), and each rescans its inputs. On the first
** failure, what is still pending is cancelled and awaited, shielded, then
** the error is raised. settle() only waits.
*/
#include <string.h>
#include "binding.h"

#define GATHER_MT "corio.Gather"

enum { MODE_GATHER, MODE_SETTLE };
enum { WHY_NONE, WHY_ERROR, WHY_CANCELLED };

typedef struct gather {
  struct gather *next, *prev;  /* in S->gathers while it can be alerted */
  corio_State *S;
  corio_task_t *owner;
  corio_scope_t shield;  /* held while draining after an error or a cancel */
  size_t n, done_upto, first_err;  /* inputs 1..done_upto are done */
  int mode, why, draining, alerted, linked;
} gather;

static void link_gather(gather *g) {
  corio_State *S = g->S;
  if (g->linked) return;
  g->prev = NULL;
  g->next = (gather *)S->gathers;
  if (g->next != NULL) g->next->prev = g;
  S->gathers = g;
  g->linked = 1;
}

static void unlink_gather(gather *g) {
  if (!g->linked) return;
  if (g->prev != NULL) g->prev->next = g->next;
  else g->S->gathers = g->next;
  if (g->next != NULL) g->next->prev = g->prev;
  g->linked = 0;
}

/* A gathered task failed: every gather still waiting rescans its inputs
   (failures are rare; a gather stops listening once it drains). */
void corio__gather_alert(corio_State *S) {
  gather *g;
  for (g = (gather *)S->gathers; g != NULL; g = g->next) {
    g->alerted = 1;
    corio_task_wake(&S->loop, g->owner, CORIO_WAKE_NORMAL);
  }
}

static int gather_gc(lua_State *L) {
  unlink_gather((gather *)lua_touserdata(L, 1));
  return 0;
}

static corio_future_t *input(lua_State *L, corio_State *S, size_t i,
                             int *is_task) {
  corio_future_t *f;
  lua_rawgeti(L, 1, (lua_Integer)i);
  f = corio__future_of(L, S, -1, is_task);
  lua_pop(L, 1);  /* the list keeps it alive */
  return f;
}

/* cancel every input still pending (a task is cancelled; a future too) */
static void cancel_pending(lua_State *L, corio_State *S, gather *g) {
  size_t i;
  for (i = g->done_upto + 1; i <= g->n; i++) {
    int is_task;
    corio_future_t *f = input(L, S, i, &is_task);
    if (f->state != CORIO_PENDING) continue;
    lua_rawgeti(L, 1, (lua_Integer)i);
    if (is_task)
      corio_task_cancel(&S->loop, &((luatask *)lua_touserdata(L, -1))->core);
    else {
      lua_getfield(L, -1, "cancel");
      lua_pushvalue(L, -2);
      lua_call(L, 1, 0);
    }
    lua_pop(L, 1);
  }
}

static int gather_k(lua_State *L, int status, lua_KContext ctx);

/* the results (index 4): first values, filled in by gather_step as the
   inputs were found done, or {ok=..} records made here (settle) */
static int gather_end(lua_State *L, corio_State *S, gather *g) {
  size_t i;
  int varargs = lua_toboolean(L, 3);
  if (g->why == WHY_CANCELLED) {
    corio__push_cancel(L, S, S->current);
    return lua_error(L);
  }
  if (g->first_err) {
    int is_task;
    input(L, S, g->first_err, &is_task);
    lua_rawgeti(L, 1, (lua_Integer)g->first_err);
    return is_task ? corio__push_outcome(L, lua_gettop(L))
                   : corio__future_outcome(L, lua_gettop(L));
  }
  for (i = 1; g->mode == MODE_SETTLE && i <= g->n; i++) {
    int is_task, top;
    corio_future_t *f;
    lua_rawgeti(L, 1, (lua_Integer)i);
    top = lua_gettop(L);
    f = corio__future_of(L, S, top, &is_task);
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
    lua_settop(L, 4);
  }
  if (!varargs) return 1;
  luaL_checkstack(L, (int)g->n, "too many results");
  for (i = 1; i <= g->n; i++) lua_rawgeti(L, 4, (lua_Integer)i);
  return (int)g->n;
}

/* a failed or cancelled input among those not yet known done, or 0 */
static size_t find_failure(lua_State *L, corio_State *S, gather *g) {
  size_t i;
  for (i = g->done_upto + 1; i <= g->n; i++) {
    int is_task;
    corio_future_t *f = input(L, S, i, &is_task);
    if (f->state == CORIO_FAILED || f->state == CORIO_CANCELLED) return i;
  }
  return 0;
}

static int gather_step(lua_State *L, corio_State *S, gather *g) {
  luatask *t = S->current;
  for (;;) {
    int is_task;
    corio_future_t *f = NULL;
    while (g->done_upto < g->n) {  /* skip what is done, in order */
      int top = lua_gettop(L);
      lua_rawgeti(L, 1, (lua_Integer)g->done_upto + 1);
      f = corio__future_of(L, S, top + 1, &is_task);
      if (f->state == CORIO_PENDING) {
        lua_settop(L, top);
        break;
      }
      if (g->mode == MODE_GATHER && !g->draining) {
        if (f->state != CORIO_DONE) {
          if (!g->first_err) g->first_err = g->done_upto + 1;
        }
        else {  /* its first value goes straight into the results */
          int n = is_task ? corio__push_outcome(L, top + 1)
                          : corio__future_outcome(L, top + 1);
          if (n == 0) lua_pushnil(L);
          lua_settop(L, top + 2);
          lua_rawseti(L, 4, (lua_Integer)g->done_upto + 1);
        }
      }
      lua_settop(L, top);
      g->done_upto++;
    }
    if (g->alerted && !g->draining) {
      g->alerted = 0;
      if (!g->first_err) g->first_err = find_failure(L, S, g);
    }
    if (!g->draining && g->first_err) {
      g->draining = 1;
      g->why = WHY_ERROR;
      unlink_gather(g);
      cancel_pending(L, S, g);
    }
    if (g->done_upto == g->n) break;
    if (g->draining && !g->shield.entered)
      corio_scope_enter(&g->shield, &t->core);
    corio_task_await(&S->loop, &t->core, f);
    t->what = W_GATHER;
    return corio__suspend(L, S, gather_k);
  }
  unlink_gather(g);
  if (g->shield.entered) corio_scope_leave(&S->loop, &g->shield);
  return gather_end(L, S, g);
}

static int gather_k(lua_State *L, int status, lua_KContext ctx) {
  corio_State *S = (corio_State *)ctx;
  gather *g = (gather *)lua_touserdata(L, 2);
  luatask *t = S->current;
  (void)status;
  if (t->core.wake == CORIO_WAKE_CANCEL) {
    t->core.wake = CORIO_WAKE_NORMAL;
    if (!g->draining) {
      g->draining = 1;
      g->why = WHY_CANCELLED;
      unlink_gather(g);
      cancel_pending(L, S, g);
    }
  }
  else if (t->core.wake != CORIO_WAKE_NORMAL) {
    unlink_gather(g);
    if (g->shield.entered) corio_scope_leave(&S->loop, &g->shield);
    corio__wake_check(L, S, t);
  }
  return gather_step(L, S, g);
}

static int start(lua_State *L, int mode, const char *fname) {
  corio_State *S = corio__state(L);
  int nargs = lua_gettop(L), varargs = 1;
  size_t n, i;
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
  for (i = 1; i <= n; i++) {  /* before anything is spawned */
    int self = lua_rawgeti(L, 1, (lua_Integer)i) == LUA_TUSERDATA &&
               lua_touserdata(L, -1) == (void *)t;
    lua_pop(L, 1);
    if (self)
      return luaL_error(L, "%s: a task cannot await itself (item %d is the "
                        "current task)", fname, (int)i);
  }
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
      lua_pushvalue(L, -1);
      lua_rawseti(L, 1, (lua_Integer)i);
      lua_replace(L, 2);                             /* 2: the task */
    }
    if (corio__future_of(L, S, 2, &is_task) == NULL)
      return luaL_error(L, "%s: item %d is a %s, not a function, task or future",
                        fname, (int)i, luaL_typename(L, 2));
    if (is_task && mode == MODE_GATHER)
      ((luatask *)lua_touserdata(L, 2))->bits |= TASK_GATHERED;
    lua_settop(L, 1);
  }
  g = (gather *)lua_newuserdatauv(L, sizeof *g, 1);  /* 2 */
  memset(g, 0, sizeof *g);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, 2, 1);
  luaL_setmetatable(L, GATHER_MT);
  lua_pushboolean(L, varargs == 1);                  /* 3 */
  lua_createtable(L, (int)n, 0);                     /* 4: the results */
  g->S = S;
  g->owner = &t->core;
  corio_scope_init(&g->shield);
  g->shield.shield = 1;
  g->n = n;
  g->mode = mode;
  if (mode == MODE_GATHER) link_gather(g);
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
