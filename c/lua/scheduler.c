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
**            and calls corio__suspend (lua_yieldk, flagged as corio's)
**   wake     the core moves the task back to the ready ring
**   resume   corio__step resumes; the function's continuation runs
**            corio__wake_check (cancellation, deadlock), then returns
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "binding.h"

#define POOL_MAX 256
#define LIVE_SHRINK_MIN 4096  /* a live table this big shrinks after a burst */

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
  /* an error raised in a __close while unwinding an earlier one replaces
     it: keep the earlier one and its traceback, a group reports both */
  if (!lua_isnil(S->L, SLOT_ERR)) {
    if (lua_isnil(S->L, SLOT_ERRS)) {
      lua_newtable(S->L);
      lua_replace(S->L, SLOT_ERRS);
    }
    lua_pushvalue(S->L, SLOT_ERR);
    lua_rawseti(S->L, SLOT_ERRS, (lua_Integer)lua_rawlen(S->L, SLOT_ERRS) + 1);
    lua_pushvalue(S->L, SLOT_TB);
    lua_rawseti(S->L, SLOT_ERRS, (lua_Integer)lua_rawlen(S->L, SLOT_ERRS) + 1);
  }
  lua_xmove(co, S->L, 1);
  lua_replace(S->L, SLOT_TB);
  lua_pushvalue(co, 1);
  lua_xmove(co, S->L, 1);
  lua_replace(S->L, SLOT_ERR);
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

static int new_thread(lua_State *L) {
  lua_newthread(L);
  return 1;
}

/* a thread pushed on S->L, or NULL with the memory error pushed instead
   (a new one is made under lua_pcall: out of memory there fails the
   task, never the process). Slots above npool may still name threads
   that were taken: that keeps at most POOL_MAX threads alive a little
   longer, and saves clearing a slot on every take. */
static lua_State *pool_take(corio_State *S) {
  lua_State *L = S->L;
  if (S->npool > 0) {
    lua_rawgeti(L, SLOT_POOL, S->npool--);
    return lua_tothread(L, -1);
  }
  lua_pushcfunction(L, new_thread);
  if (lua_pcall(L, 0, 1, 0) != LUA_OK) return NULL;
  return lua_tothread(L, -1);
}

/* the thread is at index idx of S->L; the pool table was made with room
   for POOL_MAX, so storing it allocates nothing */
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
  t->live = 0;
  t->co = NULL;
  t->nuv = (uint8_t)nuv;
  t->n = (uint8_t)nargs;
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
  /* the loop anchors the task until it finishes. The store may grow the
     live table: it goes through L, where an error (out of memory) reaches
     the caller's protection, not S->L, which has none. */
  lua_pushvalue(S->L, SLOT_LIVE);
  lua_xmove(S->L, L, 1);
  lua_pushvalue(L, -2);
  lua_rawseti(L, -2, (lua_Integer)S->nlive + 1);
  lua_pop(L, 1);
  corio_task_init(&S->loop, &t->core);  /* zeroes the core: TASK_SUSP too */
  TASK_ID(t) = ++S->next_id;
  t->live = ++S->nlive;
  if (S->nlive > S->live_hi) S->live_hi = S->nlive;
  if (corio_task_schedule(&S->loop, &t->core) != 0) {  /* undo: never ran */
    lua_pushnil(S->L);  /* an existing key: no allocation */
    lua_rawseti(S->L, SLOT_LIVE, t->live);
    S->nlive--;
    t->live = 0;
    S->loop.ntasks--;
    luaL_error(L, "corio.spawn: out of memory");
  }
  if (S->hostgroups > 0 && S->current != NULL)  /* a host group's task: joins it */
    corio__hostgroup_inherit(L, S, -1);
  if (S->inject) corio__inject_spawn(L, S);  /* corio.testing.checkpoints */
  return t;
}

/* ------------------------------------------------------------ bursts */

/* A Lua table never shrinks as its slots empty: after a burst of tasks, the
   live table would keep a slot (16 bytes) per task of the burst, and the
   side tables of what live tasks hold (the anchors of their scopes, their
   cancel messages) a node (32 bytes) per entry they once had. Once fewer
   than a quarter of the highest count of tasks are live, copies of the
   right size replace them (O(live), so O(1) per task finished). Out of
   memory, the old tables stay. */
static void side_copy(lua_State *L, int side, const char *key) {
  lua_getfield(L, side, key);
  lua_newtable(L);
  if (lua_getmetatable(L, -2)) lua_setmetatable(L, -2);  /* weak stays weak */
  lua_pushnil(L);
  while (lua_next(L, -3)) {
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, -4);
  }
  lua_setfield(L, side, key);
  lua_pop(L, 1);
}

static int live_copy(lua_State *L) {
  corio_State *S = (corio_State *)lua_touserdata(L, 2);
  lua_Integer i, n = (lua_Integer)S->nlive;
  lua_getfield(L, LUA_REGISTRYINDEX, SIDE_REGKEY);  /* 3: the side table */
  side_copy(L, 3, SIDE_GROUPS);
  side_copy(L, 3, SIDE_MESSAGES);
  lua_createtable(L, (int)n, 0);                   /* 4 */
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i);
    lua_rawseti(L, 4, i);
  }
  return 1;
}

static void live_shrink(corio_State *S) {
  lua_State *L = S->L;
  int top = lua_gettop(L);
  lua_pushcfunction(L, live_copy);
  lua_pushvalue(L, SLOT_LIVE);
  lua_pushlightuserdata(L, S);
  if (lua_pcall(L, 2, 1, 0) == LUA_OK) lua_replace(L, SLOT_LIVE);
  lua_settop(L, top);
  S->live_hi = S->nlive;
}

/* ------------------------------------------------------------ stepping */

/* Debug mode: a count hook notices a step that has run for more than
   100 ms without reaching a checkpoint, and reports where it is. */
static void slow_hook(lua_State *co, lua_Debug *ar) {
  corio_State *S = corio_state(co);
  int top = lua_gettop(co);
  (void)ar;
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
   thread at base+2; returns how many values to resume with, or -1 when
   memory ran out (the error at base+2). */
static int first_step(corio_State *S, luatask *t, int base) {
  lua_State *L = S->L;
  int i, nargs;
  if (!lua_checkstack(L, t->n + 8)) {  /* only when out of memory */
    fputs("corio: out of memory in the scheduler\n", stderr);
    abort();
  }
  lua_rawgeti(L, SLOT_LIVE, t->live);              /* base+1: the task */
  t->co = pool_take(S);                            /* base+2: the thread */
  if (t->co == NULL || !lua_checkstack(t->co, t->n + 2)) {
    if (t->co != NULL) {  /* no room on the thread's stack: back to the pool */
      pool_give(S, t->co, base + 2);
      lua_settop(L, base + 1);
      lua_pushliteral(L, "not enough memory");     /* Lua's own message, made */
      t->co = NULL;
    }
    return -1;
  }
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
  if (S->gc_stress) lua_gc(L, LUA_GCCOLLECT);  /* test mode: between resumes */
  if (!(ct->flags & CORIO_TASK_STARTED)) {
    ct->flags |= CORIO_TASK_STARTED;
    base = lua_gettop(L);
    if (corio_task_cancelled_by(ct) != NULL) {   /* never runs its body */
      lua_rawgeti(L, SLOT_LIVE, t->live);
      corio__push_cancel(L, S, t);
      corio__finish(S, t, base + 1, CORIO_CANCELLED, 1);
      lua_settop(L, base);
      return;
    }
    nargs = first_step(S, t, base);
    if (nargs < 0) {  /* out of memory before the body could start */
      corio__finish(S, t, base + 1, CORIO_FAILED, 1);
      lua_settop(L, base);
      return;
    }
  }
  if (S->inject && S->inject_pending == TASK_ID(t))  /* corio.testing.checkpoints */
    corio__inject_wake(S, t);
  co = t->co;  /* a started task's thread, anchored by its uservalue 1 */
  S->current = t;
  if (S->debug) {  /* the hook removes itself once debug mode is off */
    S->step_start = uv_hrtime();
    S->warned = 0;
    lua_sethook(co, slow_hook, LUA_MASKCOUNT, 10000);
  }
  corio__step_begin(S, co);  /* corio_interrupt may reach co now */
  status = lua_resume(co, L, nargs, &nres);
  corio__step_end(S);
  S->current = NULL;
  if (status == LUA_YIELD && S->suspending && nres == 0 &&
      ct->wait_kind != CORIO_WAIT_NONE) {          /* the common case */
    S->suspending = 0;
    if (S->shuffle_seed) TASK_SUSP(t) = ct->wait_kind;  /* what woke it, for the shuffle */
    if (nargs) lua_settop(L, base);
    if (S->inject) corio__inject_step(S, t);  /* corio.testing.checkpoints */
    return;
  }
  S->suspending = 0;
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
    S->current = t;  /* its <close> handlers run as the task (lock:release) */
    reset_thread(co);
    S->current = NULL;
    lua_pushliteral(L, "coroutine.yield called outside a coroutine "
                    "inside a task (to let other tasks run, use "
                    "corio.sleep(0))");
    corio__finish(S, t, base + 1, CORIO_FAILED, 1);
  }
  else if (status == LUA_OK) {
    if (S->failed) {
      S->failed = 0;
      lua_xmove(co, L, 1);
      corio__finish(S, t, base + 1,
             corio__is_cancel(L, -1) ? CORIO_CANCELLED : CORIO_FAILED, 1);
    }
    else {
      if (!lua_checkstack(L, nres + 4)) {
        lua_settop(co, 0);
        lua_pushliteral(L, "too many results");
        corio__finish(S, t, base + 1, CORIO_FAILED, 1);
      }
      else {
        lua_xmove(co, L, nres);
        corio__finish(S, t, base + 1, CORIO_DONE, nres);
      }
    }
    pool_give(S, co, base + 2);
  }
  else {  /* the trampoline itself failed: out of memory, C stack... */
    lua_xmove(co, L, 1);
    S->current = t;
    reset_thread(co);
    S->current = NULL;
    corio__finish(S, t, base + 1, CORIO_FAILED, 1);
  }
  lua_settop(L, base);
  if (S->live_hi >= LIVE_SHRINK_MIN && S->nlive < S->live_hi / 4) live_shrink(S);
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
   state as its context (no lookup needed there). The yield carries no
   values; S->suspending marks it as corio's, so a plain coroutine.yield
   is told apart, and corio's coroutine.resume passes it on. */
int corio__suspend(lua_State *L, corio_State *S, lua_KFunction k) {
  S->suspending = 1;
  return lua_yieldk(L, 0, (lua_KContext)S, k);
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

/* push a new cancellation error for t, naming its cause: the message
   given to task:cancel, the timeout that expired and where it was made, a
   failed task group, the end of the run. A scope whose maker returned
   without closing it gives instead the error that says so (and is
   dropped, so the mistake does not outlive this report). */
void corio__push_cancel(lua_State *L, corio_State *S, luatask *t) {
  void *by = corio_task_cancelled_by(&t->core);
  if (by != NULL && by != (void *)t) {
    if (corio__scope_cause(L, S, t, by)) return;
  }
  else {
    corio__push_side(L, S, SIDE_MESSAGES);
    lua_pushlightuserdata(L, t);
    lua_rawget(L, -2);
    lua_remove(L, -2);
    if (lua_isnil(L, -1) && t->core.group != NULL) {
      lua_pop(L, 1);
      lua_pushstring(L, t->core.group->nfailed > 0 ? "task group failed"
                                                   : "task group cancelled");
    }
  }
  lua_createtable(L, 0, 1);
  lua_insert(L, -2);
  lua_setfield(L, -2, "message");
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
  lua_createtable(S->L, POOL_MAX, 0);  /* its size never changes (pool_give) */
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
  corio__init_finish(L);
}
