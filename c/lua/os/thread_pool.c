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
  if (uv_thread_create(&w->tid, corio__worker_main, w) == 0) P->nthreads++;
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
  corio__worker_interrupt(j->w);
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
