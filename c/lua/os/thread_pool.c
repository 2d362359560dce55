/*
** thread_pool.c: corio's own pool of worker threads (not libuv's, which
** files and DNS use), each with a Lua state of its own.
**
** The loop thread queues jobs under the pool's lock and wakes an idle
** worker only when one is needed; a worker runs jobs one after the
** other, and a finished job goes on the done list. The first job on an
** empty done list wakes the loop (a uv_async_t, made for each run), whose
** callback takes the whole list at once: wake-ups are batched both ways.
**
** Threads start lazily, up to the pool's size, and stay until the corio
** state is closed (the pool's __gc), which stops and joins them. Jobs are
** recycled through a free list, with their buffers.
**
** Who frees a job: the task waiting on it, after reading its results;
** or, when that task has left (cancelled, abandoned, the run ended), the
** loop thread as soon as the job is neither queued nor running.
*/
#include <stdlib.h>
#include <string.h>
#include <lualib.h>
#include "thread.h"

#define BIG_BUFFER (256 * 1024)  /* a free job keeps no larger buffer */
#define MAX_CACHED 256           /* functions a worker keeps loaded */

/* ------------------------------------------------------------ the worker side */

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
  lua_State *L;
  if (w->L == NULL) w->L = new_state(w);
  L = w->L;
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

static void worker_main(void *arg) {
  worker *w = (worker *)arg;
  pool *P = w->P;
  uv_mutex_lock(&P->lock);
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
    if (w->L != NULL) lua_sethook(w->L, NULL, 0, 0);  /* a late one */
    uv_mutex_unlock(&P->lock);
    run_job(w, j);
    uv_mutex_lock(&P->lock);
    w->cur = NULL;
    j->w = NULL;
    j->state = JOB_DONE;
    reset = w->interrupt;
    if (corio__list_empty(&P->done) && P->async != NULL)
      uv_async_send(P->async);
    corio__list_push(&P->done, &j->node);
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

/* ------------------------------------------------------------ the loop side */

static void drop_fn(funcrec *fr) {
  if (fr != NULL && --fr->refs == 0) free(fr);
}

static void drop_paths(pathrec *pr) {
  if (pr != NULL && --pr->refs == 0) {
    free(pr->path);
    free(pr->cpath);
    free(pr);
  }
}

void corio__pool_release(pool *P, job *j) {
  drop_fn(j->fn);
  drop_paths(j->paths);
  j->fn = NULL;
  j->paths = NULL;
  j->task = NULL;
  j->state = JOB_FREE;
  corio__list_remove(&j->live);
  j->next = P->free;
  P->free = j;
}

job *corio__pool_take(pool *P) {
  job *j = P->spare;
  if (j != NULL) {
    j->in.n = 0;
    return j;
  }
  if (P->free != NULL) {
    j = P->free;
    P->free = j->next;
    if (j->in.cap > BIG_BUFFER) corio__tbuf_free(&j->in);
    if (j->out.cap > BIG_BUFFER) corio__tbuf_free(&j->out);
  }
  else {
    j = (job *)calloc(1, sizeof *j);
    if (j == NULL) return NULL;
    corio__list_init(&j->node);
    corio__list_init(&j->live);
  }
  j->in.n = j->out.n = 0;
  j->delivered = 0;
  P->spare = j;
  return j;
}

static void on_done(uv_async_t *h) {
  pool *P = (pool *)h->data;
  corio_list_t list;
  corio__list_init(&list);
  uv_mutex_lock(&P->lock);
  if (!corio__list_empty(&P->done)) {  /* take the whole list */
    list.next = P->done.next;
    list.prev = P->done.prev;
    list.next->prev = &list;
    list.prev->next = &list;
    corio__list_init(&P->done);
  }
  uv_mutex_unlock(&P->lock);
  while (!corio__list_empty(&list)) {
    job *j = corio__container_of(list.next, job, node);
    corio__list_remove(&j->node);
    j->state = JOB_DELIVERED;  /* off every shared list: the loop's now */
    if (j->task != NULL) {
      j->delivered = 1;
      corio_task_wake(&P->S->loop, &j->task->core, CORIO_WAKE_NORMAL);
    }
    else corio__pool_release(P, j);
  }
}

static void start_thread(pool *P) {
  worker *w = &P->workers[P->nthreads];
  memset(w, 0, sizeof *w);
  w->P = P;
  if (uv_thread_create(&w->tid, worker_main, w) == 0) P->nthreads++;
}

int corio__pool_submit(pool *P, job *j) {
  if (P->workers == NULL) {
    P->workers = (worker *)calloc((size_t)P->size, sizeof *P->workers);
    if (P->workers == NULL) return UV_ENOMEM;
  }
  P->started = 1;
  uv_mutex_lock(&P->lock);
  j->state = JOB_QUEUED;
  corio__list_push(&P->queue, &j->node);
  P->nqueued++;
  if (P->nqueued <= P->nidle) uv_cond_signal(&P->more);
  else if (P->nthreads < P->size) {
    start_thread(P);
    if (P->nthreads == 0) {  /* no thread at all */
      corio__list_remove(&j->node);
      P->nqueued--;
      j->state = JOB_FREE;
      uv_mutex_unlock(&P->lock);
      return UV_EAGAIN;
    }
  }
  uv_mutex_unlock(&P->lock);
  corio__list_push(&P->jobs, &j->live);
  if (P->spare == j) P->spare = NULL;
  return 0;
}

void corio__pool_hold(pool *P) {
  if (P->inflight++ == 0 && P->async != NULL)
    uv_ref((uv_handle_t *)P->async);
}

void corio__pool_unhold(pool *P) {
  if (P->inflight > 0 && --P->inflight == 0 && P->async != NULL)
    uv_unref((uv_handle_t *)P->async);
}

/* under the lock: stop the running job at its next instruction */
static void interrupt(job *j) {
  worker *w = j->w;
  w->interrupt = 1;
  if (w->L != NULL) lua_sethook(w->L, interrupt_hook, LUA_MASKCOUNT, 1);
}

/* The task waiting on j leaves (cancelled, abandoned): a queued job is
   dropped, a running one interrupted, a finished one released. */
void corio__pool_cancel(pool *P, job *j) {
  int now = 0;
  if (j->task == NULL) return;
  j->task = NULL;
  corio__pool_unhold(P);
  uv_mutex_lock(&P->lock);
  switch (j->state) {
    case JOB_QUEUED:
      corio__list_remove(&j->node);
      P->nqueued--;
      now = 1;
      break;
    case JOB_RUNNING: interrupt(j); break;  /* released when it is done */
    case JOB_DONE: break;                   /* released by on_done */
    default: now = 1;
  }
  uv_mutex_unlock(&P->lock);
  if (now) corio__pool_release(P, j);
}

void corio__pool_abandon(pool *P, luatask *t) {
  corio_list_t *n;
  for (n = P->jobs.next; n != &P->jobs; n = n->next) {
    job *j = corio__container_of(n, job, live);
    if (j->task == t) {
      corio__pool_cancel(P, j);
      return;
    }
  }
}

static void free_handle(uv_handle_t *h) { free(h); }

void corio__pool_open_run(pool *P, uv_loop_t *loop) {
  uv_async_t *a = (uv_async_t *)malloc(sizeof *a);
  if (a == NULL) return;
  if (uv_async_init(loop, a, on_done) != 0) {
    free(a);
    return;
  }
  a->data = P;
  uv_unref((uv_handle_t *)a);
  P->inflight = 0;
  uv_mutex_lock(&P->lock);
  P->async = a;
  if (!corio__list_empty(&P->done)) uv_async_send(a);  /* a past run's */
  uv_mutex_unlock(&P->lock);
}

/* The run ends (every task has finished): jobs still queued are dropped,
   running ones interrupted, finished ones released; the run's async
   handle closes. */
void corio__pool_end_run(pool *P) {
  corio_list_t *n, drop;
  uv_async_t *a;
  corio__list_init(&drop);
  uv_mutex_lock(&P->lock);
  n = P->jobs.next;
  while (n != &P->jobs) {
    job *j = corio__container_of(n, job, live);
    n = n->next;
    j->task = NULL;
    if (j->state == JOB_RUNNING) interrupt(j);
    else {
      if (j->state == JOB_QUEUED) P->nqueued--;
      corio__list_remove(&j->node);  /* the queue or the done list */
      corio__list_push(&drop, &j->node);
    }
  }
  a = P->async;
  P->async = NULL;
  uv_mutex_unlock(&P->lock);
  while (!corio__list_empty(&drop)) {
    job *j = corio__container_of(drop.next, job, node);
    corio__list_remove(&j->node);
    corio__pool_release(P, j);
  }
  P->inflight = 0;
  if (a != NULL) uv_close((uv_handle_t *)a, free_handle);
}

static void free_job(job *j) {
  corio__tbuf_free(&j->in);
  corio__tbuf_free(&j->out);
  free(j);
}

/* The corio state closes: stop every thread, wait for it, free it all. */
void corio__pool_destroy(pool *P) {
  int i;
  job *j;
  if (P->async != NULL) corio__pool_end_run(P);  /* closed inside a run */
  uv_mutex_lock(&P->lock);
  P->stop = 1;
  for (i = 0; i < P->nthreads; i++)
    if (P->workers[i].cur != NULL) interrupt(P->workers[i].cur);
  uv_cond_broadcast(&P->more);
  uv_mutex_unlock(&P->lock);
  for (i = 0; i < P->nthreads; i++) uv_thread_join(&P->workers[i].tid);
  P->nthreads = 0;
  free(P->workers);
  P->workers = NULL;
  while (!corio__list_empty(&P->jobs)) {
    j = corio__container_of(P->jobs.next, job, live);
    corio__list_remove(&j->node);
    corio__pool_release(P, j);
  }
  if (P->spare != NULL) {
    free_job(P->spare);
    P->spare = NULL;
  }
  while ((j = P->free) != NULL) {
    P->free = j->next;
    free_job(j);
  }
  drop_paths(P->paths);
  P->paths = NULL;
  uv_cond_destroy(&P->more);
  uv_mutex_destroy(&P->lock);
}

void corio__pool_init(pool *P, corio_State *S) {
  memset(P, 0, sizeof *P);
  P->S = S;
  P->size = (int)uv_available_parallelism();
  if (P->size < 1) P->size = 1;
  if (P->size > POOL_MAX_SIZE) P->size = POOL_MAX_SIZE;
  corio__list_init(&P->queue);
  corio__list_init(&P->done);
  corio__list_init(&P->jobs);
  uv_mutex_init(&P->lock);
  uv_cond_init(&P->more);
}
