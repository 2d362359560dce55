/*
** task.c: the Task type and the calls that make and await tasks:
** corio.spawn, task:await / corio.await, corio.sleep, current_task,
** all_tasks.
*/
#include <string.h>
#include "binding.h"

static luatask *check_task(lua_State *L, int idx) {
  return (luatask *)luaL_checkudata(L, idx, TASK_MT);
}

/* a method's self (see selfcheck.c) */
static luatask *self_task(lua_State *L, const char *method) {
  return (luatask *)corio__check_self(L, 1, TASK_MT, method, "Task");
}

void corio__push_task(lua_State *L, corio_State *S, luatask *t) {
  lua_rawgeti(S->L, SLOT_LIVE, t->live);
  lua_xmove(S->L, L, 1);
}

const char *corio__state_name(const luatask *t) {
  switch (t->core.done.state) {
    case CORIO_DONE: return "done";
    case CORIO_FAILED: return "failed";
    case CORIO_CANCELLED: return "cancelled";
    default: break;
  }
  if (!(t->core.flags & CORIO_TASK_STARTED)) return "pending";
  switch (t->core.wait_kind) {
    case CORIO_WAIT_NONE: return "running";
    case CORIO_WAIT_READY: return "ready";
    default: return "waiting";
  }
}

static const char *const what_names[] = {
  "nothing", "sleep", "task", "future", "task group", "gather",
  "lock", "event", "condition", "semaphore", "barrier", "queue",
  "channel", "stream", "connect", "server", "udp", "lookup", "something",
  "process", "signal", "worker thread", NULL
};

static const char *what_name(int what) {
  return what_names[what];
}

/* Push the outcome of the finished task or future at idx: its results
   (returns how many), or raise its error (the same value). */
int corio__push_outcome(lua_State *L, int idx) {
  luatask *t = (luatask *)lua_touserdata(L, idx);
  int i, n;
  t->bits |= TASK_RETRIEVED;
  if (t->core.done.state == CORIO_DONE) {
    if (t->bits & TASK_PACKED) {
      lua_getiuservalue(L, idx, 1);
      lua_getfield(L, -1, "n");
      n = (int)lua_tointeger(L, -1);
      lua_pop(L, 1);
      luaL_checkstack(L, n, "too many results");
      for (i = 1; i <= n; i++) lua_rawgeti(L, -i, i);
      lua_remove(L, -n - 1);
      return n;
    }
    n = t->n;
    luaL_checkstack(L, n, "too many results");
    for (i = 1; i <= n; i++) lua_getiuservalue(L, idx, i);
    return n;
  }
  corio__push_error(L, idx);
  if (t->core.done.state == CORIO_FAILED) {
    corio_State *S = corio__state(L);
    /* remember what is re-raised, so the awaiter's traceback can show
       the awaited task's too */
    lua_pushvalue(L, -1);
    lua_xmove(L, S->L, 1);
    lua_replace(S->L, SLOT_CHAIN);
    corio__push_traceback(L, idx);
    lua_xmove(L, S->L, 1);
    lua_replace(S->L, SLOT_CHAINTB);
  }
  return lua_error(L);
}

/* ------------------------------------------------------------ awaiting */

/* The core future inside the task or future at idx (and which it is), or
   NULL. Compares metatables by pointer: no lookup on the await path. */
corio_future_t *corio__future_of(lua_State *L, corio_State *S, int idx,
                                 int *is_task) {
  void *p = lua_touserdata(L, idx);
  const void *mt;
  if (p == NULL || !lua_getmetatable(L, idx)) return NULL;
  mt = lua_topointer(L, -1);
  lua_pop(L, 1);
  if (mt == S->task_mt) {
    *is_task = 1;
    return &((luatask *)p)->core.done;
  }
  if (mt == S->future_mt) {
    *is_task = 0;
    return &((luafuture *)p)->core;
  }
  return NULL;
}

static corio_future_t *awaitable(lua_State *L, corio_State *S, int idx,
                                 int *is_task) {
  corio_future_t *f = corio__future_of(L, S, idx, is_task);
  if (f == NULL) luaL_typeerror(L, idx, "task or future");
  return f;
}

static int outcome(lua_State *L, int idx) {
  int is_task;
  awaitable(L, corio__state(L), idx, &is_task);
  return is_task ? corio__push_outcome(L, idx) : corio__future_outcome(L, idx);
}

static int await_k(lua_State *L, int status, lua_KContext ctx) {
  corio_State *S = (corio_State *)ctx;
  (void)status;
  corio__wake_check(L, S, S->current);
  return outcome(L, 1);
}

/* task:await(), future:await(), corio.await(x) (suspends) */
static int l_await(lua_State *L) {
  corio_State *S = corio__state(L);
  int is_task;
  corio_future_t *f = awaitable(L, S, 1, &is_task);
  luatask *t = corio__checkpoint(L, S, "corio.await");
  lua_settop(L, 1);
  if (f->state != CORIO_PENDING) return outcome(L, 1);
  if (is_task && f == &t->core.done)
    return luaL_error(L, "corio.await: a task cannot await itself");
  corio_task_await(&S->loop, &t->core, f);
  t->what = is_task ? W_TASK : W_FUTURE;
  return corio__suspend(L, S, await_k);
}

/* ------------------------------------------------------------ sleeping */

uint64_t corio__check_ns(lua_State *L, int arg) {
  lua_Number secs = luaL_checknumber(L, arg);
  if (secs != secs) luaL_argerror(L, arg, "not a number (NaN)");
  if (secs <= 0) return 0;
  if (secs >= CORIO_NEVER_S) return CORIO_NEVER_NS;
  return (uint64_t)(secs * 1e9);
}

static int sleep_k(lua_State *L, int status, lua_KContext ctx) {
  corio_State *S = (corio_State *)ctx;
  (void)status;
  if (S->current->core.wake != CORIO_WAKE_NORMAL)
    corio__wake_check(L, S, S->current);
  /* a cancellation that came while the task was ready to resume (sleep(0),
     or a timer that had fired): a sleep was handed nothing that raising
     could lose, so it raises here rather than at some later checkpoint */
  if (corio_task_cancelled_by(&S->current->core) != NULL) {
    S->current->what = W_NONE;
    corio__push_cancel(L, S, S->current);
    return lua_error(L);
  }
  S->current->what = W_NONE;
  return lua_gettop(L) - 1;
}

/* corio.sleep(secs, ...) (suspends) -> ... */
static int l_sleep(lua_State *L) {
  corio_State *S = corio__state(L);
  uint64_t ns = corio__check_ns(L, 1);
  luatask *t = corio__checkpoint(L, S, "corio.sleep");
  if (ns == 0) {  /* let every other ready task run once */
    t->core.wake = CORIO_WAKE_NORMAL;
    corio_task_schedule(&S->loop, &t->core);
  }
  else {  /* from the loop's time, cached per batch, as libuv's timers */
    if (corio_task_sleep_until(&S->loop, &t->core, S->loop.now + ns) != 0)
      return luaL_error(L, "corio.sleep: out of memory");
  }
  t->what = W_SLEEP;
  return corio__suspend(L, S, sleep_k);
}

/* core.sleep_until(when) (suspends): until corio.now() reaches when */
static int l_sleep_until(lua_State *L) {
  corio_State *S = corio__state(L);
  uint64_t ns = corio__check_ns(L, 1);
  luatask *t = corio__checkpoint(L, S, "corio.sleep_until");
  if (corio_task_sleep_until(&S->loop, &t->core, ns) != 0)
    return luaL_error(L, "corio.sleep_until: out of memory");
  t->what = W_SLEEP;
  return corio__suspend(L, S, sleep_k);
}

/* ------------------------------------------------------------ parking */

static int park_k(lua_State *L, int status, lua_KContext ctx) {
  corio_State *S = (corio_State *)ctx;
  (void)status;
  corio__wake_check(L, S, S->current);
  return 0;
}

/* core.park([what]) (suspends): wait until core.unpark(task) or a
   cancellation. The building block of locks, events and queues (their
   data stays in their own structures, so a wait allocates nothing);
   `what` names what it waits on in dumps: "lock", "queue", ... */
static int l_park(lua_State *L) {
  corio_State *S = corio__state(L);
  int what = luaL_checkoption(L, 1, "something", what_names);
  luatask *t = corio__checkpoint(L, S, "corio.park");
  corio_task_park(&S->loop, &t->core);
  t->what = (uint8_t)what;
  return corio__suspend(L, S, park_k);
}

/* core.unpark(task) -> true if the task was parked and is now woken;
   false if it was not parked (already woken, cancelled or finished) */
static int l_unpark(lua_State *L) {
  corio_State *S = corio__state(L);
  luatask *t = check_task(L, 1);
  int ok = t->core.wait_kind == CORIO_WAIT_PARKED && t->what >= W_LOCK;
  if (ok) corio_task_wake(&S->loop, &t->core, CORIO_WAKE_NORMAL);
  lua_pushboolean(L, ok);
  return 1;
}

/* ------------------------------------------------------------ spawning */

static int l_spawn(lua_State *L) {
  corio_State *S = corio__state(L);
  if (!S->running)
    return luaL_error(L, "corio.spawn: no running loop (start one with corio.run)");
  if (lua_type(L, 1) != LUA_TFUNCTION) {
    if (luaL_getmetafield(L, 1, "__call") == LUA_TNIL)
      return luaL_typeerror(L, 1, "function");
    lua_pop(L, 1);
  }
  corio__spawn(L, S, 1, lua_gettop(L) - 1);
  return 1;
}

static int l_current_task(lua_State *L) {
  corio_State *S = corio__state(L);
  if (S->current == NULL || (S->current->bits & TASK_HIDDEN)) {
    lua_pushnil(L);
    return 1;
  }
  corio__push_task(L, S, S->current);
  return 1;
}

static int l_all_tasks(lua_State *L) {
  corio_State *S = corio__state(L);
  uint32_t i;
  lua_Integer n = 0;
  lua_createtable(L, (int)S->nlive, 0);
  for (i = 1; i <= S->nlive; i++) {
    luatask *t;
    lua_rawgeti(S->L, SLOT_LIVE, i);
    t = (luatask *)lua_touserdata(S->L, -1);
    if (t->bits & TASK_HIDDEN) {
      lua_pop(S->L, 1);
      continue;
    }
    lua_xmove(S->L, L, 1);
    lua_rawseti(L, -2, ++n);
  }
  return 1;
}

/* ------------------------------------------------------------ methods */

static int t_cancel(lua_State *L) {
  corio_State *S = corio__state(L);
  luatask *t = self_task(L, "task:cancel");
  if (t->core.done.state != CORIO_PENDING) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (!lua_isnoneornil(L, 2) &&
      !(t->core.flags & CORIO_TASK_CANCEL_REQUESTED)) {
    corio__push_side(L, S, SIDE_MESSAGES);
    lua_pushlightuserdata(L, t);
    lua_pushvalue(L, 2);
    lua_rawset(L, -3);
  }
  corio_task_cancel(&S->loop, &t->core);
  lua_pushboolean(L, 1);
  return 1;
}

static int t_done(lua_State *L) {
  lua_pushboolean(L, self_task(L, "task:done")->core.done.state != CORIO_PENDING);
  return 1;
}

static int t_cancelled(lua_State *L) {
  lua_pushboolean(L, self_task(L, "task:cancelled")->core.done.state == CORIO_CANCELLED);
  return 1;
}

static int t_result(lua_State *L) {
  luatask *t = self_task(L, "task:result");
  if (t->core.done.state == CORIO_PENDING)
    return luaL_error(L, "task:result: task not done");
  lua_settop(L, 1);
  return corio__push_outcome(L, 1);
}

static int t_error(lua_State *L) {
  luatask *t = self_task(L, "task:error");
  if (t->core.done.state == CORIO_PENDING)
    return luaL_error(L, "task:error: task not done");
  t->bits |= TASK_RETRIEVED;
  if (t->core.done.state == CORIO_DONE) lua_pushnil(L);
  else corio__push_error(L, 1);
  return 1;
}

static int t_traceback(lua_State *L) {
  luatask *t = self_task(L, "task:traceback");
  if (t->core.done.state != CORIO_FAILED) {
    lua_pushnil(L);
    return 1;
  }
  corio__push_traceback(L, 1);
  return 1;
}

static void push_name(lua_State *L, corio_State *S, int idx) {
  luatask *t = (luatask *)lua_touserdata(L, idx);
  corio__push_side(L, S, SIDE_NAMES);
  lua_pushvalue(L, idx);
  if (lua_rawget(L, -2) == LUA_TNIL) {
    lua_pop(L, 1);
    lua_pushfstring(L, "task %d", (int)TASK_ID(t));
  }
  lua_remove(L, -2);
}

static int t_name(lua_State *L) {
  self_task(L, "task:name");
  push_name(L, corio__state(L), 1);
  return 1;
}

static int t_set_name(lua_State *L) {
  corio_State *S = corio__state(L);
  self_task(L, "task:set_name");
  luaL_checkstring(L, 2);
  corio__push_side(L, S, SIDE_NAMES);
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  lua_rawset(L, -3);
  return 0;
}

/* shared by tasks and futures: fn(obj) runs once the object is done */
int corio__add_done_callback(lua_State *L, int done) {
  corio_State *S = corio__state(L);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  if (done) {
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 1);
    lua_call(L, 1, 0);
    return 0;
  }
  corio__push_side(L, S, SIDE_CALLBACKS);
  lua_pushvalue(L, 1);
  if (lua_rawget(L, -2) == LUA_TNIL) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, -2);
    lua_rawset(L, -4);
  }
  lua_pushvalue(L, 2);
  lua_rawseti(L, -2, luaL_len(L, -2) + 1);
  return 0;
}

static int t_add_done_callback(lua_State *L) {
  luatask *t = self_task(L, "task:add_done_callback");
  t->bits |= TASK_HASCB;  /* finish looks for callbacks only then */
  return corio__add_done_callback(L, t->core.done.state != CORIO_PENDING);
}

static int t_tostring(lua_State *L) {
  corio_State *S = corio__state(L);
  luatask *t = self_task(L, "task:__tostring");
  const char *state = corio__state_name(t);
  push_name(L, S, 1);
  if (strcmp(state, "waiting") == 0)
    lua_pushfstring(L, "task %d \"%s\" (waiting: %s)", (int)TASK_ID(t),
                    lua_tostring(L, -1), what_name(t->what));
  else
    lua_pushfstring(L, "task %d \"%s\" (%s)", (int)TASK_ID(t),
                    lua_tostring(L, -1), state);
  return 1;
}

/* core.task_info(task) -> id, state, what, thread or nil, id of the task
   that owns its group or nil (for dump) */
static int l_task_info(lua_State *L) {
  luatask *t = check_task(L, 1);
  lua_pushinteger(L, TASK_ID(t));
  lua_pushstring(L, corio__state_name(t));
  lua_pushstring(L, what_name(t->what));
  if (t->core.done.state == CORIO_PENDING &&
      (t->core.flags & CORIO_TASK_STARTED)) {
    lua_getiuservalue(L, 1, 1);
    if (!lua_isthread(L, -1)) {
      lua_pop(L, 1);
      lua_pushnil(L);
    }
  }
  else lua_pushnil(L);
  if (t->core.group != NULL && t->core.group->body.task != NULL)
    lua_pushinteger(L, TASK_ID((luatask *)t->core.group->body.task));
  else lua_pushnil(L);
  return 5;
}

static const luaL_Reg task_methods[] = {
  {"await", l_await},
  {"cancel", t_cancel},
  {"done", t_done},
  {"cancelled", t_cancelled},
  {"result", t_result},
  {"error", t_error},
  {"traceback", t_traceback},
  {"name", t_name},
  {"set_name", t_set_name},
  {"add_done_callback", t_add_done_callback},
  {NULL, NULL}
};

const luaL_Reg corio__task_funcs[] = {
  {"spawn", l_spawn},
  {"await", l_await},
  {"sleep", l_sleep},
  {"sleep_until", l_sleep_until},
  {"park", l_park},
  {"unpark", l_unpark},
  {"current_task", l_current_task},
  {"all_tasks", l_all_tasks},
  {"task_info", l_task_info},
  {NULL, NULL}
};

/* stack: state userdata at -1 */
void corio__open_task(lua_State *L) {
  luaL_newmetatable(L, TASK_MT);
  lua_newtable(L);
  lua_pushvalue(L, -3);
  luaL_setfuncs(L, task_methods, 1);
  lua_setfield(L, -2, "__index");
  lua_pushvalue(L, -2);
  lua_pushcclosure(L, t_tostring, 1);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
}
