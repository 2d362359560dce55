/*
** checkpoint.c: cancellation injection for corio.testing.checkpoints.
**
** Once armed on a root task, every task spawned by a tracked task is
** tracked too (the tracked set is a weak-keyed table of Task userdata in
** the registry). Each time a tracked task suspends (corio__step sees its
** yield: it now waits on a timer, a future, a lock, I/O...), the count
** goes up; at the chosen count, a cancellation is requested exactly as
** task:cancel() from another task would: the waiter itself ("waiter"
** mode) or the root ("root" mode); or, with `woken`, once the waiter
** has been woken and just before it resumes (the window where a result
** it was handed could be dropped by a careless continuation). Loop
** callbacks (hidden tasks) are not counted. Nothing here runs unless
** armed, and it is for tests: out of memory between steps, where it
** stores the cancel message, is not guarded against.
*/
#include "binding.h"

#define INJECT_KEY "corio.inject"  /* registry: {tracked = {}, root = task} */

static void push_inject(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, INJECT_KEY);
}

/* the task just spawned (at the top of L) is tracked if its spawner is */
void corio__inject_spawn(lua_State *L, corio_State *S) {
  if (S->current == NULL || S->current->live == 0) return;
  push_inject(L);                               /* task inj */
  if (!lua_istable(L, -1)) { lua_pop(L, 1); return; }
  lua_getfield(L, -1, "tracked");               /* task inj tracked */
  lua_rawgeti(S->L, SLOT_LIVE, S->current->live);
  lua_xmove(S->L, L, 1);                        /* task inj tracked cur */
  if (lua_rawget(L, -2) != LUA_TNIL) {
    lua_pushvalue(L, -4);
    lua_pushboolean(L, 1);
    lua_rawset(L, -4);
  }
  lua_pop(L, 3);
}

static void cancel(lua_State *L, corio_State *S, int tidx) {
  luatask *t = (luatask *)lua_touserdata(L, tidx);
  if (t == NULL || t->core.done.state != CORIO_PENDING) return;
  if (!(t->core.flags & CORIO_TASK_CANCEL_REQUESTED)) {
    corio__push_side(L, S, SIDE_MESSAGES);
    lua_pushlightuserdata(L, t);
    lua_pushfstring(L, "injected at checkpoint %I (corio.testing)",
                    (lua_Integer)S->inject_count);
    lua_rawset(L, -3);
    lua_pop(L, 1);
  }
  corio_task_cancel(&S->loop, &t->core);
}

/* task t has just suspended at a checkpoint: count it if tracked, and
   cancel at the chosen one. Runs on the scheduler thread between steps. */
void corio__inject_step(corio_State *S, luatask *t) {
  lua_State *L = S->L;
  int top = lua_gettop(L);
  if (t->live == 0 || (t->bits & TASK_HIDDEN) || !lua_checkstack(L, 4))
    return;  /* loop callbacks are corio's own: not counted */
  push_inject(L);
  if (!lua_istable(L, -1)) { lua_settop(L, top); return; }
  lua_getfield(L, -1, "tracked");
  lua_rawgeti(L, SLOT_LIVE, t->live);
  if (lua_rawget(L, -2) != LUA_TNIL) {
    S->inject_count++;
    if (S->inject_count == S->inject_at && S->inject_woken)
      S->inject_pending = TASK_ID(t);  /* cancelled once woken, before it resumes */
    else if (S->inject_count == S->inject_at) {
      if (S->inject == 2) {  /* the root */
        lua_getfield(L, top + 1, "root");
        cancel(L, S, -1);
      }
      else {
        lua_rawgeti(L, SLOT_LIVE, t->live);
        cancel(L, S, -1);
      }
    }
  }
  lua_settop(L, top);
}

/* task t, woken from the k-th checkpoint, is about to resume: the
   cancellation arrives now, after what woke it and before it runs */
void corio__inject_wake(corio_State *S, luatask *t) {
  lua_State *L = S->L;
  int top = lua_gettop(L);
  S->inject_pending = 0;
  if (!lua_checkstack(L, 4)) return;
  if (S->inject == 2) {
    push_inject(L);
    if (lua_istable(L, -1)) {
      lua_getfield(L, -1, "root");
      cancel(L, S, -1);
    }
  }
  else {
    lua_rawgeti(L, SLOT_LIVE, t->live);
    cancel(L, S, -1);
  }
  lua_settop(L, top);
}

/* core.testing_inject(task, at, mode, woken): track task and its descendants;
   at = 0 only counts; mode "waiter" (cancel the task at that checkpoint)
   or "root" (cancel task); woken: the cancellation comes once the
   waiter is woken, not while it waits. core.testing_inject() disarms. */
static int l_testing_inject(lua_State *L) {
  corio_State *S = corio__state(L);
  const char *mode;
  if (lua_isnoneornil(L, 1)) {
    S->inject = 0;
    S->inject_pending = 0;
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, INJECT_KEY);
    return 0;
  }
  if (!lua_getmetatable(L, 1) || lua_topointer(L, -1) != S->task_mt)
    return luaL_error(L, "corio.testing.checkpoints: a task expected");
  lua_pop(L, 1);
  mode = luaL_optstring(L, 3, "waiter");
  lua_createtable(L, 0, 2);
  lua_createtable(L, 0, 1);                   /* tracked, weak keys */
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, 1);
  lua_pushboolean(L, 1);
  lua_rawset(L, -3);
  lua_setfield(L, -2, "tracked");
  lua_pushvalue(L, 1);
  lua_setfield(L, -2, "root");
  lua_setfield(L, LUA_REGISTRYINDEX, INJECT_KEY);
  S->inject_at = (uint64_t)luaL_optinteger(L, 2, 0);
  S->inject_count = 0;
  S->inject_woken = lua_toboolean(L, 4);
  S->inject_pending = 0;
  S->inject = mode[0] == 'r' ? 2 : 1;
  return 0;
}

/* core.testing_inject_track(task): task joins the tracked tree (a server's
   handler, spawned by the loop, not by a tracked task); no effect unarmed */
static int l_testing_inject_track(lua_State *L) {
  corio_State *S = corio__state(L);
  if (!lua_getmetatable(L, 1) || lua_topointer(L, -1) != S->task_mt)
    return luaL_error(L, "corio.testing.track: a task expected");
  lua_pop(L, 1);
  if (!S->inject) return 0;
  push_inject(L);
  lua_getfield(L, -1, "tracked");
  lua_pushvalue(L, 1);
  lua_pushboolean(L, 1);
  lua_rawset(L, -3);
  return 0;
}

/* core.testing_inject_count() -> checkpoints counted since armed */
static int l_testing_inject_count(lua_State *L) {
  corio_State *S = corio__state(L);
  lua_pushinteger(L, (lua_Integer)S->inject_count);
  return 1;
}

const luaL_Reg corio__checkpoint_funcs[] = {
  {"testing_inject", l_testing_inject},
  {"testing_inject_count", l_testing_inject_count},
  {"testing_inject_track", l_testing_inject_track},
  {NULL, NULL}
};
