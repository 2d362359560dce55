/*
** scope.c: cancel scopes seen from Lua (timeouts, shields) and task
** groups. Both are userdata entered on the current task when made and
** left by their __close; while entered they are anchored in a side
** table, so the core's pointers to them stay valid even if a script
** forgets the <close>.
*/
#include "binding.h"

typedef struct luascope {
  corio_scope_t core;
} luascope;

typedef struct luagroup {
  corio_group_t core;
  corio_scope_t shield;   /* held around the wait after a cancellation */
} luagroup;

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

/* ------------------------------------------------------------ scopes */

/* core.scope(deadline or nil, shield) -> Scope, entered on the current task */
static int l_scope(lua_State *L) {
  corio_State *S = corio__state(L);
  int shield = lua_toboolean(L, 2), has_deadline = !lua_isnoneornil(L, 1);
  luatask *t = current(L, S, shield ? "corio.shield" : "corio.timeout");
  luascope *s;
  lua_Number when = luaL_optnumber(L, 1, -1);
  lua_settop(L, 2);
  s = (luascope *)lua_newuserdatauv(L, sizeof *s, 0);
  corio_scope_init(&s->core);
  s->core.shield = (uint8_t)shield;
  luaL_setmetatable(L, SCOPE_MT);
  corio_scope_enter(&s->core, &t->core);
  anchor(L, S, s, -1);
  if (has_deadline) {
    uint64_t ns = when <= 0 ? 0 : (when > 1e9 ? (uint64_t)1e18 : (uint64_t)(when * 1e9));
    if (corio_scope_set_deadline(&S->loop, &s->core, ns) != 0)
      return luaL_error(L, "corio.timeout: out of memory");
  }
  return 1;
}

static int leave(lua_State *L, corio_State *S, corio_scope_t *cs, void *p,
                 const char *what) {
  if (!cs->entered) return 0;
  if (cs->task->scope != cs)
    return luaL_error(L, "%s: scopes closed out of order (a scope must be "
                      "closed inside the block that opened it)", what);
  corio_scope_leave(&S->loop, cs);
  if (p != NULL) anchor(L, S, p, 0);
  return 1;
}

/* scope:__close(err): raise TimeoutError when the scope's own deadline
   cancelled the code inside and nothing outside is cancelling too */
static int s_close(lua_State *L) {
  corio_State *S = corio__state(L);
  luascope *s = (luascope *)luaL_checkudata(L, 1, SCOPE_MT);
  corio_task_t *t = s->core.task;
  if (!leave(L, S, &s->core, s, "corio.timeout")) return 0;
  if (s->core.expired && !lua_isnoneornil(L, 2) && corio__is_cancel(L, 2) &&
      corio_task_cancelled_by(t) == NULL) {
    corio__push_side(L, S, SIDE_HOOKS);
    lua_getfield(L, -1, "timeout_error");
    lua_call(L, 0, 1);
    return lua_error(L);
  }
  return 0;
}

static int s_cancel(lua_State *L) {
  corio_State *S = corio__state(L);
  luascope *s = (luascope *)luaL_checkudata(L, 1, SCOPE_MT);
  corio_scope_cancel(&S->loop, &s->core);
  return 0;
}

static int s_expired(lua_State *L) {
  luascope *s = (luascope *)luaL_checkudata(L, 1, SCOPE_MT);
  lua_pushboolean(L, s->core.expired);
  return 1;
}

static int s_cancelled(lua_State *L) {
  luascope *s = (luascope *)luaL_checkudata(L, 1, SCOPE_MT);
  lua_pushboolean(L, s->core.cancelled);
  return 1;
}

static int s_deadline(lua_State *L) {
  luascope *s = (luascope *)luaL_checkudata(L, 1, SCOPE_MT);
  if (corio_timer_active(&s->core.deadline))
    lua_pushnumber(L, (lua_Number)s->core.deadline.when / 1e9);
  else lua_pushnil(L);
  return 1;
}

static int s_tostring(lua_State *L) {
  luascope *s = (luascope *)luaL_checkudata(L, 1, SCOPE_MT);
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

static luagroup *check_group(lua_State *L) {
  return (luagroup *)luaL_checkudata(L, 1, GROUP_MT);
}

/* core.task_group() -> TaskGroup, its body scope entered on the current task */
static int l_task_group(lua_State *L) {
  corio_State *S = corio__state(L);
  luatask *t = current(L, S, "corio.task_group");
  luagroup *g = (luagroup *)lua_newuserdatauv(L, sizeof *g, 1);
  corio_group_init(&g->core);
  corio_scope_init(&g->shield);
  g->shield.shield = 1;
  lua_createtable(L, 0, 2);       /* errors and their tracebacks */
  lua_newtable(L);
  lua_setfield(L, -2, "errors");
  lua_newtable(L);
  lua_setfield(L, -2, "tracebacks");
  lua_setiuservalue(L, -2, 1);
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
  luagroup *g = check_group(L);
  luatask *t;
  luaL_checktype(L, 2, LUA_TFUNCTION);
  if (g->core.closed) return luaL_error(L, "task group: closed (no more spawns)");
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
  luagroup *g = check_group(L);
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
  luagroup *g = check_group(L);
  lua_pushfstring(L, "task group (%d children%s)", (int)g->core.nchildren,
                  g->core.closed ? ", closed" : "");
  return 1;
}

static const luaL_Reg scope_methods[] = {
  {"cancel", s_cancel},
  {"expired", s_expired},
  {"cancelled", s_cancelled},
  {"deadline", s_deadline},
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
