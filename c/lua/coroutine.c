/*
** coroutine.c: coroutine.resume and coroutine.wrap that let an await
** inside a user's coroutine reach the scheduler. corio's suspending
** calls yield no values with S->suspending set; when the coroutine being
** resumed yields so, these functions yield on to their own caller (up to the task),
** and resume the inner coroutine when the task is resumed. Every other
** behaviour is the standard one.
*/
#include "binding.h"

static lua_State *getco(lua_State *L) {
  lua_State *co = lua_tothread(L, 1);
  luaL_argexpected(L, co, 1, "coroutine");
  return co;
}

static int resume_k(lua_State *L, int status, lua_KContext ctx);

/* Coroutines suspended inside a corio wait (their task's resume of them
   passed the wait on to the scheduler) are kept in a weak set: resuming
   one from anywhere else would end its wait behind the scheduler's back. */
static void mark_waiting(lua_State *L, lua_State *co, int on) {
  corio_State *S = corio__state(L);
  corio__push_side(L, S, "cowaits");
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    if (!on) return;
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_getfield(L, LUA_REGISTRYINDEX, SIDE_REGKEY);
    lua_pushvalue(L, -2);
    lua_setfield(L, -2, "cowaits");
    lua_pop(L, 1);
  }
  lua_pushthread(co);
  lua_xmove(co, L, 1);
  if (on) lua_pushboolean(L, 1);
  else lua_pushnil(L);
  lua_rawset(L, -3);
  lua_pop(L, 1);
}

static int is_waiting(lua_State *L, lua_State *co) {
  corio_State *S = corio__state(L);
  int r;
  corio__push_side(L, S, "cowaits");
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return 0;
  }
  lua_pushthread(co);
  lua_xmove(co, L, 1);
  r = lua_rawget(L, -2) != LUA_TNIL;
  lua_pop(L, 2);
  return r;
}

#define WAITING_MSG "cannot resume a coroutine that is waiting inside a " \
  "corio call (its own task resumes it when the wait ends)"

/* Resume co with narg values from L's top. Returns like lua_resume, with
   the results (or the error) moved to L; a marked yield is forwarded. */
static int forward(lua_State *L, lua_State *co, int narg, int wrap) {
  corio_State *S = corio__state(L);
  int status, nres;
  if (lua_status(co) == LUA_OK && lua_gettop(co) == 0) {
    lua_pushliteral(L, "cannot resume dead coroutine");
    return -1;
  }
  status = lua_resume(co, L, narg, &nres);
  if (status == LUA_YIELD && nres == 0 && S->suspending) {
    if (!lua_isyieldable(L) || S->current == NULL) {
      S->suspending = 0;
      /* the await cannot go further up: undo it and fail its caller */
      if (S->current != NULL) {
        corio_task_detach(&S->loop, &S->current->core);
        S->current->core.wake = CORIO_WAKE_ABORT;
      }
      lua_pushliteral(L, "cannot suspend here: the coroutine was resumed "
                      "behind a C-call boundary or outside a task");
      return -1;
    }
    mark_waiting(L, co, 1);
    return lua_yieldk(L, 0, wrap, resume_k);  /* S->suspending stays set */
  }
  if (status == LUA_OK || status == LUA_YIELD) {
    if (!lua_checkstack(L, nres + 1)) {
      lua_pop(co, nres);
      lua_pushliteral(L, "too many results to resume");
      return -1;
    }
    lua_xmove(co, L, nres);
    return nres;
  }
  lua_xmove(co, L, 1);  /* the error */
  return -1;
}

static int finish_resume(lua_State *L, int r) {
  if (r < 0) {
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    return 2;
  }
  lua_pushboolean(L, 1);
  lua_insert(L, -(r + 1));
  return r + 1;
}

static int finish_wrap(lua_State *L, lua_State *co, int r) {
  if (r >= 0) return r;
  if (lua_status(co) != LUA_OK && lua_status(co) != LUA_YIELD) {
#if LUA_VERSION_RELEASE_NUM >= 50406
    lua_closethread(co, L);
#else
    lua_resetthread(co);
#endif
    lua_settop(co, 0);  /* dead: nothing left to call next time */
    if (lua_type(L, -1) == LUA_TSTRING) {  /* add where the wrap was called */
      luaL_where(L, 1);
      lua_insert(L, -2);
      lua_concat(L, 2);
    }
  }
  return lua_error(L);
}

/* the task was resumed: resume the inner coroutine where it waited */
static int resume_k(lua_State *L, int status, lua_KContext wrap) {
  lua_State *co;
  int r;
  (void)status;
  if (wrap) co = lua_tothread(L, lua_upvalueindex(2));
  else co = lua_tothread(L, 1);
  lua_settop(L, wrap ? 0 : 1);
  mark_waiting(L, co, 0);
  r = forward(L, co, 0, (int)wrap);
  return wrap ? finish_wrap(L, co, r) : finish_resume(L, r);
}

static int co_resume(lua_State *L) {
  lua_State *co = getco(L);
  int narg = lua_gettop(L) - 1;
  if (co == L) {
    lua_pushboolean(L, 0);
    lua_pushliteral(L, "cannot resume non-suspended coroutine");
    return 2;
  }
  if (!lua_checkstack(co, narg)) {
    lua_pushboolean(L, 0);
    lua_pushliteral(L, "too many arguments to resume");
    return 2;
  }
  if (lua_status(co) == LUA_OK && lua_gettop(co) == 0) {
    lua_pushboolean(L, 0);
    lua_pushliteral(L, "cannot resume dead coroutine");
    return 2;
  }
  if (lua_status(co) == LUA_YIELD && is_waiting(L, co)) {
    lua_pushboolean(L, 0);
    lua_pushliteral(L, WAITING_MSG);
    return 2;
  }
  lua_xmove(L, co, narg);
  return finish_resume(L, forward(L, co, narg, 0));
}

static int auxwrap(lua_State *L) {
  lua_State *co = lua_tothread(L, lua_upvalueindex(2));
  int narg = lua_gettop(L);
  if (!lua_checkstack(co, narg))
    return luaL_error(L, "too many arguments to resume");
  if (lua_status(co) == LUA_OK && lua_gettop(co) == 0)
    return luaL_error(L, "cannot resume dead coroutine");
  if (lua_status(co) == LUA_YIELD && is_waiting(L, co))
    return luaL_error(L, WAITING_MSG);
  lua_xmove(L, co, narg);
  return finish_wrap(L, co, forward(L, co, narg, 1));
}

static int co_wrap(lua_State *L) {
  lua_State *co;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  co = lua_newthread(L);
  lua_pushvalue(L, 1);
  lua_xmove(L, co, 1);
  lua_pushvalue(L, lua_upvalueindex(1));  /* the state, for forward() */
  lua_insert(L, -2);
  lua_pushcclosure(L, auxwrap, 2);       /* upvalues: state, thread */
  return 1;
}

const luaL_Reg corio__coroutine_funcs[] = {
  {"resume", co_resume},
  {"wrap", co_wrap},
  {NULL, NULL}
};
