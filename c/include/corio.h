/*
** corio.h: the public C API of corio.
**
** Two layers share this header:
**  - the core (corio_loop_t, corio_task_t, corio_future_t, corio_scope_t,
**    corio_group_t, corio_timer_t): pure C on libuv, no Lua. Every call
**    returns 0 or a negative error code (CORIO_E* or a UV_* code passed
**    through) and never longjmps;
**  - the host API (luaopen_corio_core, corio_attach, corio_future_*,
**    corio_post, corio_set_error_hook):
**    for applications that embed Lua and run plugins as corio tasks.
**
** Struct fields are marked public (read and write), readonly (read only)
** or private (do not touch), as libuv does.
*/
#ifndef CORIO_H
#define CORIO_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define CORIO_VERSION "0.1.0"

/* error codes: libuv's negative codes pass through; ours sit below them */
#define CORIO_EBUSY      UV_EBUSY
#define CORIO_EINVAL     UV_EINVAL
#define CORIO_ENOMEM     UV_ENOMEM
#define CORIO_ECANCELED  UV_ECANCELED
#define CORIO_EDONE      (-40001)  /* the future is already done */
#define CORIO_ECLOSED    (-40002)  /* the object is closed */

/* the name of an error code ("EDONE", "ECONNREFUSED"...), and its message */
const char *corio_err_name(int err);
const char *corio_strerror(int err);

typedef struct corio_list_s corio_list_t;
typedef struct corio_loop_s corio_loop_t;
typedef struct corio_timer_s corio_timer_t;
typedef struct corio_future_s corio_future_t;
typedef struct corio_waiter_s corio_waiter_t;
typedef struct corio_task_s corio_task_t;
typedef struct corio_scope_s corio_scope_t;
typedef struct corio_group_s corio_group_t;

typedef void (*corio_timer_cb)(corio_loop_t *loop, corio_timer_t *timer);
typedef void (*corio_waiter_cb)(corio_loop_t *loop, corio_waiter_t *w,
                                corio_future_t *f);
typedef void (*corio_step_cb)(corio_loop_t *loop, corio_task_t *task);
typedef void (*corio_batch_cb)(corio_loop_t *loop);

/* intrusive doubly linked list; a node that is not linked points to itself */
struct corio_list_s {
  corio_list_t *next;
  corio_list_t *prev;
};

/* ---------------------------------------------------------------- timers */
/* A deadline in the loop's heap. Caller-allocated, usually embedded. */
struct corio_timer_s {
  uint64_t when;          /* readonly: deadline, loop clock in ns */
  uint32_t seq;           /* private: FIFO order among equal deadlines */
  uint32_t slot;          /* private: where it is armed, 0 when not */
  corio_timer_cb cb;      /* public: called once when the deadline passes */
};

/* init once; start arms t for `when` (loop clock, ns; a started timer is
   moved), stop disarms it; active: armed and not yet fired */
void corio_timer_init(corio_timer_t *t, corio_timer_cb cb);
int corio_timer_start(corio_loop_t *loop, corio_timer_t *t, uint64_t when);
void corio_timer_stop(corio_loop_t *loop, corio_timer_t *t);
#define corio_timer_active(t) ((t)->slot != 0)

/* --------------------------------------------------------------- futures */
enum corio_state {
  CORIO_PENDING = 0,
  CORIO_DONE,        /* finished with results */
  CORIO_FAILED,      /* finished with an error */
  CORIO_CANCELLED    /* finished by cancellation */
};

/* Something that waits on a future: linked into its list until it fires. */
struct corio_waiter_s {
  corio_list_t node;      /* private */
  corio_waiter_cb cb;     /* public: called once, after being unlinked */
};

struct corio_future_s {
  corio_list_t waiters;   /* private: corio_waiter_t, in arrival order */
  int state;              /* readonly: enum corio_state */
  uint32_t user;          /* public: the owner's to use (the core never does) */
};

/* a pending future with no waiters */
void corio_future_init(corio_future_t *f);
/* finish f and fire its waiters in order; CORIO_EDONE if already done */
int corio_future_finish(corio_loop_t *loop, corio_future_t *f, int state);
void corio_future_wait(corio_future_t *f, corio_waiter_t *w);
void corio_waiter_init(corio_waiter_t *w, corio_waiter_cb cb);
void corio_waiter_cancel(corio_waiter_t *w);
int corio_waiter_active(const corio_waiter_t *w);

/* ----------------------------------------------------------------- tasks */
/* what a suspended task waits on: decides how cancellation detaches it */
enum corio_wait {
  CORIO_WAIT_NONE = 0,   /* running, or finished */
  CORIO_WAIT_READY,      /* in the ready queue */
  CORIO_WAIT_TIMER,      /* on wait.timer */
  CORIO_WAIT_FUTURE,     /* on wait.waiter */
  CORIO_WAIT_PARKED      /* on nothing the core knows: woken explicitly */
};

/* why a suspended task was woken */
enum corio_wake {
  CORIO_WAKE_NORMAL = 0,
  CORIO_WAKE_CANCEL,     /* a scope around its checkpoint was cancelled */
  CORIO_WAKE_DEADLOCK,   /* nothing could ever wake it */
  CORIO_WAKE_ABORT       /* its suspension was undone (see corio_task_detach) */
};

#define CORIO_TASK_CANCEL_REQUESTED 0x01  /* the task's root scope is cancelled */
#define CORIO_TASK_STARTED          0x02

struct corio_task_s {
  corio_future_t done;       /* readonly: the task as an awaitable */
  corio_scope_t *scope;      /* readonly: innermost cancel scope, NULL = root */
  corio_group_t *group;      /* readonly: the group it was spawned in */
  union {
    corio_waiter_t waiter;   /* CORIO_WAIT_FUTURE */
    corio_timer_t timer;     /* CORIO_WAIT_TIMER */
  } wait;                    /* private */
  uint32_t member;           /* private: its index in the group's children */
  uint8_t wait_kind;         /* readonly: enum corio_wait */
  uint8_t wake;              /* readonly: enum corio_wake, of the last wake */
  uint8_t flags;             /* readonly: CORIO_TASK_* */
  uint8_t user;              /* public: the owner's to use (the core never
                                does); corio_task_init zeroes it, and done.user */
};

/* a new task of loop, not yet scheduled (the caller sets its step) */
void corio_task_init(corio_loop_t *loop, corio_task_t *t);
/* put t at the end of the ready queue (a new task, or a yield) */
int corio_task_schedule(corio_loop_t *loop, corio_task_t *t);
/* suspend the running task until corio_task_wake (PARKED), a timer or a future */
void corio_task_park(corio_loop_t *loop, corio_task_t *t);
int corio_task_sleep_until(corio_loop_t *loop, corio_task_t *t, uint64_t when);
void corio_task_await(corio_loop_t *loop, corio_task_t *t, corio_future_t *f);
/* wake a suspended task; no effect on one that is ready or running */
int corio_task_wake(corio_loop_t *loop, corio_task_t *t, int why);
/* undo the task's suspension without scheduling it */
void corio_task_detach(corio_loop_t *loop, corio_task_t *t);
/* cancel the task's root scope; 0, or CORIO_EDONE if finished */
int corio_task_cancel(corio_loop_t *loop, corio_task_t *t);
/* the scope whose cancellation reaches t's next checkpoint, or NULL;
   the task's root is reported as (corio_scope_t *)t */
void *corio_task_cancelled_by(const corio_task_t *t);
/* finish t: fires its waiters and tells its group. A task finished while
   it sits in the ready ring is dropped from it at the next batch, so its
   memory must live until then. */
int corio_task_finish(corio_loop_t *loop, corio_task_t *t, int state);

/* ---------------------------------------------------------------- scopes */
/* A cancel scope inside one task: timeouts, shields, a group's body. */
struct corio_scope_s {
  corio_scope_t *parent;     /* readonly: the enclosing scope in the task */
  corio_task_t *task;        /* readonly: owner */
  corio_timer_t deadline;    /* private */
  uint8_t cancelled;         /* readonly */
  uint8_t shield;            /* public: hold off outer cancellation */
  uint8_t expired;           /* readonly: cancelled by its deadline */
  uint8_t entered;           /* readonly */
};

/* init s, then enter it as task t's innermost scope (CORIO_EINVAL if it
   was entered already) */
void corio_scope_init(corio_scope_t *s);
int corio_scope_enter(corio_scope_t *s, corio_task_t *t);
/* leave s; it must be the task's innermost scope (CORIO_EINVAL if not) */
int corio_scope_leave(corio_loop_t *loop, corio_scope_t *s);
/* leave s wherever it is in the task's chain (one its code never left) */
int corio_scope_drop(corio_loop_t *loop, corio_scope_t *s);
void corio_scope_cancel(corio_loop_t *loop, corio_scope_t *s);
int corio_scope_set_deadline(corio_loop_t *loop, corio_scope_t *s,
                             uint64_t when);

/* ---------------------------------------------------------------- groups */
/* A nursery: children run inside it; the first failure cancels the rest. */
struct corio_group_s {
  corio_scope_t body;        /* readonly: the owner's scope around the body */
  corio_task_t **children;   /* private: children in spawn order; NULL holes */
  size_t nslots, cap;        /* private: slots used (holes too), allocated */
  size_t nchildren;          /* readonly: live children */
  size_t nfailed;            /* readonly: children that failed */
  corio_task_t *waiter;      /* private: the owner, parked until empty */
  uint8_t closed;            /* readonly: no more spawns */
};

/* an empty, open group; enter it as its owner's scope before adding */
void corio_group_init(corio_group_t *g);
/* free what the group holds; call once it has no children left */
void corio_group_free(corio_group_t *g);
int corio_group_enter(corio_group_t *g, corio_task_t *owner);
/* 0, CORIO_ECLOSED, or CORIO_ENOMEM */
int corio_group_add(corio_group_t *g, corio_task_t *child);
/* called when a child finishes (the binding calls it from task finish) */
void corio_group_child_done(corio_loop_t *loop, corio_task_t *child);
/* cancel the body and every child */
void corio_group_cancel(corio_loop_t *loop, corio_group_t *g);

/* ------------------------------------------------------------------ loop */
typedef struct corio_heap_entry_s {   /* private */
  uint64_t when;
  corio_timer_t *timer;
} corio_heap_entry_t;

struct corio_loop_s {
  uv_loop_t *uv;             /* readonly */
  void *data;                /* public: the binding's state */
  corio_step_cb step;        /* public: runs one step of a ready task */
  corio_batch_cb after_batch; /* public, optional: called after each batch */
  corio_batch_cb before_batch; /* public, optional: called before each batch, whose
                                  tasks are the loop->rcount first of the ready ring */
  uint64_t now;              /* readonly: cached clock, ns */
  size_t ntasks;             /* readonly: live tasks */
  uint64_t budget;           /* public: ns a batch may run ready tasks, 0 = no limit */
  uint64_t offset;           /* readonly: ns added to the real clock (corio_loop_advance) */
  int autojump;              /* readonly: corio_loop_set_autojump */
  /* private below */
  corio_task_t **ready;      /* ring buffer */
  size_t rhead, rcount, rcap;
  corio_heap_entry_t *heap;  /* binary min-heap on (when, seq) */
  uint32_t hcount, hcap;
  corio_timer_t **run;       /* deadlines that came in order: a sorted ring */
  uint32_t rnhead, rntail, rncap, rnlive;
  uint64_t rnlast;           /* the deadline at the run's tail */
  uint32_t seq;
  uv_idle_t idle;            /* active while tasks are ready */
  uv_timer_t timer;          /* armed at the earliest deadline */
  uint64_t armed;            /* deadline the uv timer is armed for, 0 = none */
  int owns_uv;
  int closing;
  uv_prepare_t jump;         /* autojump: runs before libuv would poll */
  uv_loop_t own;             /* used when the loop owns its uv loop */
};

/* uv == NULL: corio creates and owns a uv loop */
int corio_loop_init(corio_loop_t *loop, uv_loop_t *uv);
/* run ready tasks and timers until nothing is runnable; returns like uv_run */
int corio_loop_run(corio_loop_t *loop, uv_run_mode mode);
/* close handles; closes the uv loop if owned. 0 or UV_EBUSY */
int corio_loop_close(corio_loop_t *loop);
void corio_loop_update_time(corio_loop_t *loop);
/* run the tasks that are ready now, each once */
void corio_loop_run_ready(corio_loop_t *loop);
/* Virtual time, for tests. The loop's clock is the real clock plus
   loop->offset (0 after corio_loop_init). corio_loop_advance moves it
   forward by ns and arms the timers that fall due, to fire at once.
   With autojump on, whenever no task is ready and libuv would block in
   its poll with nothing but corio's timer to wake it (no other active
   handle, no pending request), the clock jumps to the earliest deadline
   and its timers fire. */
void corio_loop_advance(corio_loop_t *loop, uint64_t ns);
void corio_loop_set_autojump(corio_loop_t *loop, int on);

/* ------------------------------------------------------------- host API */
/* For applications that embed Lua and run plugins as corio tasks (the
   reference: docs/embedding.md).

   Threads: every function below is for the loop's thread (the one that
   called corio_attach), except corio_post, corio_state_retain and
   corio_state_release, which any thread may call. In builds without
   NDEBUG, a loop-thread function called from another thread prints one
   line naming it and returns CORIO_EINVAL without touching anything.

   Ownership: the Lua state owns corio's state; the host owns its uv loop,
   its lua_State and the handles it retains. No function takes ownership of
   a payload except as stated at corio_post.

   What opening corio changes outside corio is the host's choice
   (corio_set_options): by default, luaopen_corio_core ignores SIGPIPE for
   the process (a write to a closed peer becomes an error value instead of
   killing it), and `require "corio"` replaces coroutine.resume and
   coroutine.wrap in that Lua state by corio's (a task may then wait inside
   a plain coroutine; corio.coroutine has them either way). */

struct lua_State;
typedef struct corio_State corio_state_t;

/* the module behind require "corio" (corio.core): opens corio in L */
int luaopen_corio_core(struct lua_State *L);

/* Before opening corio in L: decline its process-wide side effects.
   CORIO_KEEP_SIGPIPE leaves SIGPIPE's disposition alone (the host handles
   or ignores it itself; a write to a closed peer may then kill the
   process), CORIO_KEEP_COROUTINE leaves coroutine.resume and wrap as Lua's
   (an await inside a plain coroutine then fails), CORIO_KEEP_ALLOC keeps
   Lua's own allocator in a state that has it (corio otherwise gives the
   state its allocator for small blocks: docs/reference.md, "Memory").
   Stored in L's registry.
   0, or CORIO_EBUSY when corio is already open in L. */
#define CORIO_KEEP_SIGPIPE   0x01u
#define CORIO_KEEP_COROUTINE 0x02u
#define CORIO_KEEP_ALLOC     0x04u
int corio_set_options(struct lua_State *L, unsigned options);

/* corio's state in L (the module must be open), or NULL. Borrowed: valid
   while L is open, unless retained. */
corio_state_t *corio_state(struct lua_State *L);
/* Keep S (its memory, not the Lua state) alive: a thread that posts
   retains S, and after lua_close its posts return CORIO_ECLOSED instead of
   touching freed memory. Returns S. Any thread. */
corio_state_t *corio_state_retain(corio_state_t *S);
/* Drop a reference taken by corio_state_retain. Any thread. */
void corio_state_release(corio_state_t *S);

/* Lend corio the host's uv loop: tasks run whenever the host runs uv_run.
   Call after opening the module. 0, or CORIO_EINVAL (module not open),
   CORIO_EBUSY (a loop is in use, or a detach's handles are still closing:
   run the loop, then attach again). */
int corio_attach(struct lua_State *L, uv_loop_t *loop);

/* Detach (at unload). Posts already accepted run first (each exactly once;
   later posts get CORIO_ECLOSED), then every task is cancelled and its
   cleanup (<close> handlers, finally-style code) runs, with timers, until
   every task has finished or timeout_ms has passed; what did not finish is
   abandoned (its remaining cleanup does not run) and named in one short
   message: corio_detach_wait sends it to the error hook (or to stderr
   without one), corio_detach_async passes it to its callback.
   Unhandled errors are reported, corio's handles are closed: the host runs
   its loop once more so the closes complete (before uv_loop_close, and
   before attaching again). lua_close may come at any time after.

   corio_detach_wait blocks: it never runs the host's uv loop (no nested
   uv_run), it drives corio's own ready tasks and timers, so cleanup that
   waits on I/O does not progress; it must not be called from a task.
   0, CORIO_ETIMEDOUT (something was abandoned), CORIO_EINVAL (not
   attached), CORIO_EBUSY (called from inside a task). corio_detach(L) is
   corio_detach_wait(L, 0): only cleanup that does not wait runs. */
#define CORIO_ETIMEDOUT UV_ETIMEDOUT
int corio_detach(struct lua_State *L);
int corio_detach_wait(struct lua_State *L, uint64_t timeout_ms);
/* corio_detach_async returns at once; the cleanup runs as the host runs
   its loop (I/O too), and cb(L, status, unfinished, ud) is called once
   when it is over, from the loop: status 0 or CORIO_ETIMEDOUT, unfinished
   NULL or the message naming the tasks that were abandoned (valid during
   the call). The host may lua_close inside cb; it must still run its loop
   for the closes. If L is closed before, cb is not called. 0, CORIO_EINVAL
   or CORIO_EBUSY (a detach is already under way). */
typedef void (*corio_detach_cb)(struct lua_State *L, int status,
                                const char *unfinished, void *ud);
int corio_detach_async(struct lua_State *L, uint64_t timeout_ms,
                       corio_detach_cb cb, void *ud);

/* Spawn the function below the top nargs values of L's stack as a task;
   replaces the function and its arguments with the Task. 0, or
   CORIO_EINVAL when no loop is running or attached. */
int corio_spawn(struct lua_State *L, int nargs);

/* Groups of tasks a host owns (one per plugin, say). A task spawned by a
   task of a group joins the group (tasks a server spawns for its
   connections do not: close the server in the plugin's cleanup), so
   cancelling one plugin's group never disturbs another's tasks. Failures
   do not cancel the other members (the error goes to the error hook; see
   corio_hostgroup_name_of). A handle is an opaque id, valid until
   corio_hostgroup_free. Loop thread only. */
typedef struct corio_hostgroup_s corio_hostgroup_t;
/* a new empty group; name (copied) appears in messages. NULL: no corio */
corio_hostgroup_t *corio_hostgroup_new(struct lua_State *L, const char *name);
/* corio_spawn into g: the Task replaces the function and its arguments.
   0, CORIO_EINVAL (no loop, or g freed) */
int corio_hostgroup_spawn(struct lua_State *L, corio_hostgroup_t *g, int nargs);
/* request cancellation of every task in g (their cleanup then runs).
   0, CORIO_EINVAL */
int corio_hostgroup_cancel(struct lua_State *L, corio_hostgroup_t *g);
/* tasks of g not finished yet */
size_t corio_hostgroup_size(struct lua_State *L, corio_hostgroup_t *g);
/* Wait for g to be empty without blocking: cb(L, g, status, unfinished,
   ud) is called once from the loop: status 0 when every task has finished,
   or CORIO_ETIMEDOUT when timeout_ms passed first, with unfinished naming
   the tasks that would not finish (valid during the call; they go on).
   Usually after corio_hostgroup_cancel. A wait ends without its callback
   when g is freed, at detach, or when the Lua state closes. 0,
   CORIO_EINVAL, CORIO_ENOMEM */
typedef void (*corio_group_wait_cb)(struct lua_State *L, corio_hostgroup_t *g,
                                    int status, const char *unfinished, void *ud);
int corio_hostgroup_wait(struct lua_State *L, corio_hostgroup_t *g,
                         uint64_t timeout_ms, corio_group_wait_cb cb, void *ud);
/* the name of the group the Task at idx belongs (or belonged) to, even
   after the group is freed; NULL if none. For the error hook (the Task is
   at -1): the string is valid while that Task is. */
const char *corio_hostgroup_name_of(struct lua_State *L, int idx);
/* forget g (its tasks go on, in no group); its waits end without callback */
void corio_hostgroup_free(struct lua_State *L, corio_hostgroup_t *g);

/* A C handle on a Task: its state, cancelling it, a callback when it is
   done, without calling into Lua. An opaque id, never reused; the Task
   stays alive until the handle is released. Loop thread only. */
typedef struct corio_taskref_s corio_taskref_t;
/* a handle on the Task at idx of L (left there), or NULL if it is not a Task */
corio_taskref_t *corio_taskref(struct lua_State *L, int idx);
/* enum corio_state (CORIO_PENDING...), or CORIO_EINVAL for a released handle */
int corio_taskref_state(struct lua_State *L, corio_taskref_t *r);
/* request cancellation: 0, CORIO_EDONE (finished), CORIO_EINVAL (released) */
int corio_taskref_cancel(struct lua_State *L, corio_taskref_t *r);
/* cb(L, r, state, ud) once the task is done (at once if it is), from the
   loop, under the protected path of done callbacks. 0, CORIO_EINVAL,
   CORIO_ENOMEM. The callback may release r. */
typedef void (*corio_task_done_cb)(struct lua_State *L, corio_taskref_t *r,
                                   int state, void *ud);
int corio_taskref_on_done(struct lua_State *L, corio_taskref_t *r,
                          corio_task_done_cb cb, void *ud);
void corio_taskref_release(struct lua_State *L, corio_taskref_t *r);

/* The host's side of a Future: an opaque handle (not a pointer to
   memory), never reused in the state's life, so a stale handle (one
   already resolved) is detected. */
typedef struct corio_promise_s corio_promise_t;
/* Push a new Future for Lua and return its handle; corio keeps the Future
   alive until the host resolves or fails it. NULL when L has no corio or
   no loop. */
corio_promise_t *corio_future_new(struct lua_State *L);
/* Resolve with the top n values of L (popped) / fail with the top value
   (popped). 0; CORIO_EDONE if it was already done (resolved or failed
   before, or cancelled by Lua: the values are popped all the same);
   CORIO_EINVAL for a handle this state never gave. Loop thread only: from
   another thread, post a callback that resolves. */
int corio_future_resolve(struct lua_State *L, corio_promise_t *f, int n);
int corio_future_fail(struct lua_State *L, corio_promise_t *f);

/* From any thread: run cb(L, payload) on the loop's thread, soon, under a
   protected call (an error goes to the error hook). Posts run in order,
   each exactly once: either cb runs, or (when the Lua state is closed
   without a detach) the drop callback gets the payload. 0 (accepted), or
   CORIO_ECLOSED (not attached, detached, or the state is closed: cb not
   run, the payload stays the caller's), CORIO_ENOMEM. S must be alive:
   from a thread, retain it (corio_state_retain). */
typedef void (*corio_post_cb)(struct lua_State *L, void *payload);
int corio_post(corio_state_t *S, corio_post_cb cb, void *payload);
/* drop(cb, payload) for each accepted post that cannot run because the Lua
   state was closed without a detach; called from lua_close's thread. */
typedef void (*corio_drop_cb)(corio_post_cb cb, void *payload);
void corio_set_post_drop(corio_state_t *S, corio_drop_cb drop);
/* Posts do not keep the loop alive (deadlock detection needs to know
   that nothing can come): hold it while a post is expected, release it
   once the post has come. Loop thread only. */
void corio_hold(corio_state_t *S);
void corio_release(corio_state_t *S);

/* Interrupt a plugin stuck in a loop: the task running now (if any) raises
   "interrupted" at its next Lua instruction (a count/call/line hook on its
   coroutine, which replaces any hook there; the error reaches the task's
   awaiter, or the error hook). No effect when no task is running. Safe
   from any thread and from a signal handler (it only stores a flag and
   calls lua_sethook, which Lua allows asynchronously). Always 0. */
int corio_interrupt(corio_state_t *S);

/* A time budget per loop iteration, for hosts with a frame to keep: a batch
   of ready tasks runs for at most ms milliseconds (at least one task runs),
   then control returns to libuv and the host; the tasks left stay ready
   and run in the next iteration. 0 (the default) is no limit. Loop thread. */
int corio_set_budget(struct lua_State *L, unsigned ms);

/* Every error corio cannot hand to Lua code goes to hook(L, ud) with
   three values at -3, -2, -1 of L: the error, its traceback (or nil), and
   where it came from: the Task whose error nobody handled, or a string
   ("post", "done callback", "error handler", "detach", "__gc": setting a
   hook takes L's warn function, so an error in a finaliser arrives
   through a post; other warnings behave as Lua's own). Unhandled task
   errors go here instead of the Lua handler set by corio.set_error_handler.
   The hook runs under a protected call (an error it raises is printed to
   stderr); it must not yield. NULL restores the default (stderr). */
typedef void (*corio_error_hook)(struct lua_State *L, void *ud);
void corio_set_error_hook(struct lua_State *L, corio_error_hook hook, void *ud);

#endif
