/*
** scheduler.c: the one place that resumes Lua. Each task's coroutine
** starts in a trampoline that runs the task's function under a protected
** call (so <close> handlers run, and may await, when it fails), records
** the traceback of an escaping error, and returns. Coroutines come from a
** pool: a task that has not started holds none, and one that finishes
** gives its coroutine back.
**
** The path of an await, seen from Lua:
**   spawn    corio__spawn: a userdata holding the function and arguments,
**            anchored in the live table, put in the ready ring
**   resume   corio__step: takes a coroutine, lua_resume
**   yield    a suspending function records what it waits on in the core
**            and calls corio__suspend (lua_yieldk with a private marker)
**   wake     the core moves the task back to the ready ring
**   resume   corio__step resumes; the function's continuation runs
**            corio__wake_check (cancellation, deadlock), then returns
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "binding.h"

#define POOL_MAX 256

static const char yield_marker = 0;

int corio__is_marker(lua_State *L, int idx) {
  return lua_touserdata(L, idx) == (void *)&yield_marker;
}

void corio__push_marker(lua_State *L) {
  lua_pushlightuserdata(L, (void *)&yield_marker);
}

corio_State *corio__state(lua_State *L) {
  return (corio_State *)lua_touserdata(L, lua_upvalueindex(1));
}

/* The side tables are reached through the registry, not S->L's slots:
   this runs from finalizers and callbacks too, on any thread. */
void corio__push_side(lua_State *L, corio_State *S, const char *key) {
  (void)S;
  lua_getfield(L, LUA_REGISTRYINDEX, SIDE_REGKEY);
  lua_getfield(L, -1, key);
  lua_remove(L, -2);
}

/* Lua code that corio calls back (done callbacks, the error handler,
   hooks) runs on a thread of its own, never on the scheduler's S->L,
   whose fixed slots must stay where they are. */
lua_State *corio__callback_thread(lua_State *L, corio_State *S) {
  lua_State *cb;
  corio__push_side(L, S, "cbthread");
  cb = lua_tothread(L, -1);
  lua_pop(L, 1);
  return cb;
}

/* ------------------------------------------------------------ tracebacks */

/* Message handler of every task: records the traceback of an error that
   escapes the task's function (cancellations need none). When the error
   is one an await re-raised, the awaited task's traceback is appended,
   so the chain of tasks shows. */
static int msgh(lua_State *co) {
  corio_State *S = corio__state(co);
  lua_settop(co, 1);
  if (corio__is_cancel(co, 1)) return 1;
  luaL_traceback(co, co, NULL, 1);                 /* 2 */
  lua_pushvalue(S->L, SLOT_CHAIN);
  lua_xmove(S->L, co, 1);                          /* 3 */
  if (!lua_isnil(co, 3) && lua_rawequal(co, 3, 1)) {
    lua_pop(co, 1);
    lua_pushliteral(co, "\nwhile awaiting a task that failed with:\n");
    lua_pushvalue(S->L, SLOT_CHAINTB);
    lua_xmove(S->L, co, 1);
    lua_concat(co, 3);                             /* 2: the whole chain */
    lua_pushnil(S->L);
    lua_replace(S->L, SLOT_CHAIN);
  }
  else lua_pop(co, 1);
  lua_xmove(co, S->L, 1);
  lua_replace(S->L, SLOT_TB);
  return 1;
}

static int tramp_k(lua_State *co, int status, lua_KContext ctx) {
  corio_State *S = (corio_State *)ctx;
  if (status != LUA_OK && status != LUA_YIELD) {
    S->failed = 1;
    return 1;  /* the error value */
  }
  return lua_gettop(co) - 1;  /* every result, not the handler below them */
}

/* trampoline(fn, ...): the first function of every task's coroutine */
static int trampoline(lua_State *co) {
  corio_State *S = corio__state(co);
  int n = lua_gettop(co);
  lua_pushvalue(co, lua_upvalueindex(2));
  lua_insert(co, 1);
  return tramp_k(co, lua_pcallk(co, n - 1, LUA_MULTRET, 1, (lua_KContext)S,
                                tramp_k), (lua_KContext)S);
}

/* ------------------------------------------------------------ the pool */

/* Slots above npool may still name threads that were taken: that keeps at
   most POOL_MAX threads alive a little longer, and saves clearing a slot
   on every take. */
static lua_State *pool_take(corio_State *S) {
  lua_State *L = S->L;
  if (S->npool > 0) {
    lua_rawgeti(L, SLOT_POOL, S->npool--);
    return lua_tothread(L, -1);
  }
  return lua_newthread(L);
}

/* the thread is at index idx of S->L */
static void pool_give(corio_State *S, lua_State *co, int idx) {
  lua_settop(co, 0);
  if (S->npool < POOL_MAX) {
    lua_pushvalue(S->L, idx);
    lua_rawseti(S->L, SLOT_POOL, ++S->npool);
  }
}

static void reset_thread(lua_State *co) {
#if LUA_VERSION_RELEASE_NUM >= 50406
  lua_closethread(co, NULL);
#else
  lua_resetthread(co);
#endif
}

/* ------------------------------------------------------------ spawning */

luatask *corio__spawn(lua_State *L, corio_State *S, int fidx, int nargs) {
  int nuv = 1 + nargs, i;  /* the function and its arguments, no more */
  luatask *t;
  if (nargs > 250) luaL_error(L, "corio.spawn: too many arguments (%d)", nargs);
  t = (luatask *)lua_newuserdatauv(L, sizeof *t, nuv);
  corio_task_init(&S->loop, &t->core);
  t->live = 0;
  t->id = ++S->next_id;
  t->co = NULL;
  t->nuv = (uint16_t)nuv;
  t->n = (uint16_t)nargs;
  t->what = W_NONE;
  t->bits = 0;
  lua_pushvalue(S->L, SLOT_TASKMT);
  lua_xmove(S->L, L, 1);
  lua_setmetatable(L, -2);
  lua_pushvalue(L, fidx);
  lua_setiuservalue(L, -2, 1);
  for (i = 1; i <= nargs; i++) {
    lua_pushvalue(L, fidx + i);
    lua_setiuservalue(L, -2, i + 1);
  }
  /* the loop anchors the task until it finishes */
  t->live = ++S->nlive;
  lua_pushvalue(L, -1);
  lua_xmove(L, S->L, 1);
  lua_rawseti(S->L, SLOT_LIVE, t->live);
  if (corio_task_schedule(&S->loop, &t->core) != 0)
    luaL_error(L, "corio.spawn: out of memory");
  return t;
}

static void live_remove(corio_State *S, luatask *t) {
  lua_State *L = S->L;
  uint32_t i = t->live, last = S->nlive;
  if (i == 0) return;
  if (i != last) {
    luatask *m;
    lua_rawgeti(L, SLOT_LIVE, last);
    m = (luatask *)lua_touserdata(L, -1);
    m->live = i;
    lua_rawseti(L, SLOT_LIVE, i);
  }
  lua_pushnil(L);
  lua_rawseti(L, SLOT_LIVE, last);
  S->nlive--;
  t->live = 0;
}

/* ------------------------------------------------------------ finishing */

/* The error of the failed or cancelled task at tidx, and its traceback
   (nil if none): in uservalues 1 and 2, or packed in a table in 1 for a
   task with one uservalue. The traceback slot may hold the sentinel. */
void corio__push_error(lua_State *L, int tidx) {
  luatask *t = (luatask *)lua_touserdata(L, tidx);
  lua_getiuservalue(L, tidx, 1);
  if (t->bits & TASK_ERRPACK) {
    lua_rawgeti(L, -1, 1);
    lua_remove(L, -2);
  }
}

void corio__push_traceback(lua_State *L, int tidx) {
  luatask *t = (luatask *)lua_touserdata(L, tidx);
  if (t->bits & TASK_ERRPACK) {
    lua_getiuservalue(L, tidx, 1);
    lua_rawgeti(L, -1, 2);
    lua_remove(L, -2);
  }
  else lua_getiuservalue(L, tidx, 2);
  if (lua_type(L, -1) == LUA_TUSERDATA) {
    lua_getiuservalue(L, -1, 2);
    lua_remove(L, -2);
  }
}

/* Unhandled errors: a failed task nobody has asked about gets a small
   sentinel with a finalizer; when the task is garbage and still nobody
   asked, the sentinel reports it. Only failed tasks pay for this. */
static int sentinel_gc(lua_State *L) {
  corio_State *S = corio__state(L);
  luatask *t;
  lua_getiuservalue(L, 1, 1);
  t = (luatask *)lua_touserdata(L, -1);
  if (t != NULL && !(t->bits & (TASK_RETRIEVED | TASK_REPORTED)))
    corio__report(L, S, lua_gettop(L));
  return 0;
}

void corio__report(lua_State *L, corio_State *S, int tidx) {
  luatask *t = (luatask *)lua_touserdata(L, tidx);
  lua_State *cb = corio__callback_thread(L, S);
  int top = lua_gettop(L);
  t->bits |= TASK_REPORTED;
  if (S->error_hook != NULL) {  /* the host's C hook takes them all */
    int base = lua_gettop(cb);
    corio__push_error(L, tidx);
    corio__push_traceback(L, tidx);
    lua_pushvalue(L, tidx);
    lua_xmove(L, cb, 3);
    S->error_hook(cb, S->error_hook_ud);
    lua_settop(cb, base);
    return;
  }
  corio__push_side(L, S, SIDE_HANDLER);
  corio__push_error(L, tidx);
  corio__push_traceback(L, tidx);
  lua_pushvalue(L, tidx);
  if (lua_isfunction(L, top + 1)) {
    int base = lua_gettop(cb);
    lua_xmove(L, cb, 4);
    if (lua_pcall(cb, 3, 0, 0) != LUA_OK) {
      fprintf(stderr, "corio: error in the error handler: %s\n",
              luaL_tolstring(cb, -1, NULL));
    }
    lua_settop(cb, base);
  }
  else {
    const char *msg = luaL_tolstring(L, top + 2, NULL);
    fprintf(stderr, "corio: unhandled error in task %u: %s\n%s\n",
            (unsigned)t->id, msg, lua_isstring(L, top + 3) ?
            lua_tostring(L, top + 3) : "(no traceback)");
    fflush(stderr);
  }
  lua_settop(L, top);
}

/* Run the done callbacks of the task or future at tidx, once each, in the
   order they were added, on the callback thread; an error in one is
   printed and does not stop the others. */
void corio__run_callbacks(lua_State *L, corio_State *S, int tidx) {
  lua_State *cb = corio__callback_thread(L, S);
  int top = lua_gettop(L);
  corio__push_side(L, S, SIDE_CALLBACKS);
  lua_pushvalue(L, tidx);
  if (lua_rawget(L, -2) == LUA_TTABLE) {
    lua_Integer i, n = luaL_len(L, -1);
    lua_pushvalue(L, tidx);
    lua_pushnil(L);
    lua_rawset(L, top + 1);
    for (i = 1; i <= n; i++) {
      int base = lua_gettop(cb);
      lua_rawgeti(L, top + 2, i);
      lua_pushvalue(L, tidx);
      lua_xmove(L, cb, 2);
      if (lua_pcall(cb, 1, 0, 0) != LUA_OK) {
        fprintf(stderr, "corio: error in a done callback: %s\n",
                luaL_tolstring(cb, -1, NULL));
      }
      lua_settop(cb, base);
    }
  }
  lua_settop(L, top);
}

/* The task at tidx (of S->L) ends in state; its results (DONE) are the
   top n values of S->L, or its error (FAILED/CANCELLED) the top one. */
static void finish(corio_State *S, luatask *t, int tidx, int state, int n) {
  lua_State *L = S->L;
  int i;
  if (state == CORIO_DONE) {
    if (n <= t->nuv) {
      for (i = n + 1; i <= t->nuv; i++) {
        lua_pushnil(L);
        lua_setiuservalue(L, tidx, i);
      }
      for (i = n; i >= 1; i--) lua_setiuservalue(L, tidx, i);
    }
    else {
      lua_createtable(L, n, 1);
      lua_insert(L, -n - 1);
      for (i = n; i >= 1; i--) lua_rawseti(L, -i - 1, i);
      lua_pushinteger(L, n);
      lua_setfield(L, -2, "n");
      lua_setiuservalue(L, tidx, 1);
      t->bits |= TASK_PACKED;
    }
    t->n = (uint16_t)(n <= t->nuv ? n : 0xFFFF);
  }
  else {
    int err = lua_gettop(L);                       /* the error value */
    if (state == CORIO_FAILED && t->core.group != NULL)
      corio__group_record_error(L, S, t, err);
    if (state == CORIO_FAILED && !(t->bits & (TASK_RETRIEVED | TASK_HIDDEN))) {
      lua_newuserdatauv(L, 0, 2);                  /* the sentinel */
      lua_pushvalue(L, tidx);
      lua_setiuservalue(L, -2, 1);
      lua_pushvalue(L, SLOT_TB);
      lua_setiuservalue(L, -2, 2);
      lua_pushvalue(L, SLOT_STATE);
      lua_getiuservalue(L, -1, 2);  /* the sentinel metatable */
      lua_remove(L, -2);
      lua_setmetatable(L, -2);
    }
    else lua_pushvalue(L, SLOT_TB);
    if (t->nuv >= 2) {
      lua_setiuservalue(L, tidx, 2);
      lua_setiuservalue(L, tidx, 1);
    }
    else {  /* one slot: error and traceback go in a table */
      lua_createtable(L, 2, 0);
      lua_insert(L, err);
      lua_rawseti(L, err, 2);
      lua_rawseti(L, err, 1);
      lua_setiuservalue(L, tidx, 1);
      t->bits |= TASK_ERRPACK;
    }
    for (i = 3; i <= t->nuv; i++) {
      lua_pushnil(L);
      lua_setiuservalue(L, tidx, i);
    }
    lua_pushnil(L);
    lua_replace(L, SLOT_TB);
    t->n = 1;
  }
  if (t->core.flags & CORIO_TASK_CANCEL_REQUESTED) {
    corio__push_side(L, S, SIDE_MESSAGES);
    lua_pushlightuserdata(L, t);
    lua_pushnil(L);
    lua_rawset(L, -3);
    lua_pop(L, 1);
  }
  live_remove(S, t);
  if (t->bits & TASK_MAIN) uv_stop(S->loop.uv);  /* corio.run takes over */
  if (state == CORIO_FAILED && !(t->bits & (TASK_RETRIEVED | TASK_HIDDEN))) {
    corio__push_side(L, S, SIDE_FAILED);         /* reported at the run's end */
    lua_pushvalue(L, tidx);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
    lua_pop(L, 1);
  }
  corio_task_finish(&S->loop, &t->core, state);
  if (state != CORIO_DONE && (t->bits & TASK_GATHERED) && S->gathers != NULL)
    corio__gather_alert(S);
  if (t->bits & TASK_HASCB) corio__run_callbacks(L, S, tidx);
  if (state == CORIO_FAILED && (t->bits & TASK_HIDDEN))
    corio__report(L, S, tidx);
}

/* ------------------------------------------------------------ stepping */

/* Debug mode: a count hook notices a step that has run for more than
   100 ms without reaching a checkpoint, and reports where it is. */
static void slow_hook(lua_State *co, lua_Debug *ar) {
  corio_State *S;
  int top = lua_gettop(co);
  (void)ar;
  lua_getfield(co, LUA_REGISTRYINDEX, STATE_MT);
  S = (corio_State *)lua_touserdata(co, -1);
  lua_settop(co, top);
  if (S != NULL && !S->debug) {
    lua_sethook(co, NULL, 0, 0);
    return;
  }
  if (S == NULL || S->warned || S->current == NULL ||
      uv_hrtime() - S->step_start < 100000000)
    return;
  S->warned = 1;
  corio__push_side(co, S, SIDE_HOOKS);
  if (lua_getfield(co, -1, "slow") == LUA_TFUNCTION) {
    corio__push_task(co, S, S->current);
    lua_pushnumber(co, (double)(uv_hrtime() - S->step_start) / 1e9);
    luaL_traceback(co, co, NULL, 0);  /* level 0: where the step is now */
    lua_pcall(co, 3, 0, 0);
  }
  lua_settop(co, top);
}

/* First step: a coroutine from the pool starts the trampoline with the
   task's function and arguments. Leaves the task at base+1 and the
   thread at base+2; returns how many values to resume with. */
static int first_step(corio_State *S, luatask *t, int base) {
  lua_State *L = S->L;
  int i, nargs;
  if (!lua_checkstack(L, t->n + 8)) {  /* only when out of memory */
    fputs("corio: out of memory in the scheduler\n", stderr);
    abort();
  }
  lua_rawgeti(L, SLOT_LIVE, t->live);              /* base+1: the task */
  t->co = pool_take(S);                            /* base+2: the thread */
  lua_pushvalue(L, SLOT_TRAMP);
  lua_getiuservalue(L, base + 1, 1);               /* the function */
  for (i = 1; i <= t->n; i++) lua_getiuservalue(L, base + 1, i + 1);
  nargs = t->n + 1;
  lua_xmove(L, t->co, nargs + 1);
  lua_pushvalue(L, base + 2);
  lua_setiuservalue(L, base + 1, 1);               /* the task holds it */
  t->n = 0;  /* the arguments stay in their slots until finish() */
  return nargs;
}

void corio__step(corio_loop_t *loop, corio_task_t *ct) {
  corio_State *S = (corio_State *)loop->data;
  lua_State *L = S->L;
  luatask *t = (luatask *)ct;
  lua_State *co;
  int base = 0, nargs = 0, nres, status;
  if (!(ct->flags & CORIO_TASK_STARTED)) {
    ct->flags |= CORIO_TASK_STARTED;
    base = lua_gettop(L);
    if (corio_task_cancelled_by(ct) != NULL) {   /* never runs its body */
      lua_rawgeti(L, SLOT_LIVE, t->live);
      corio__push_cancel(L, S, t);
      finish(S, t, base + 1, CORIO_CANCELLED, 1);
      lua_settop(L, base);
      return;
    }
    nargs = first_step(S, t, base);
  }
  co = t->co;  /* a started task's thread, anchored by its uservalue 1 */
  S->current = t;
  if (S->debug) {  /* the hook removes itself once debug mode is off */
    S->step_start = uv_hrtime();
    S->warned = 0;
    lua_sethook(co, slow_hook, LUA_MASKCOUNT, 10000);
  }
  status = lua_resume(co, L, nargs, &nres);
  S->current = NULL;
  if (status == LUA_YIELD && nres >= 1 && corio__is_marker(co, -nres) &&
      ct->wait_kind != CORIO_WAIT_NONE) {          /* the common case */
    lua_pop(co, nres);
    if (nargs) lua_settop(L, base);
    return;
  }
  if (!nargs) base = lua_gettop(L);
  /* the task ends: it and its thread at base+1, base+2 (a first step has
     put them there already) */
  if (nargs == 0) {
    lua_rawgeti(L, SLOT_LIVE, t->live);
    lua_pushthread(co);
    lua_xmove(co, L, 1);
  }
  t->co = NULL;
  if (status == LUA_YIELD) {  /* a bare coroutine.yield at the task's top level */
    lua_pop(co, nres);
    reset_thread(co);
    lua_pushliteral(L, "coroutine.yield called outside a coroutine "
                    "inside a task (to let other tasks run, use "
                    "corio.sleep(0))");
    finish(S, t, base + 1, CORIO_FAILED, 1);
  }
  else if (status == LUA_OK) {
    if (S->failed) {
      S->failed = 0;
      lua_xmove(co, L, 1);
      finish(S, t, base + 1,
             corio__is_cancel(L, -1) ? CORIO_CANCELLED : CORIO_FAILED, 1);
    }
    else {
      if (!lua_checkstack(L, nres + 4)) {
        lua_settop(co, 0);
        lua_pushliteral(L, "too many results");
        finish(S, t, base + 1, CORIO_FAILED, 1);
      }
      else {
        lua_xmove(co, L, nres);
        finish(S, t, base + 1, CORIO_DONE, nres);
      }
    }
    pool_give(S, co, base + 2);
  }
  else {  /* the trampoline itself failed: out of memory, C stack... */
    lua_xmove(co, L, 1);
    reset_thread(co);
    finish(S, t, base + 1, CORIO_FAILED, 1);
  }
  lua_settop(L, base);
}

/* ------------------------------------------------------------ checkpoints */

luatask *corio__checkpoint(lua_State *L, corio_State *S, const char *fname) {
  luatask *t = S->current;
  if (t == NULL)
    luaL_error(L, "%s: not inside a task (start one with corio.run)", fname);
  if (!lua_isyieldable(L))
    luaL_error(L, "%s: cannot suspend here: the call is behind a C-call "
               "boundary (a table.sort comparator, a string.gsub callback, "
               "a metamethod called from C, ...)", fname);
  if (corio_task_cancelled_by(&t->core) != NULL) {
    corio__push_cancel(L, S, t);
    lua_error(L);
  }
  return t;
}

/* Yield to the scheduler; k runs when the task is resumed, with the
   state as its context (no lookup needed there). */
int corio__suspend(lua_State *L, corio_State *S, lua_KFunction k) {
  corio__push_marker(L);
  return lua_yieldk(L, 1, (lua_KContext)S, k);
}

void corio__wake_check(lua_State *L, corio_State *S, luatask *t) {
  t->what = W_NONE;
  switch (t->core.wake) {
    case CORIO_WAKE_NORMAL: return;
    case CORIO_WAKE_CANCEL:
      t->core.wake = CORIO_WAKE_NORMAL;
      corio__push_cancel(L, S, t);
      lua_error(L);
      break;
    case CORIO_WAKE_DEADLOCK:  /* the error was made before the wake */
      t->core.wake = CORIO_WAKE_NORMAL;
      lua_pushvalue(S->L, SLOT_DEADLOCK);
      lua_xmove(S->L, L, 1);
      if (lua_isnil(L, -1)) lua_pushliteral(L, "deadlock");
      lua_error(L);
      break;
    default:
      t->core.wake = CORIO_WAKE_NORMAL;
      luaL_error(L, "corio: this wait was abandoned");
  }
}

int corio__is_cancel(lua_State *L, int idx) {
  int r;
  if (!lua_getmetatable(L, idx)) return 0;
  luaL_getmetatable(L, CANCEL_MT);
  r = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  return r;
}

/* push a new cancellation error for t: with the message given to
   task:cancel when the task itself was cancelled */
void corio__push_cancel(lua_State *L, corio_State *S, luatask *t) {
  lua_createtable(L, 0, 1);
  if (corio_task_cancelled_by(&t->core) == (void *)t) {
    corio__push_side(L, S, SIDE_MESSAGES);
    lua_pushlightuserdata(L, t);
    lua_rawget(L, -2);
    lua_setfield(L, -3, "message");
    lua_pop(L, 1);
  }
  luaL_setmetatable(L, CANCEL_MT);
}

/* ------------------------------------------------------------ setup */

void corio__init_scheduler(lua_State *L, corio_State *S) {
  /* stack: state userdata at -1 */
  int i;
  S->L = lua_newthread(L);
  lua_setiuservalue(L, -2, SUV_THREAD);
  /* the scheduler pushes onto S->L from C: room for the slots and a step */
  if (!lua_checkstack(S->L, NSLOTS + 40)) luaL_error(L, "corio: out of memory");
  for (i = 1; i <= NSLOTS; i++) lua_pushnil(S->L);
  lua_newtable(S->L);
  lua_replace(S->L, SLOT_LIVE);
  lua_newtable(S->L);
  lua_replace(S->L, SLOT_POOL);
  lua_pushvalue(L, -1);
  lua_xmove(L, S->L, 1);
  lua_replace(S->L, SLOT_STATE);
  lua_newtable(S->L);                              /* side tables */
  lua_newtable(S->L);                              /* names: weak keys */
  lua_newtable(S->L);
  lua_pushliteral(S->L, "k");
  lua_setfield(S->L, -2, "__mode");
  lua_setmetatable(S->L, -2);
  lua_setfield(S->L, -2, SIDE_NAMES);
  lua_newtable(S->L);
  lua_setfield(S->L, -2, SIDE_CALLBACKS);
  lua_newtable(S->L);
  lua_setfield(S->L, -2, SIDE_GROUPS);
  lua_newtable(S->L);
  lua_setfield(S->L, -2, SIDE_MESSAGES);
  lua_newtable(S->L);
  lua_setfield(S->L, -2, SIDE_HOOKS);
  lua_newthread(S->L);
  lua_setfield(S->L, -2, "cbthread");
  lua_newtable(S->L);
  lua_setfield(S->L, -2, SIDE_HOSTFUTURES);
  lua_newtable(S->L);                              /* failed: weak keys */
  lua_newtable(S->L);
  lua_pushliteral(S->L, "k");
  lua_setfield(S->L, -2, "__mode");
  lua_setmetatable(S->L, -2);
  lua_setfield(S->L, -2, SIDE_FAILED);
  lua_pushvalue(S->L, -1);
  lua_setfield(S->L, LUA_REGISTRYINDEX, SIDE_REGKEY);
  lua_replace(S->L, SLOT_SIDE);
  lua_pushvalue(L, -1);                            /* msgh(state) */
  lua_pushcclosure(L, msgh, 1);
  lua_pushvalue(L, -2);                            /* trampoline(state, msgh) */
  lua_insert(L, -2);
  lua_pushcclosure(L, trampoline, 2);
  lua_xmove(L, S->L, 1);
  lua_replace(S->L, SLOT_TRAMP);
  /* the sentinel metatable, kept as the state's uservalue 2 */
  lua_createtable(L, 0, 1);
  lua_pushvalue(L, -2);
  lua_pushcclosure(L, sentinel_gc, 1);
  lua_setfield(L, -2, "__gc");
  lua_setiuservalue(L, -2, 2);
}

/* End t without resuming it again (it can never finish by itself): its
   coroutine is dropped, so its <close> handlers do not run. */
void corio__abandon(corio_State *S, luatask *t) {
  lua_State *L = S->L;
  int base = lua_gettop(L);
  corio_task_detach(&S->loop, &t->core);
  lua_rawgeti(L, SLOT_LIVE, t->live);
  corio__push_cancel(L, S, t);
  finish(S, t, base + 1, CORIO_CANCELLED, 1);
  lua_settop(L, base);
}
