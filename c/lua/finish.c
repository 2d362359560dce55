/*
** finish.c: how a task ends. Its results or its error go into its
** uservalues, it leaves the live table, its awaiters, group, gathers and
** done callbacks are told, and a failure nobody asks about is reported
** (once) through the error handler, the host's hook, or stderr.
*/
#include <stdio.h>
#include "binding.h"

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

/* ---- allocation under lua_pcall: out of memory while a task ends must
   not reach Lua's panic handler (S->L has no protection of its own) */

static int new_pack(lua_State *L) {  /* (narr, with_n) -> a table */
  lua_Integer n = lua_tointeger(L, 1);
  int with_n = lua_toboolean(L, 2);
  lua_createtable(L, (int)n, with_n);
  if (with_n) {
    lua_pushinteger(L, n);
    lua_setfield(L, -2, "n");
  }
  return 1;
}

/* pushes a table with room for narr values (and field n = narr), or
   returns 0 with the memory error pushed */
static int try_pack(lua_State *L, int narr, int with_n) {
  lua_pushcfunction(L, new_pack);
  lua_pushinteger(L, narr);
  lua_pushboolean(L, with_n);
  return lua_pcall(L, 2, 1, 0) == LUA_OK;
}

static int new_sentinel(lua_State *L) {
  lua_newuserdatauv(L, 0, 2);
  return 1;
}

static int rawset3(lua_State *L) {  /* (t, k, v): t[k] = v */
  lua_rawset(L, 1);
  return 0;
}

/* t[k] = true for the table t and key k at the top two slots (k is
   popped, t stays); 0 when memory ran out (nothing stored) */
static int try_mark(lua_State *L) {
  int ok;
  lua_pushcfunction(L, rawset3);
  lua_pushvalue(L, -3);
  lua_pushvalue(L, -3);
  lua_pushboolean(L, 1);
  ok = lua_pcall(L, 3, 0, 0) == LUA_OK;
  lua_pop(L, ok ? 1 : 2);  /* k, and the error */
  return ok;
}

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

static int safe_tostring(lua_State *L) {
  luaL_tolstring(L, 1, NULL);
  return 1;
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
    corio__call_hook(cb, S);  /* protected */
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
    corio__host_pcall(cb, S, 3, "error handler");
    lua_settop(cb, base);
  }
  else {  /* the error as text, on the callback thread: its __tostring
             is Lua code, and may itself fail */
    int base = lua_gettop(cb);
    const char *msg;
    lua_pushcfunction(cb, safe_tostring);
    lua_pushvalue(L, top + 2);
    lua_xmove(L, cb, 1);
    if (lua_pcall(cb, 1, 1, 0) != LUA_OK)
      msg = lua_pushfstring(cb, "(a %s error value; its __tostring failed: %s)",
                            luaL_typename(L, top + 2),
                            lua_isstring(cb, -1) ? lua_tostring(cb, -1) : "?");
    else msg = lua_tostring(cb, -1);
    fprintf(stderr, "corio: unhandled error in task %u: %s\n%s\n",
            (unsigned)TASK_ID(t), msg, lua_isstring(L, top + 3) ?
            lua_tostring(L, top + 3) : "(no traceback)");
    fflush(stderr);
    lua_settop(cb, base);
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
      corio__host_pcall(cb, S, 1, "done callback");  /* errors: the hook, or stderr */
      lua_settop(cb, base);
    }
  }
  lua_settop(L, top);
}

/* The task at tidx (of S->L) ends in state; its results (DONE) are the
   top n values of S->L, or its error (FAILED/CANCELLED) the top one. */
void corio__finish(corio_State *S, luatask *t, int tidx, int state, int n) {
  lua_State *L = S->L;
  corio_group_t *group;
  int i;
  if (state == CORIO_DONE) {
    if (n <= t->nuv) {
      for (i = n + 1; i <= t->nuv; i++) {
        lua_pushnil(L);
        lua_setiuservalue(L, tidx, i);
      }
      for (i = n; i >= 1; i--) lua_setiuservalue(L, tidx, i);
    }
    else if (try_pack(L, n, 1)) {  /* room made first: the stores allocate nothing */
      lua_insert(L, -n - 1);
      for (i = n; i >= 1; i--) lua_rawseti(L, -i - 1, i);
      lua_setiuservalue(L, tidx, 1);
      t->bits |= TASK_PACKED;
    }
    else {  /* no memory for the results: the task fails with that error */
      lua_insert(L, -n - 1);
      lua_pop(L, n);  /* the error replaces the results */
      state = CORIO_FAILED;
    }
    if (state == CORIO_DONE) t->n = (uint8_t)(n <= t->nuv ? n : TASK_NPACKED);
  }
  if (state != CORIO_DONE) {
    int err = lua_gettop(L);                       /* the error value */
    if (state == CORIO_FAILED && t->core.group != NULL) {
      if (!lua_isnil(L, SLOT_ERRS))  /* errors it replaced, oldest first */
        corio__group_record_replaced(L, S, t, err);
      corio__group_record_error(L, S, t, err);
    }
    if (state == CORIO_FAILED && !(t->bits & (TASK_RETRIEVED | TASK_HIDDEN))) {
      lua_pushcfunction(L, new_sentinel);          /* the sentinel */
      if (lua_pcall(L, 0, 1, 0) != LUA_OK) {       /* no memory: no report */
        lua_pop(L, 1);
        lua_pushvalue(L, SLOT_TB);
      }
      else {
        lua_pushvalue(L, tidx);
        lua_setiuservalue(L, -2, 1);
        lua_pushvalue(L, SLOT_TB);
        lua_setiuservalue(L, -2, 2);
        lua_pushvalue(L, SLOT_STATE);
        lua_getiuservalue(L, -1, 2);  /* the sentinel metatable */
        lua_remove(L, -2);
        lua_setmetatable(L, -2);
      }
    }
    else lua_pushvalue(L, SLOT_TB);
    if (t->nuv >= 2) {
      lua_setiuservalue(L, tidx, 2);
      lua_setiuservalue(L, tidx, 1);
    }
    else if (try_pack(L, 2, 0)) {  /* one slot: error and traceback in a table */
      lua_insert(L, err);
      lua_rawseti(L, err, 2);
      lua_rawseti(L, err, 1);
      lua_setiuservalue(L, tidx, 1);
      t->bits |= TASK_ERRPACK;
    }
    else {  /* no memory for the table: the error alone, no traceback */
      lua_pop(L, 2);
      lua_setiuservalue(L, tidx, 1);
    }
    for (i = 3; i <= t->nuv; i++) {
      lua_pushnil(L);
      lua_setiuservalue(L, tidx, i);
    }
    lua_pushnil(L);
    lua_replace(L, SLOT_TB);
    lua_pushnil(L);
    lua_replace(L, SLOT_ERR);
    lua_pushnil(L);
    lua_replace(L, SLOT_ERRS);
    t->n = 1;
  }
  if (t->core.scope != NULL) corio__scopes_release(L, S, t);
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
    (void)try_mark(L);  /* out of memory: only the sentinel reports it */
    lua_pop(L, 1);
  }
  group = t->core.group;  /* corio_task_finish takes t out of it */
  corio_task_finish(&S->loop, &t->core, state);
  if (group != NULL) corio__group_child_ended(L, S, group);
  if (state != CORIO_DONE && (t->bits & TASK_GATHERED) && S->gathers != NULL)
    corio__gather_alert(S);
  if (t->bits & TASK_HASCB) corio__run_callbacks(L, S, tidx);
  if (state == CORIO_FAILED && (t->bits & TASK_HIDDEN))
    corio__report(L, S, tidx);
}

/* End t without resuming it again (it can never finish by itself): its
   coroutine is dropped, so its <close> handlers do not run. */
void corio__abandon(corio_State *S, luatask *t) {
  lua_State *L = S->L;
  int base = lua_gettop(L);
  corio__iomod_abandon(S, t);  /* I/O that remembers t as its waiter forgets it */
  corio_task_detach(&S->loop, &t->core);
  lua_rawgeti(L, SLOT_LIVE, t->live);
  corio__push_cancel(L, S, t);
  corio__finish(S, t, base + 1, CORIO_CANCELLED, 1);
  lua_settop(L, base);
}

/* the sentinel metatable, kept as the state's uservalue 2 (state at -1) */
void corio__init_finish(lua_State *L) {
  lua_createtable(L, 0, 1);
  lua_pushvalue(L, -2);
  lua_pushcclosure(L, sentinel_gc, 1);
  lua_setfield(L, -2, "__gc");
  lua_setiuservalue(L, -2, 2);
}
