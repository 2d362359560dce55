/*
** thread.c: corio.to_thread and corio.workers, the Lua face of the
** worker pool (thread_pool.c).
**
** corio.to_thread(fn, ...) sends fn as its dump (string.dump): fn may
** have no upvalue but _ENV, which the worker binds to its own globals.
** The dump is made once per function value and shared by the jobs that
** run it (a funcrec, behind a small userdata in a weak-keyed cache);
** workers keep the loaded function under the record's id, so a tiny job
** does not load its chunk again. The caller's package.path and
** package.cpath travel the same way (a pathrec, made when they change).
**
** The waiting task parks; the job's pointer waits on its stack as a light
** userdata for the continuation, which copies the results in (or raises
** the error) and gives the job back. A task that leaves early cancels the
** job (thread_pool.c: dropped if queued, interrupted if running).
*/
#include <stdlib.h>
#include <string.h>
#include <lualib.h>
#include "thread.h"

#define FUNC_MT "corio.WorkerFunction"
#define NAME "corio.to_thread"

/* uservalues of the pool userdata */
#define PUV_FUNCS 1   /* function -> its record's box (weak keys) */
#define PUV_LAST  2   /* the last function sent (anchors P->last_fn) */
#define PUV_PATH  3   /* package.path and cpath of P->paths (anchored) */
#define PUV_CPATH 4

static pool *pool_of(lua_State *L) {
  return (pool *)lua_touserdata(L, lua_upvalueindex(2));
}

/* ------------------------------------------------------------ functions */

static int func_gc(lua_State *L) {
  funcrec **box = (funcrec **)lua_touserdata(L, 1);
  if (*box != NULL && --(*box)->refs == 0) free(*box);
  *box = NULL;
  return 0;
}

typedef struct dumpstate {
  luaL_Buffer B;
  int init;
} dumpstate;

/* the buffer starts at the first write: its placeholder goes above the
   function being dumped (as string.dump does) */
static int dump_writer(lua_State *L, const void *p, size_t n, void *ud) {
  dumpstate *d = (dumpstate *)ud;
  if (!d->init) {
    d->init = 1;
    luaL_buffinit(L, &d->B);
  }
  luaL_addlstring(&d->B, (const char *)p, n);
  return 0;
}

/* Only _ENV may be an upvalue (a stripped function's nameless first
   upvalue too, when it holds the globals). */
static void check_upvalues(lua_State *L, int fidx) {
  int i;
  const char *name;
  for (i = 1; (name = lua_getupvalue(L, fidx, i)) != NULL; i++) {
    int ok = strcmp(name, "_ENV") == 0;
    if (!ok && i == 1 && strcmp(name, "(no name)") == 0) {
      lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
      ok = lua_rawequal(L, -1, -2);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
    if (!ok)
      luaL_error(L, NAME ": function has upvalue '%s'; pass it as an "
                 "argument", name);
  }
}

/* a new record for the function at 1, its box pushed */
static funcrec *new_funcrec(lua_State *L, pool *P) {
  funcrec **box, *fr;
  dumpstate d;
  size_t size;
  const char *code;
  if (lua_iscfunction(L, 1))
    luaL_argerror(L, 1, "a Lua function expected (a C function cannot "
                  "be sent to a thread)");
  check_upvalues(L, 1);
  box = (funcrec **)lua_newuserdatauv(L, sizeof *box, 0);
  *box = NULL;
  luaL_setmetatable(L, FUNC_MT);
  lua_pushvalue(L, 1);
  d.init = 0;
  if (lua_dump(L, dump_writer, &d, 0) != 0 || !d.init)
    luaL_error(L, NAME ": cannot dump the function");
  luaL_pushresult(&d.B);
  code = lua_tolstring(L, -1, &size);
  fr = (funcrec *)malloc(offsetof(funcrec, code) + size);
  if (fr == NULL) luaL_error(L, NAME ": out of memory");
  fr->refs = 1;  /* the box's */
  fr->id = ++P->next_id;
  fr->size = size;
  memcpy(fr->code, code, size);
  *box = fr;
  lua_pop(L, 2);  /* the dump, the function */
  return fr;
}

/* the record of the function at 1 */
static funcrec *get_funcrec(lua_State *L, pool *P, int pidx) {
  funcrec *fr;
  const void *f = lua_topointer(L, 1);
  if (f == P->last_fn) return P->last_rec;
  lua_getiuservalue(L, pidx, PUV_FUNCS);
  lua_pushvalue(L, 1);
  if (lua_rawget(L, -2) == LUA_TUSERDATA)
    fr = *(funcrec **)lua_touserdata(L, -1);
  else {
    lua_pop(L, 1);
    fr = new_funcrec(L, P);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, -2);
    lua_rawset(L, -4);
  }
  lua_pop(L, 2);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, pidx, PUV_LAST);
  P->last_fn = f;
  P->last_rec = fr;
  return fr;
}

/* ------------------------------------------------------------ paths */

static char *copy_string(lua_State *L, int idx, size_t *len) {
  const char *s;
  char *c;
  if (lua_type(L, idx) != LUA_TSTRING) return NULL;
  s = lua_tolstring(L, idx, len);
  c = (char *)malloc(*len + 1);
  if (c == NULL) luaL_error(L, NAME ": out of memory");
  memcpy(c, s, *len + 1);
  return c;
}

/* P->paths: the caller's package.path and package.cpath now */
static void update_paths(lua_State *L, pool *P, int pidx) {
  const void *pp, *cp;
  pathrec *pr;
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  if (lua_getfield(L, -1, LUA_LOADLIBNAME) != LUA_TTABLE) {
    lua_pop(L, 2);
    return;  /* no package library: the worker keeps its own */
  }
  lua_getfield(L, -1, "path");
  lua_getfield(L, -2, "cpath");
  pp = lua_type(L, -2) == LUA_TSTRING ? lua_topointer(L, -2) : NULL;
  cp = lua_type(L, -1) == LUA_TSTRING ? lua_topointer(L, -1) : NULL;
  if (P->paths != NULL && pp == P->path_p && cp == P->cpath_p) {
    lua_pop(L, 4);
    return;
  }
  pr = (pathrec *)calloc(1, sizeof *pr);
  if (pr == NULL) luaL_error(L, NAME ": out of memory");
  pr->refs = 1;
  pr->id = ++P->next_id;
  if (P->paths != NULL && --P->paths->refs == 0) {  /* no job holds it */
    free(P->paths->path);
    free(P->paths->cpath);
    free(P->paths);
  }
  P->paths = pr;
  P->path_p = pp;
  P->cpath_p = cp;
  lua_setiuservalue(L, pidx, PUV_CPATH);           /* anchors them */
  lua_setiuservalue(L, pidx, PUV_PATH);
  lua_pop(L, 2);
  lua_getiuservalue(L, pidx, PUV_PATH);
  lua_getiuservalue(L, pidx, PUV_CPATH);
  pr->path = copy_string(L, -2, &pr->plen);
  pr->cpath = copy_string(L, -1, &pr->clen);
  lua_pop(L, 2);
}

/* ------------------------------------------------------------ to_thread */

static int to_thread_k(lua_State *L, int status, lua_KContext ctx) {
  corio_State *S = (corio_State *)ctx;
  pool *P = pool_of(L);
  luatask *t = S->current;
  job *j = (job *)lua_touserdata(L, -1);
  size_t pos = 0;
  int n;
  (void)status;
  if (t->core.wake != CORIO_WAKE_NORMAL) {
    corio__pool_cancel(P, j);
    corio__wake_check(L, S, t);  /* raises */
  }
  if (!j->delivered) {  /* not woken by the job: wait on */
    corio_task_park(&S->loop, &t->core);
    t->what = W_WORKER;
    return corio__suspend(L, S, to_thread_k);
  }
  corio__wake_check(L, S, t);
  lua_pop(L, 1);
  j->task = NULL;
  corio__pool_unhold(P);
  /* the job goes back to the free list first: its buffer is read before
     anything can take it again, and an error while reading leaks nothing */
  corio__pool_release(P, j);
  if (j->status == JOB_FAIL)
    return luaL_error(L, NAME ": the worker could not run the job (out of "
                      "memory)");
  n = j->nres;
  corio__copy_in(L, &j->out, &pos, n);
  if (j->status == JOB_OK) return n;
  /* the error value, and the worker's traceback joined to a message */
  if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING) {
    lua_pushliteral(L, "\n");
    lua_insert(L, -2);
    lua_concat(L, 3);
  }
  else lua_pop(L, 1);
  return lua_error(L);
}

/* corio.to_thread(fn, ...) (suspends) -> fn(...)'s results, run on a
   worker thread in a Lua state of its own */
static int l_to_thread(lua_State *L) {
  corio_State *S = corio__state(L);
  pool *P = pool_of(L);
  int pidx = lua_upvalueindex(2), nargs = lua_gettop(L) - 1, err;
  funcrec *fr;
  luatask *t;
  job *j;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  t = corio__checkpoint(L, S, NAME);
  fr = get_funcrec(L, P, pidx);
  update_paths(L, P, pidx);
  j = corio__pool_take(P);
  if (j == NULL) return luaL_error(L, NAME ": out of memory");
  corio__copy_out(L, &j->in, 2, nargs, NAME, "argument", 2);
  j->nargs = nargs;
  if (P->run == NULL) {
    corio__pool_open_run(P, S->loop.uv);
    if (P->run == NULL) return luaL_error(L, NAME ": out of memory");
  }
  j->fn = fr;
  fr->refs++;
  j->paths = P->paths;
  if (j->paths != NULL) j->paths->refs++;
  j->task = t;
  err = corio__pool_submit(P, j);
  if (err) {
    j->task = NULL;
    corio__list_push(&P->jobs, &j->live);
    corio__pool_release(P, j);
    if (P->spare == j) P->spare = NULL;
    return luaL_error(L, NAME ": cannot start a worker thread (%s)",
                      uv_strerror(err));
  }
  corio__pool_hold(P);
  lua_settop(L, 0);
  lua_pushlightuserdata(L, j);
  corio_task_park(&S->loop, &t->core);
  t->what = W_WORKER;
  return corio__suspend(L, S, to_thread_k);
}

/* corio.workers([n]) -> the pool's size; n sets it, before the first
   corio.to_thread */
static int l_workers(lua_State *L) {
  pool *P = pool_of(L);
  if (!lua_isnoneornil(L, 1)) {
    int isnum;
    lua_Integer n = lua_tointegerx(L, 1, &isnum);
    if (!isnum || n < 1 || n > POOL_MAX_SIZE)
      return luaL_error(L, "corio.workers: the size must be a whole number "
                        "from 1 to %d (got %s)", POOL_MAX_SIZE,
                        luaL_tolstring(L, 1, NULL));
    if (P->started && n != P->size)
      return luaL_error(L, "corio.workers: the pool is in use with %d "
                        "threads; set its size before the first "
                        "corio.to_thread", P->size);
    P->size = (int)n;
  }
  lua_pushinteger(L, P->size);
  return 1;
}

static const luaL_Reg thread_funcs[] = {
  {"to_thread", l_to_thread},
  {"workers", l_workers},
  {NULL, NULL}
};

/* ------------------------------------------------------------ the runtime's hooks */

static pool *registered_pool(lua_State *L) {
  pool *P;
  lua_getfield(L, LUA_REGISTRYINDEX, POOL_REGKEY);
  P = (pool *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  return P;
}

static void thread_abandon(corio_State *S, luatask *t) {
  pool *P;
  if (t->what != W_WORKER) return;
  P = registered_pool(S->L);
  if (P != NULL) corio__pool_abandon(P, t);
}

static void thread_shutdown(lua_State *L, corio_State *S, int phase) {
  pool *P;
  (void)S;
  if (phase != 1) return;
  P = registered_pool(L);
  if (P != NULL && P->run != NULL) corio__pool_end_run(P);
}

/* the worker threads' part in a task's and a run's end (binding.h) */
const corio_iomod corio__thread_iomod = { "thread", thread_abandon,
                                          thread_shutdown };

static int pool_gc(lua_State *L) {
  pool *P = (pool *)lua_touserdata(L, 1);
  if (P->S != NULL) corio__pool_destroy(P);
  P->S = NULL;
  return 0;
}

/* the module table at the top; st: the state userdata */
void corio__open_thread(lua_State *L, int st) {
  corio_State *S = corio__state_of(lua_touserdata(L, st));
  pool *P;
  luaL_newmetatable(L, FUNC_MT);
  lua_pushcfunction(L, func_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  P = (pool *)lua_newuserdatauv(L, sizeof *P, 4);
  memset(P, 0, sizeof *P);  /* closed until initialised: __gc does nothing */
  lua_createtable(L, 0, 2);
  lua_pushliteral(L, POOL_MT);
  lua_setfield(L, -2, "__name");
  lua_pushcfunction(L, pool_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_newtable(L);                                 /* weak-keyed cache */
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_setiuservalue(L, -2, PUV_FUNCS);
  corio__pool_init(P, S);
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, POOL_REGKEY); /* anchored, found by hooks */
  lua_pushvalue(L, st);
  lua_insert(L, -2);                               /* upvalues: state, pool */
  luaL_setfuncs(L, thread_funcs, 2);
  corio__iomod_add(S, &corio__thread_iomod);
}
