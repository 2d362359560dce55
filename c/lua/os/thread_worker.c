/*
** thread_worker.c: a worker thread of the pool (thread_pool.c) and the
** Lua state it runs jobs in.
**
** The thread makes its state when its first job comes: the standard
** libraries, the caller's package.path and package.cpath (set again when
** a job brings other ones), and a cache of the functions it has loaded,
** by record id. A job runs in two protected calls: the outer one loads
** the function and copies the arguments in and the results out, the
** inner one calls the function with a message handler that keeps the
** traceback.
**
** Stopping a running job: the loop thread sets a count hook on the
** state (corio__worker_interrupt), which raises at the next instruction,
** and again at every one until the job ends. A hook belongs to one Lua
** thread, so the worker's coroutine.resume and coroutine.wrap tell the
** pool which coroutine runs (w->active), and pass the hook on to it. A
** job that was stopped leaves its state to be closed and made afresh.
*/
#include <stdlib.h>
#include <string.h>
#include <lualib.h>
#include "thread.h"

#define MAX_CACHED 256           /* functions a worker keeps loaded */

/* The count hook set on a worker's state by corio__pool_cancel (from the
   loop thread, as Lua allows): raises while the job is to stop, and
   removes itself if it fired late, for a job that was not. */
static void interrupt_hook(lua_State *L, lua_Debug *ar) {
  worker *w = *(worker **)lua_getextraspace(L);
  int stop;
  (void)ar;
  uv_mutex_lock(&w->P->lock);
  stop = w->interrupt;
  if (!stop) lua_sethook(L, NULL, 0, 0);
  uv_mutex_unlock(&w->P->lock);
  if (stop) luaL_error(L, "corio.to_thread: interrupted (the waiting task left)");
}

/* Under the lock: stop w's job at its next instruction, in the thread
   running it and in the job's main thread (where an error caught in a
   coroutine goes on). */
void corio__worker_interrupt(worker *w) {
  w->interrupt = 1;
  if (w->L == NULL) return;
  lua_sethook(w->L, interrupt_hook, LUA_MASKCOUNT, 1);
  if (w->active != NULL && w->active != w->L)
    lua_sethook(w->active, interrupt_hook, LUA_MASKCOUNT, 1);
}

/* the coroutine now running on w is co; returns the one before */
static lua_State *set_active(worker *w, lua_State *co) {
  lua_State *prev;
  uv_mutex_lock(&w->P->lock);
  prev = w->active;
  w->active = co;
  if (w->interrupt)  /* NULL: back in the job's main thread */
    lua_sethook(co != NULL ? co : w->L, interrupt_hook, LUA_MASKCOUNT, 1);
  uv_mutex_unlock(&w->P->lock);
  return prev;
}

static worker *worker_of(lua_State *L) {
  return *(worker **)lua_getextraspace(L);
}

/* the worker's coroutine.resume: the standard one (upvalue 1), with the
   pool told which coroutine runs */
static int co_resume(lua_State *L) {
  worker *w = worker_of(L);
  lua_State *co = lua_tothread(L, 1), *prev;
  int st;
  luaL_argexpected(L, co != NULL, 1, "coroutine");
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  prev = set_active(w, co);
  st = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
  set_active(w, prev);
  if (st != LUA_OK) return lua_error(L);
  return lua_gettop(L);
}

static void close_thread(lua_State *co, lua_State *L) {
#if LUA_VERSION_RELEASE_NUM >= 50406
  lua_closethread(co, L);
#else
  (void)L;
  lua_resetthread(co);
#endif
}

/* the function coroutine.wrap returns (the coroutine: upvalue 1) */
static int co_wrapped(lua_State *L) {
  worker *w = worker_of(L);
  lua_State *co = lua_tothread(L, lua_upvalueindex(1)), *prev;
  int n = lua_gettop(L), nres, st;
  if (!lua_checkstack(co, n)) return luaL_error(L, "too many arguments to resume");
  lua_xmove(L, co, n);
  prev = set_active(w, co);
  st = lua_resume(co, L, n, &nres);
  set_active(w, prev);
  if (st == LUA_OK || st == LUA_YIELD) {
    if (!lua_checkstack(L, nres + 1)) {
      lua_pop(co, nres);
      return luaL_error(L, "too many results to resume");
    }
    lua_xmove(co, L, nres);
    return nres;
  }
  lua_xmove(co, L, 1);  /* the error */
  if (st != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING) {
    luaL_where(L, 1);   /* where the wrapped function was called */
    lua_insert(L, -2);
    lua_concat(L, 2);
  }
  if (lua_status(co) != LUA_OK) close_thread(co, L);
  return lua_error(L);
}

static int co_wrap(lua_State *L) {
  lua_State *co;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  co = lua_newthread(L);
  lua_pushvalue(L, 1);
  lua_xmove(L, co, 1);
  lua_pushcclosure(L, co_wrapped, 1);
  return 1;
}

/* message handler of a job: the traceback goes to the registry, the
   error value stays as it is */
static char tb_key;

static int job_msgh(lua_State *L) {
  static const char bottom[] = "\n\t[C]: in ?";  /* job_body: not the user's */
  size_t len, blen = sizeof bottom - 1;
  const char *tb;
  luaL_traceback(L, L, NULL, 1);
  tb = lua_tolstring(L, -1, &len);
  if (len > blen && memcmp(tb + len - blen, bottom, blen) == 0) len -= blen;
  if (len > 16 && memcmp(tb, "stack traceback:", 16) == 0) {
    lua_pushliteral(L, "stack traceback (worker thread):");
    lua_pushlstring(L, tb + 16, len - 16);
    lua_concat(L, 2);
  }
  lua_rawsetp(L, LUA_REGISTRYINDEX, &tb_key);
  lua_settop(L, 1);
  return 1;
}

static char cache_key;  /* registry: the function cache, id -> function */

static int open_libs(lua_State *L) {
  luaL_openlibs(L);
  lua_newtable(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &cache_key);
  lua_getglobal(L, LUA_COLIBNAME);
  lua_getfield(L, -1, "resume");
  lua_pushcclosure(L, co_resume, 1);
  lua_setfield(L, -2, "resume");
  lua_pushcfunction(L, co_wrap);
  lua_setfield(L, -2, "wrap");
  return 0;
}

static lua_State *new_state(worker *w) {
  lua_State *L = luaL_newstate();
  if (L == NULL) return NULL;
  *(worker **)lua_getextraspace(L) = w;
  lua_pushcfunction(L, open_libs);
  if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
    lua_close(L);
    return NULL;
  }
  w->paths_id = 0;
  w->ncached = 0;
  return L;
}

static void set_paths(lua_State *L, const pathrec *pr) {
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  if (lua_getfield(L, -1, LUA_LOADLIBNAME) == LUA_TTABLE) {
    if (pr->path != NULL) {
      lua_pushlstring(L, pr->path, pr->plen);
      lua_setfield(L, -2, "path");
    }
    if (pr->cpath != NULL) {
      lua_pushlstring(L, pr->cpath, pr->clen);
      lua_setfield(L, -2, "cpath");
    }
  }
  lua_pop(L, 2);
}

/* copy the error value at idx into out (a table that cannot be copied
   goes as its tostring) */
static int copy_error(lua_State *L) {
  tbuf *out = (tbuf *)lua_touserdata(L, 2);
  corio__copy_out(L, out, 1, 1, "corio.to_thread", "error value", 1);
  return 0;
}

/* job_body(worker, job): protected. Leaves the job's outcome in j->out. */
static int job_body(lua_State *L) {
  worker *w = (worker *)lua_touserdata(L, 1);
  job *j = (job *)lua_touserdata(L, 2);
  size_t pos = 0;
  int base, st;
  lua_settop(L, 0);
  if (j->paths != NULL && j->paths->id != w->paths_id) {
    set_paths(L, j->paths);
    w->paths_id = j->paths->id;
  }
  lua_pushcfunction(L, job_msgh);                  /* 1 */
  lua_rawgetp(L, LUA_REGISTRYINDEX, &cache_key);   /* 2 */
  if (lua_rawgeti(L, 2, j->fn->id) != LUA_TFUNCTION) {  /* 3 */
    lua_pop(L, 1);
    if (luaL_loadbufferx(L, j->fn->code, j->fn->size, "=corio.to_thread",
                         "b") != LUA_OK)
      return lua_error(L);
    if (w->ncached >= MAX_CACHED) {  /* start over: a clean cache */
      lua_newtable(L);
      lua_pushvalue(L, -1);
      lua_rawsetp(L, LUA_REGISTRYINDEX, &cache_key);
      lua_replace(L, 2);
      w->ncached = 0;
    }
    lua_pushvalue(L, -1);
    lua_rawseti(L, 2, j->fn->id);
    w->ncached++;
  }
  corio__copy_in(L, &j->in, &pos, j->nargs);
  base = 3;
  st = lua_pcall(L, j->nargs, LUA_MULTRET, 1);
  j->out.n = 0;
  if (st == LUA_OK) {
    j->nres = lua_gettop(L) - base + 1;
    corio__copy_out(L, &j->out, base, j->nres, "corio.to_thread", "result", 1);
    j->status = JOB_OK;
    return 0;
  }
  /* the error value (at base) and the traceback */
  lua_pushcfunction(L, copy_error);
  lua_pushvalue(L, base);
  lua_pushlightuserdata(L, &j->out);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
    j->out.n = 0;
    luaL_tolstring(L, base, NULL);
    corio__copy_out(L, &j->out, lua_gettop(L), 1, "corio.to_thread",
                    "error value", 1);
  }
  lua_rawgetp(L, LUA_REGISTRYINDEX, &tb_key);
  corio__copy_out(L, &j->out, lua_gettop(L), 1, "corio.to_thread",
                  "traceback", 1);
  j->nres = 2;
  j->status = JOB_ERROR;
  return 0;
}

static void run_job(worker *w, job *j) {
  lua_State *L = w->L;  /* only this thread sets it */
  if (L == NULL && (L = new_state(w)) != NULL) {
    uv_mutex_lock(&w->P->lock);  /* published for corio__worker_interrupt */
    w->L = L;
    if (w->interrupt) lua_sethook(L, interrupt_hook, LUA_MASKCOUNT, 1);
    uv_mutex_unlock(&w->P->lock);
  }
  j->out.n = 0;
  if (L == NULL) {
    j->status = JOB_FAIL;
    return;
  }
  lua_settop(L, 0);
  lua_pushcfunction(L, job_body);
  lua_pushlightuserdata(L, w);
  lua_pushlightuserdata(L, j);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) {           /* not from fn itself */
    j->out.n = 0;
    if (lua_type(L, -1) != LUA_TSTRING ||
        corio__tbuf_reserve(&j->out, 64 + lua_rawlen(L, -1)) != 0) {
      j->status = JOB_FAIL;
    }
    else {  /* the message and no traceback, written by hand (no raise) */
      size_t len;
      const char *s = lua_tolstring(L, -1, &len);
      char *p = j->out.p;
      p[0] = 5;                                    /* T_STR */
      memcpy(p + 1, &len, sizeof len);
      memcpy(p + 1 + sizeof len, s, len);
      p[1 + sizeof len + len] = 0;                 /* T_NIL */
      j->out.n = 2 + sizeof len + len;
      j->nres = 2;
      j->status = JOB_ERROR;
    }
  }
  lua_settop(L, 0);
  if (j->status != JOB_OK) {
    lua_pushnil(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &tb_key);
  }
}

void corio__worker_main(void *arg) {
  worker *w = (worker *)arg;
  pool *P = w->P;
  uv_mutex_lock(&P->lock);
  P->nstarting--;  /* it takes jobs from now on */
  for (;;) {
    job *j;
    int reset;
    while (corio__list_empty(&P->queue) && !P->stop) {
      P->nidle++;
      uv_cond_wait(&P->more, &P->lock);
      P->nidle--;
    }
    if (P->stop) break;
    j = corio__container_of(P->queue.next, job, node);
    corio__list_remove(&j->node);
    P->nqueued--;
    j->state = JOB_RUNNING;
    j->w = w;
    w->cur = j;
    w->interrupt = 0;
    w->active = NULL;
    if (w->L != NULL) lua_sethook(w->L, NULL, 0, 0);  /* a late one */
    uv_mutex_unlock(&P->lock);
    run_job(w, j);
    uv_mutex_lock(&P->lock);
    w->cur = NULL;
    j->w = NULL;
    j->state = JOB_DONE;
    reset = w->interrupt;
    if (corio__list_empty(&P->done) && P->async != NULL) {
      /* the first on the list wakes the loop: outside the lock (a
         syscall), the handle kept open meanwhile by `senders` */
      uv_async_t *a = P->async;
      corio__list_push(&P->done, &j->node);
      P->senders++;
      uv_mutex_unlock(&P->lock);
      uv_async_send(a);
      uv_mutex_lock(&P->lock);
      P->senders--;
    }
    else corio__list_push(&P->done, &j->node);
    if (reset && w->L != NULL) {
      /* stopped anywhere: start afresh. The hook stays on, so Lua code
         run by the collector while closing stops at once too. */
      lua_State *L = w->L;
      w->L = NULL;
      uv_mutex_unlock(&P->lock);
      lua_close(L);
      uv_mutex_lock(&P->lock);
    }
  }
  uv_mutex_unlock(&P->lock);
  if (w->L != NULL) {
    lua_close(w->L);
    w->L = NULL;
  }
}
