/*
** thread_pool.c: corio's own pool of worker threads (not libuv's, which
** files and DNS use), each with a Lua state of its own.
**
** The tasks of a batch (the loop runs every ready task once, then
** polls) stage their jobs; when the batch ends (a uv_prepare) the loop
** thread queues them all under the pool's lock and wakes as many idle
** workers as needed. A worker runs jobs one after the other, and a
** finished job goes on the done list. The first job on an
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
#include <sched.h>
#include <stdlib.h>
#include <string.h>
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
  j->staged = 0;
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

/* under the lock */
static void start_thread(pool *P) {
  worker *w = &P->workers[P->nthreads];
  memset(w, 0, sizeof *w);
  w->P = P;
  if (uv_thread_create(&w->tid, corio__worker_main, w) == 0) {
    P->nthreads++;
    P->nstarting++;
  }
}

/* The batch of tasks has ended: its jobs join the queue together, and
   as many idle workers as needed wake (threads start when none is idle). */
static void flush(pool *P) {
  corio_list_t *n;
  int k = P->nstaged, wake;
  if (k == 0) return;
  uv_mutex_lock(&P->lock);
  for (n = P->staged.next; n != &P->staged; n = n->next) {
    job *j = corio__container_of(n, job, node);
    j->state = JOB_QUEUED;
    j->staged = 0;
  }
  P->staged.next->prev = P->queue.prev;          /* splice at the tail */
  P->queue.prev->next = P->staged.next;
  P->staged.prev->next = &P->queue;
  P->queue.prev = P->staged.prev;
  corio__list_init(&P->staged);
  P->nstaged = 0;
  P->nqueued += k;
  for (wake = k < P->nidle ? k : P->nidle; wake > 0; wake--)
    uv_cond_signal(&P->more);
  wake = P->nqueued - P->nidle - P->nstarting;  /* threads to start */
  for (; wake > 0 && P->nthreads < P->size; wake--) {
    int before = P->nthreads;
    start_thread(P);
    if (P->nthreads == before) break;  /* no more threads: those there do */
  }
  uv_mutex_unlock(&P->lock);
}

static void on_prepare(uv_prepare_t *h) {
  flush((pool *)h->data);
  uv_prepare_stop(h);
}

int corio__pool_submit(pool *P, job *j) {
  if (P->workers == NULL) {
    P->workers = (worker *)calloc((size_t)P->size, sizeof *P->workers);
    if (P->workers == NULL) return UV_ENOMEM;
  }
  P->started = 1;
  if (P->nthreads == 0) {  /* the first thread: a failure is the caller's */
    int n;
    uv_mutex_lock(&P->lock);
    start_thread(P);
    n = P->nthreads;
    uv_mutex_unlock(&P->lock);
    if (n == 0) return UV_EAGAIN;
  }
  j->state = JOB_STAGED;
  j->staged = 1;
  corio__list_push(&P->staged, &j->node);
  if (P->nstaged++ == 0) uv_prepare_start(&P->run->prepare, on_prepare);
  corio__list_push(&P->jobs, &j->live);
  if (P->spare == j) P->spare = NULL;
  return 0;
}

void corio__pool_hold(pool *P) {
  if (P->inflight++ == 0 && P->run != NULL)
    uv_ref((uv_handle_t *)&P->run->async);
}

void corio__pool_unhold(pool *P) {
  if (P->inflight > 0 && --P->inflight == 0 && P->run != NULL)
    uv_unref((uv_handle_t *)&P->run->async);
}

/* The task waiting on j leaves (cancelled, abandoned): a queued job is
   dropped, a running one interrupted, a finished one released. */
void corio__pool_cancel(pool *P, job *j) {
  int now = 0;
  if (j->task == NULL) return;
  j->task = NULL;
  corio__pool_unhold(P);
  if (j->staged) {  /* the loop's own still */
    corio__list_remove(&j->node);
    P->nstaged--;
    corio__pool_release(P, j);
    return;
  }
  uv_mutex_lock(&P->lock);
  switch (j->state) {
    case JOB_QUEUED:
      corio__list_remove(&j->node);
      P->nqueued--;
      now = 1;
      break;
    case JOB_RUNNING:  /* released by on_done, once it has stopped */
      corio__worker_interrupt(j->w);
      break;
    case JOB_DONE: break;  /* released by on_done */
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

static void closed(runhandles *r) {
  if (--r->open == 0) free(r);
}

static void on_async_closed(uv_handle_t *h) {
  closed(corio__container_of(h, runhandles, async));
}

static void on_prepare_closed(uv_handle_t *h) {
  closed(corio__container_of(h, runhandles, prepare));
}

void corio__pool_open_run(pool *P, uv_loop_t *loop) {
  runhandles *r = (runhandles *)malloc(sizeof *r);
  if (r == NULL) return;
  if (uv_async_init(loop, &r->async, on_done) != 0) {
    free(r);
    return;
  }
  uv_prepare_init(loop, &r->prepare);
  r->async.data = P;
  r->prepare.data = P;
  r->open = 2;
  uv_unref((uv_handle_t *)&r->async);
  uv_unref((uv_handle_t *)&r->prepare);
  P->run = r;
  P->inflight = 0;
  uv_mutex_lock(&P->lock);
  P->async = &r->async;
  if (!corio__list_empty(&P->done)) uv_async_send(P->async);  /* a past run's */
  uv_mutex_unlock(&P->lock);
}

/* The run ends (every task has finished): jobs still queued are dropped,
   running ones interrupted, finished ones released; the run's handles
   close. */
void corio__pool_end_run(pool *P) {
  corio_list_t *n, drop;
  runhandles *r = P->run;
  corio__list_init(&drop);
  uv_mutex_lock(&P->lock);
  n = P->jobs.next;
  while (n != &P->jobs) {
    job *j = corio__container_of(n, job, live);
    n = n->next;
    j->task = NULL;
    if (j->state == JOB_RUNNING) corio__worker_interrupt(j->w);
    else {
      if (j->state == JOB_QUEUED) P->nqueued--;
      corio__list_remove(&j->node);  /* staged, queued or done */
      corio__list_push(&drop, &j->node);
    }
  }
  P->nstaged = 0;
  P->async = NULL;
  while (P->senders > 0) {  /* a worker is in uv_async_send: a moment */
    uv_mutex_unlock(&P->lock);
    sched_yield();
    uv_mutex_lock(&P->lock);
  }
  uv_mutex_unlock(&P->lock);
  while (!corio__list_empty(&drop)) {
    job *j = corio__container_of(drop.next, job, node);
    corio__list_remove(&j->node);
    corio__pool_release(P, j);
  }
  P->inflight = 0;
  P->run = NULL;
  if (r != NULL) {
    uv_close((uv_handle_t *)&r->async, on_async_closed);
    uv_close((uv_handle_t *)&r->prepare, on_prepare_closed);
  }
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
  if (P->run != NULL) corio__pool_end_run(P);  /* closed inside a run */
  uv_mutex_lock(&P->lock);
  P->stop = 1;
  for (i = 0; i < P->nthreads; i++)
    if (P->workers[i].cur != NULL) corio__worker_interrupt(&P->workers[i]);
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
  corio__list_init(&P->staged);
  uv_mutex_init(&P->lock);
  uv_cond_init(&P->more);
}
