/*
** scope.c: cancel scopes seen from Lua (timeouts, shields) and task
** groups. Both are userdata entered on the current task when made and
** left by their __close; while entered they are anchored in a side
** table, so the core's pointers to them stay valid even if a script
** forgets the <close>.
*/
#include <string.h>
#include "binding.h"

typedef struct luascope {
  corio_scope_t core;
  int depth;        /* its maker's frame, counted from the bottom of the
                       maker's thread; -1: not checked (corio's own) */
} luascope;

typedef struct luagroup {
  corio_group_t core;
  corio_scope_t shield;   /* held around the wait after a cancellation */
  int depth;              /* as luascope's */
  uint32_t run;           /* the run it was made in */
} luagroup;

/* uservalues of a scope (and fields of a group's table): what and where
   it was made ("timeout(0.05) made at quick.lua:1"), and the maker's
   function and thread, to tell when the maker has returned */
#define UV_DESC   1
#define UV_MAKER  2
#define UV_THREAD 3

/* anchor the object at idx under its address; idx 0 drops the anchor */
static void anchor(lua_State *L, corio_State *S, void *p, int idx) {
  if (idx) idx = lua_absindex(L, idx);
  corio__push_side(L, S, SIDE_GROUPS);
  lua_pushlightuserdata(L, p);
  if (idx) lua_pushvalue(L, idx);
  else lua_pushnil(L);
  lua_rawset(L, -3);
  lua_pop(L, 1);
}

static luatask *current(lua_State *L, corio_State *S, const char *fname) {
  if (S->current == NULL)
    luaL_error(L, "%s: not inside a task (start one with corio.run)", fname);
  return S->current;
}

static int stack_depth(lua_State *L) {
  lua_Debug ar;
  int n = 0;
  while (lua_getstack(L, n, &ar)) n++;
  return n;
}

/* Push "what made at file:line" for the frame `level` levels above the
   C function running (1: its caller), then, when track > 0, the function
   of the frame `track` levels up and the thread; returns that frame's
   depth from the bottom, or -1. */
static int describe(lua_State *L, const char *what, int level, int track) {
  lua_Debug ar;
  int depth = -1;
  if (lua_getstack(L, level, &ar) && lua_getinfo(L, "Sl", &ar) &&
      ar.currentline > 0)
    lua_pushfstring(L, "%s made at %s:%d", what, ar.short_src, ar.currentline);
  else lua_pushstring(L, what);
  if (track > 0) {
    if (lua_getstack(L, track, &ar) && lua_getinfo(L, "f", &ar))
      depth = stack_depth(L) - 1 - track;
    else lua_pushnil(L);
    lua_pushthread(L);
  }
  return depth;
}

/* Has the maker of the object at idx returned? Told only from the maker's
   own thread: its frame at the recorded depth is gone or is another
   function's. push(L, idx, field) pushes a recorded value. */
static int maker_gone(lua_State *L, int idx, int depth,
                      int (*push)(lua_State *, int, int)) {
  lua_Debug ar;
  int level, gone;
  if (depth < 0) return 0;
  push(L, idx, UV_THREAD);
  gone = lua_tothread(L, -1) == L;
  lua_pop(L, 1);
  if (!gone) return 0;
  level = stack_depth(L) - 1 - depth;
  if (level < 0 || !lua_getstack(L, level, &ar) || !lua_getinfo(L, "f", &ar))
    return 1;
  push(L, idx, UV_MAKER);
  gone = !lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  return gone;
}

static int push_scope_uv(lua_State *L, int idx, int n) {
  return lua_getiuservalue(L, idx, n);
}

static int push_group_field(lua_State *L, int idx, int n) {
  static const char *const names[] = {NULL, "desc", "maker", "thread"};
  lua_getiuservalue(L, idx, 1);
  lua_getfield(L, -1, names[n]);
  lua_remove(L, -2);
  return lua_type(L, -1);
}

/* the message for a scope made at idx and never closed */
static void push_never_closed(lua_State *L, int idx, int group) {
  const char *desc;
  if (group) push_group_field(L, idx, UV_DESC);
  else lua_getiuservalue(L, idx, UV_DESC);
  desc = lua_tostring(L, -1);
  if (group)
    lua_pushfstring(L, "%s was never closed: use local tg <close> = "
                    "corio.task_group()", desc);
  else  /* desc starts with the function's name: "timeout_at(12.5) ..." */
    lua_pushfstring(L, "%s was never closed: use local t <close> = "
                    "corio.%s(...)", desc, lua_pushlstring(L, desc,
                    strcspn(desc, "(")));
  if (!group) lua_remove(L, -2);
  lua_remove(L, -2);
}

/* ------------------------------------------------------------ scopes */

/* core.scope(deadline or nil, shield [, what, level, track]) ->
   Scope, entered on the current task. what names it in cancellation
   messages ("timeout(0.05)"), made at the frame `level` above the caller
   (1: the caller); track > 0 checks that the frame `track` levels up (the
   one that must close it) has not returned whenever it cancels. */
static int l_scope(lua_State *L) {
  corio_State *S = corio__state(L);
  int shield = lua_toboolean(L, 2), has_deadline = !lua_isnoneornil(L, 1);
  luatask *t = current(L, S, shield ? "corio.shield" : "corio.timeout");
  const char *what = luaL_optstring(L, 3, NULL);
  int level = (int)luaL_optinteger(L, 4, 1);
  int track = (int)luaL_optinteger(L, 5, 0), depth = -1;
  luascope *s;
  uint64_t ns = has_deadline ? corio__check_ns(L, 1) : 0;
  lua_settop(L, 3);  /* keeps `what` alive */
  s = (luascope *)lua_newuserdatauv(L, sizeof *s, what ? 3 : 0);  /* 4 */
  corio_scope_init(&s->core);
  s->core.shield = (uint8_t)shield;
  s->depth = -1;
  luaL_setmetatable(L, SCOPE_MT);
  if (what) {
    depth = describe(L, what, level, track);
    if (track > 0) {
      lua_setiuservalue(L, 4, UV_THREAD);
      lua_setiuservalue(L, 4, UV_MAKER);
    }
    lua_setiuservalue(L, 4, UV_DESC);
    s->depth = depth;
  }
  corio_scope_enter(&s->core, &t->core);
  anchor(L, S, s, 4);
  if (has_deadline && corio_scope_set_deadline(&S->loop, &s->core, ns) != 0)
    return luaL_error(L, "corio.timeout: out of memory");
  return 1;
}

/* Leave cs (it must be the task's innermost scope, and be left from its
   own task). Scopes inside it whose makers returned without closing them
   are dropped first, with an error that says so. */
static int leave(lua_State *L, corio_State *S, corio_scope_t *cs, void *p,
                 const char *what) {
  if (!cs->entered) return 0;
  if (S->current == NULL || &S->current->core != cs->task)
    return luaL_error(L, "%s: closed from a task other than the one that "
                      "made it", what);
  if (cs->task->scope != cs) {
    if (corio__scope_cause(L, S, (luatask *)cs->task, cs->task->scope)) {
      /* dropped: leave cs too, then report the mistake */
      if (cs->task->scope == cs) {
        corio_scope_leave(&S->loop, cs);
        if (p != NULL) anchor(L, S, p, 0);
      }
      return lua_error(L);
    }
    return luaL_error(L, "%s: scopes closed out of order (a scope must be "
                      "closed inside the block that opened it)", what);
  }
  corio_scope_leave(&S->loop, cs);
  if (p != NULL) anchor(L, S, p, 0);
  return 1;
}

/* t ends with scopes its code never left (made without <close>): they
   leave its chain, so that neither their deadlines nor a dump reach the
   finished task through them. A timeout's anchor goes with it; a group
   stays anchored while it has children. */
void corio__scopes_release(lua_State *L, corio_State *S, luatask *t) {
  int top = lua_gettop(L);
  corio__push_side(L, S, SIDE_GROUPS);
  while (t->core.scope != NULL) {
    corio_scope_t *s = t->core.scope;
    corio_scope_drop(&S->loop, s);
    lua_pushlightuserdata(L, s);
    if (lua_rawget(L, top + 1) == LUA_TUSERDATA &&
        (luaL_testudata(L, -1, SCOPE_MT) != NULL ||
         (luaL_testudata(L, -1, GROUP_MT) != NULL &&
          ((luagroup *)lua_touserdata(L, -1))->core.nchildren == 0))) {
      lua_pushlightuserdata(L, s);
      lua_pushnil(L);
      lua_rawset(L, top + 1);
    }
    lua_settop(L, top + 1);
  }
  lua_settop(L, top);
}

void corio__group_child_ended(lua_State *L, corio_State *S, corio_group_t *g) {
  if (g->nchildren == 0 && !g->body.entered)
    anchor(L, S, g, 0);  /* luagroup and its core share their address */
}

/* Why scope `by` cancels t (see binding.h). by is a timeout or shield
   (a Scope) or a group's body (a TaskGroup: the body is its first
   field), anchored under its address while entered. */
int corio__scope_cause(lua_State *L, corio_State *S, luatask *t, void *by) {
  int top = lua_gettop(L), idx = top + 2, group;
  (void)t;
  corio__push_side(L, S, SIDE_GROUPS);
  lua_pushlightuserdata(L, by);
  if (lua_rawget(L, -2) != LUA_TUSERDATA) {
    lua_settop(L, top);
    lua_pushnil(L);
    return 0;
  }
  group = luaL_testudata(L, idx, GROUP_MT) != NULL;
  if (group) {
    luagroup *g = (luagroup *)by;
    if (maker_gone(L, idx, g->depth, push_group_field)) {
      corio_scope_drop(&S->loop, &g->core.body);
      g->depth = -1;
      push_never_closed(L, idx, 1);
      lua_replace(L, top + 1);
      lua_settop(L, top + 1);
      return 1;
    }
    lua_pushstring(L, g->core.nfailed > 0 ? "task group failed"
                                          : "task group cancelled");
  }
  else {
    luascope *s = (luascope *)by;
    if (maker_gone(L, idx, s->depth, push_scope_uv)) {
      corio_scope_drop(&S->loop, &s->core);
      anchor(L, S, s, 0);
      push_never_closed(L, idx, 0);
      lua_replace(L, top + 1);
      lua_settop(L, top + 1);
      return 1;
    }
    if (lua_getiuservalue(L, idx, UV_DESC) != LUA_TSTRING) {
      lua_pop(L, 1);
      lua_pushliteral(L, "scope cancelled");
    }
    else if (!s->core.expired)
      lua_pushfstring(L, "%s cancelled", lua_tostring(L, -1));
  }
  lua_replace(L, top + 1);
  lua_settop(L, top + 1);
  return 0;
}

/* scope:__close(err): raise TimeoutError when the scope's own deadline
   cancelled the code inside and nothing outside is cancelling too */
static int s_close(lua_State *L) {
  corio_State *S = corio__state(L);
  luascope *s = (luascope *)luaL_checkudata(L, 1, SCOPE_MT);
  corio_task_t *t = s->core.task;
  if (!leave(L, S, &s->core, s, "corio.timeout")) return 0;
  if (s->core.expired && !lua_isnoneornil(L, 2) &&
      corio__is_cancel(L, 2) && corio_task_cancelled_by(t) == NULL) {
    corio__push_side(L, S, SIDE_HOOKS);
    lua_getfield(L, -1, "timeout_error");
    if (lua_getiuservalue(L, 1, UV_DESC) == LUA_TSTRING)
      lua_pushfstring(L, "deadline exceeded (%s)", lua_tostring(L, -1));
    else lua_pushnil(L);
    lua_remove(L, -2);
    lua_call(L, 1, 1);
    return lua_error(L);
  }
  return 0;
}

static luascope *check_scope(lua_State *L, const char *method) {
  return (luascope *)corio__check_self(L, 1, SCOPE_MT, method, "Scope");
}

static int s_cancel(lua_State *L) {
  corio_State *S = corio__state(L);
  luascope *s = check_scope(L, "scope:cancel");
  corio_scope_cancel(&S->loop, &s->core);
  return 0;
}

static int s_expired(lua_State *L) {
  luascope *s = check_scope(L, "scope:expired");
  lua_pushboolean(L, s->core.expired);
  return 1;
}

static int s_cancelled(lua_State *L) {
  luascope *s = check_scope(L, "scope:cancelled");
  lua_pushboolean(L, s->core.cancelled);
  return 1;
}

static int s_deadline(lua_State *L) {
  luascope *s = check_scope(L, "scope:deadline");
  if (corio_timer_active(&s->core.deadline))
    lua_pushnumber(L, (lua_Number)s->core.deadline.when / 1e9);
  else lua_pushnil(L);
  return 1;
}

/* scope:reschedule(when): a new deadline (loop time, as corio.now()), or
   none with nil; raises once the scope has expired or been closed */
static int s_reschedule(lua_State *L) {
  corio_State *S = corio__state(L);
  luascope *s = check_scope(L, "scope:reschedule");
  uint64_t ns = lua_isnoneornil(L, 2) ? 0 : corio__check_ns(L, 2);
  if (!s->core.entered)
    return luaL_error(L, "scope:reschedule: the scope is closed");
  if (s->core.cancelled)
    return luaL_error(L, "scope:reschedule: the scope has already %s",
                      s->core.expired ? "expired" : "been cancelled");
  corio_timer_stop(&S->loop, &s->core.deadline);
  if (!lua_isnoneornil(L, 2) &&
      corio_scope_set_deadline(&S->loop, &s->core, ns) != 0)
    return luaL_error(L, "scope:reschedule: out of memory");
  return 0;
}

static int s_tostring(lua_State *L) {
  luascope *s = check_scope(L, "scope:__tostring");
  lua_pushfstring(L, "scope (%s%s)", s->core.shield ? "shield, " : "",
                  s->core.expired ? "expired" : s->core.cancelled ?
                  "cancelled" : s->core.entered ? "active" : "closed");
  return 1;
}

/* core.cancelled_now() -> true if a cancellation reaches the current task */
static int l_cancelled_now(lua_State *L) {
  corio_State *S = corio__state(L);
  lua_pushboolean(L, S->current != NULL &&
                  corio_task_cancelled_by(&S->current->core) != NULL);
  return 1;
}

/* ------------------------------------------------------------ groups */

static luagroup *check_group_m(lua_State *L, const char *method) {
  return (luagroup *)corio__check_self(L, 1, GROUP_MT, method, "TaskGroup");
}
#define check_group(L) check_group_m(L, "task group method")

/* core.task_group([level, track]) -> TaskGroup, its body scope entered on
   the current task; level and track as core.scope's */
static int l_task_group(lua_State *L) {
  corio_State *S = corio__state(L);
  luatask *t = current(L, S, "corio.task_group");
  int level = (int)luaL_optinteger(L, 1, 1), track = (int)luaL_optinteger(L, 2, 0);
  luagroup *g;
  lua_settop(L, 0);
  g = (luagroup *)lua_newuserdatauv(L, sizeof *g, 1);
  corio_group_init(&g->core);
  corio_scope_init(&g->shield);
  g->shield.shield = 1;
  g->depth = -1;
  g->run = S->run_id;
  lua_createtable(L, 0, 5);       /* errors and their tracebacks */
  lua_newtable(L);
  lua_setfield(L, -2, "errors");
  lua_newtable(L);
  lua_setfield(L, -2, "tracebacks");
  g->depth = describe(L, "task_group()", level + 0, track);
  if (track > 0) {
    lua_setfield(L, 2, "thread");
    lua_setfield(L, 2, "maker");
  }
  lua_setfield(L, 2, "desc");
  lua_setiuservalue(L, 1, 1);
  luaL_setmetatable(L, GROUP_MT);
  corio_group_enter(&g->core, &t->core);
  anchor(L, S, g, -1);
  return 1;
}

static void append_error(lua_State *L, int gidx, int eidx, int tbidx) {
  lua_getiuservalue(L, gidx, 1);
  lua_getfield(L, -1, "errors");
  lua_pushvalue(L, eidx);
  lua_rawseti(L, -2, luaL_len(L, -2) + 1);
  lua_getfield(L, -2, "tracebacks");
  lua_pushvalue(L, tbidx);
  lua_rawseti(L, -2, luaL_len(L, -2) + 1);
  lua_pop(L, 3);
}

/* a child of a group failed with the error at eidx: keep it for the
   ErrorGroup */
void corio__group_record_error(lua_State *L, corio_State *S, luatask *t, int eidx) {
  int top = lua_gettop(L);
  corio__push_side(L, S, SIDE_GROUPS);
  lua_pushlightuserdata(L, t->core.group);  /* == the luagroup */
  if (lua_rawget(L, -2) == LUA_TUSERDATA) {
    append_error(L, top + 2, eidx, SLOT_TB);
    t->bits |= TASK_RETRIEVED;
  }
  lua_settop(L, top);
}

/* the errors that a child's final error replaced (raised in a __close
   while unwinding them), from SLOT_ERRS: {err, tb, err, tb, ...} */
void corio__group_record_replaced(lua_State *L, corio_State *S, luatask *t,
                                  int eidx) {
  int top = lua_gettop(L);
  lua_Integer i, n = (lua_Integer)lua_rawlen(L, SLOT_ERRS);
  corio__push_side(L, S, SIDE_GROUPS);
  lua_pushlightuserdata(L, t->core.group);
  if (lua_rawget(L, -2) == LUA_TUSERDATA) {
    for (i = 1; i + 1 <= n; i += 2) {
      lua_rawgeti(L, SLOT_ERRS, i);                  /* top+3 */
      lua_rawgeti(L, SLOT_ERRS, i + 1);              /* top+4 */
      if (!lua_rawequal(L, top + 3, eidx) && !corio__is_cancel(L, top + 3))
        append_error(L, top + 2, top + 3, top + 4);
      lua_settop(L, top + 2);
    }
  }
  lua_settop(L, top);
}

static int g_spawn(lua_State *L) {
  corio_State *S = corio__state(L);
  luagroup *g = check_group_m(L, "tg:spawn");
  luatask *t;
  if (!S->running || g->run != S->run_id)
    return luaL_error(L, "tg:spawn: no running loop (the run that made "
                      "this task group has ended)");
  luaL_checktype(L, 2, LUA_TFUNCTION);
  if (g->core.closed) return luaL_error(L, "task group: closed (no more spawns)");
  if (!g->core.body.entered)  /* its anchor may have gone with its last child */
    anchor(L, S, g, 1);
  t = corio__spawn(L, S, 2, lua_gettop(L) - 2);
  if (corio_group_add(&g->core, &t->core) != 0) {  /* out of memory */
    corio_task_cancel(&S->loop, &t->core);
    return luaL_error(L, "task group: out of memory");
  }
  if (g->core.body.cancelled) corio_task_cancel(&S->loop, &t->core);
  return 1;
}

static int g_cancel(lua_State *L) {
  corio_State *S = corio__state(L);
  luagroup *g = check_group_m(L, "tg:cancel");
  corio_group_cancel(&S->loop, &g->core);
  return 0;
}

/* g:_leave(): leave the body scope (at the start of __close) */
static int g_leave(lua_State *L) {
  corio_State *S = corio__state(L);
  luagroup *g = check_group(L);
  leave(L, S, &g->core.body, NULL, "corio.task_group");
  return 0;
}

static int g_wait_k(lua_State *L, int status, lua_KContext ctx) {
  corio_State *S = corio__state(L);
  luagroup *g = (luagroup *)lua_touserdata(L, 1);
  (void)status;
  g->core.waiter = NULL;
  if (ctx) corio_scope_leave(&S->loop, &g->shield);
  corio__wake_check(L, S, S->current);
  return 0;
}

/* g:_wait(shielded) (suspends): until no child is left. Shielded, it is
   no checkpoint: used after a cancellation, to wait for the children's
   cleanup. */
static int g_wait(lua_State *L) {
  corio_State *S = corio__state(L);
  luagroup *g = check_group(L);
  int shielded = lua_toboolean(L, 2);
  luatask *t;
  if (shielded) {
    t = current(L, S, "corio.task_group");
    if (!lua_isyieldable(L))
      return luaL_error(L, "corio.task_group: cannot wait behind a C-call boundary");
  }
  else t = corio__checkpoint(L, S, "corio.task_group");
  if (g->core.waiter != NULL && g->core.waiter != &t->core)
    return luaL_error(L, "corio.task_group: closed from a task other than "
                      "the one that made it");
  lua_settop(L, 1);
  if (g->core.nchildren == 0) return 0;
  if (shielded) corio_scope_enter(&g->shield, &t->core);
  g->core.waiter = &t->core;
  corio_task_park(&S->loop, &t->core);
  t->what = W_GROUP;
  S->suspending = 1;  /* as corio__suspend, with the shield flag as context */
  return lua_yieldk(L, 0, shielded, g_wait_k);
}

static int g_pending(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)check_group(L)->core.nchildren);
  return 1;
}

/* g:_add_error(err, traceback) */
static int g_add_error(lua_State *L) {
  check_group(L);
  lua_settop(L, 3);
  append_error(L, 1, 2, 3);
  return 0;
}

/* g:_errors() -> errors, tracebacks */
static int g_errors(lua_State *L) {
  check_group(L);
  lua_getiuservalue(L, 1, 1);
  lua_getfield(L, -1, "errors");
  lua_getfield(L, -2, "tracebacks");
  return 2;
}

/* g:_close(): no more spawns; drop the anchor */
static int g_close(lua_State *L) {
  corio_State *S = corio__state(L);
  luagroup *g = check_group(L);
  g->core.closed = 1;
  if (g->core.nchildren == 0) anchor(L, S, g, 0);
  return 0;
}

static int g_gc(lua_State *L) {
  corio_group_free(&((luagroup *)lua_touserdata(L, 1))->core);
  return 0;
}

static int g_tostring(lua_State *L) {
  luagroup *g = check_group_m(L, "tg:__tostring");
  lua_pushfstring(L, "task group (%d children%s)", (int)g->core.nchildren,
                  g->core.closed ? ", closed" : "");
  return 1;
}

static const luaL_Reg scope_methods[] = {
  {"cancel", s_cancel},
  {"expired", s_expired},
  {"cancelled", s_cancelled},
  {"deadline", s_deadline},
  {"reschedule", s_reschedule},
  {NULL, NULL}
};

static const luaL_Reg group_methods[] = {
  {"spawn", g_spawn},
  {"cancel", g_cancel},
  {"_leave", g_leave},
  {"_wait", g_wait},
  {"_pending", g_pending},
  {"_add_error", g_add_error},
  {"_errors", g_errors},
  {"_close", g_close},
  {NULL, NULL}
};

const luaL_Reg corio__scope_funcs[] = {
  {"scope", l_scope},
  {"task_group", l_task_group},
  {"cancelled_now", l_cancelled_now},
  {NULL, NULL}
};

static void new_meta(lua_State *L, const char *name, const luaL_Reg *methods,
                     lua_CFunction tostring) {
  luaL_newmetatable(L, name);
  lua_newtable(L);
  lua_pushvalue(L, -3);
  luaL_setfuncs(L, methods, 1);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, tostring);
  lua_setfield(L, -2, "__tostring");
}

/* stack: state userdata at -1 */
void corio__open_scope(lua_State *L) {
  new_meta(L, SCOPE_MT, scope_methods, s_tostring);
  lua_pushvalue(L, -2);
  lua_pushcclosure(L, s_close, 1);
  lua_setfield(L, -2, "__close");
  lua_pop(L, 1);
  new_meta(L, GROUP_MT, group_methods, g_tostring);  /* __close: Lua layer */
  lua_pushcfunction(L, g_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
}
