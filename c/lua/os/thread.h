/*
** thread.h: what the worker-thread files share (thread.c, the Lua face;
** thread_pool.c, the threads; thread_copy.c, the value copier). Not a
** header for the rest of the binding: it sees corio__thread_iomod and
** corio__open_thread in binding.h.
**
** A job crosses between the loop thread and a worker as bytes only: the
** function's dump, the arguments and the results are copied into C
** buffers, so no Lua state is ever touched by two threads. The one
** exception is lua_sethook on a worker's state, which Lua allows from
** another thread (lua.c does it from a signal handler): that is how a
** running job is interrupted.
*/
#ifndef CORIO_THREAD_H
#define CORIO_THREAD_H

#include "binding.h"
#include "corio-internal.h"  /* container_of, the list helpers */

#define POOL_MT "corio.WorkerPool"
#define POOL_REGKEY "corio.workers"  /* registry: the pool userdata */
#define POOL_MAX_SIZE 1024

/* a growable byte buffer */
typedef struct tbuf {
  char *p;
  size_t n, cap;
} tbuf;

/* A function's dump, shared by the jobs that run it (loop thread only
   touches refs). Workers cache the loaded function under its id. */
typedef struct funcrec {
  int refs;
  uint32_t id;
  size_t size;
  char code[1];  /* size bytes */
} funcrec;

/* the caller's package.path and package.cpath at the time of a call */
typedef struct pathrec {
  int refs;
  uint32_t id;
  size_t plen, clen;
  char *path, *cpath;  /* NULL: not a string */
} pathrec;

enum { JOB_FREE, JOB_STAGED, JOB_QUEUED, JOB_RUNNING, JOB_DONE, JOB_DELIVERED };
enum { JOB_OK, JOB_ERROR, JOB_FAIL };  /* JOB_FAIL: the worker could not run it */

typedef struct worker worker;

typedef struct job {
  corio_list_t node;   /* staged (loop thread), or in the queue or the
                          done list (under the lock) */
  corio_list_t live;   /* in the pool's jobs, until freed (loop thread) */
  struct job *next;    /* in the free list (loop thread) */
  luatask *task;       /* the waiting task, NULL once it left (loop thread) */
  funcrec *fn;         /* held (loop thread) */
  pathrec *paths;      /* held, or NULL (loop thread) */
  worker *w;           /* the worker running it (under the lock) */
  tbuf in;             /* arguments (copied) */
  tbuf out;            /* results, or error value and traceback */
  int nargs;
  int nres;
  uint8_t state;       /* JOB_* (under the lock) */
  uint8_t status;      /* JOB_OK... set by the worker */
  uint8_t delivered;   /* on_done woke its task (loop thread) */
  uint8_t staged;      /* not queued yet: state is JOB_STAGED (loop thread) */
} job;

struct worker {
  uv_thread_t tid;
  struct pool *P;
  lua_State *L;        /* its own state, made by the thread itself */
  lua_State *active;   /* the coroutine of L running now, or NULL (under the lock) */
  job *cur;            /* the job it runs (under the lock) */
  int interrupt;       /* cur is to stop at its next instruction (under the lock) */
  int reset;           /* close L after this job */
  uint32_t paths_id;   /* the paths its package table has */
  int ncached;         /* functions in its cache */
};

/* the handles of a run: freed when both have closed */
typedef struct runhandles {
  uv_async_t async;      /* a worker wakes the loop */
  uv_prepare_t prepare;  /* the end of a batch of tasks: flush */
  int open;
} runhandles;

typedef struct pool {
  uv_mutex_t lock;
  uv_cond_t more;          /* a job was queued, or stop */
  corio_list_t queue;      /* jobs waiting for a worker */
  corio_list_t done;       /* finished jobs for the loop */
  uv_async_t *async;       /* the run's wake-up, NULL between runs */
  int senders;             /* workers sending on it right now */
  int size;                /* threads wanted */
  int nthreads;            /* threads started */
  int nidle;               /* threads waiting on `more` */
  int nstarting;           /* threads started, not yet taking jobs */
  int nqueued;
  int stop;
  int started;             /* a job was submitted once: size is fixed */
  worker *workers;         /* size of them */
  /* loop thread only */
  corio_State *S;
  runhandles *run;         /* the run's handles (async is its own) */
  corio_list_t staged;     /* submitted in this batch of tasks: queued
                              together when it ends (run->prepare) */
  int nstaged;
  job *free;               /* free list */
  job *spare;              /* taken from the free list, not yet queued */
  corio_list_t jobs;       /* every job not free */
  int inflight;            /* jobs a task waits on: async ref'd while > 0 */
  uint32_t next_id;
  pathrec *paths;          /* the latest paths */
  const void *path_p, *cpath_p;  /* their Lua strings (anchored) */
  const void *last_fn;     /* the last function (anchored) ... */
  funcrec *last_rec;       /* ... and its record */
} pool;

/* thread_copy.c: values at [first, first+n) of L into b (appended).
   Raises, naming `fname` and where: "argument 2, field 'a.b': cannot
   copy a function". what: "argument" or "result"; base: the number of
   the first one. */
void corio__copy_out(lua_State *L, tbuf *b, int first, int n,
                     const char *fname, const char *what, int base);
/* push the values copied in b from offset *pos on (n of them) */
void corio__copy_in(lua_State *L, const tbuf *b, size_t *pos, int n);
/* room for more bytes; 0, or -1 out of memory */
int corio__tbuf_reserve(tbuf *b, size_t more);
void corio__tbuf_free(tbuf *b);

/* thread_worker.c */
void corio__worker_main(void *arg);        /* a worker thread */
void corio__worker_interrupt(worker *w);   /* under the lock */

/* thread_pool.c */
void corio__pool_init(pool *P, corio_State *S);
job *corio__pool_take(pool *P);            /* P->spare, or NULL (memory) */
int corio__pool_submit(pool *P, job *j);   /* 0 or a UV error (no thread) */
void corio__pool_cancel(pool *P, job *j);  /* the waiting task left */
void corio__pool_release(pool *P, job *j); /* back to the free list */
void corio__pool_open_run(pool *P, uv_loop_t *loop);
void corio__pool_end_run(pool *P);
void corio__pool_abandon(pool *P, luatask *t);
void corio__pool_destroy(pool *P);
void corio__pool_hold(pool *P);            /* a task waits on a job */
void corio__pool_unhold(pool *P);

#endif
