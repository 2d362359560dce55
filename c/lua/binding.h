/*
** binding.h: what the binding's files share. Only c/lua/ includes lua.h.
**
** Every function of the module carries the state userdata as upvalue 1.
** The scheduler thread S->L keeps the module's tables at fixed stack
** slots (SLOT_*), so the hot path reaches them without a lookup.
*/
#ifndef CORIO_BINDING_H
#define CORIO_BINDING_H

#include <lua.h>
#include <lauxlib.h>
#include "corio.h"

/* fixed slots at the bottom of S->L's stack */
#define SLOT_LIVE   1   /* array of live tasks (anchors them) */
#define SLOT_POOL   2   /* array of idle coroutines */
#define SLOT_STATE  3   /* the state userdata */
#define SLOT_SIDE   4   /* side tables: names, callbacks, groups, hooks... */
#define SLOT_TRAMP  5   /* the trampoline every task's coroutine starts in */
#define SLOT_TB     6   /* traceback of the error being raised in a task */
#define SLOT_MAIN   7   /* the main task of corio.run */
#define SLOT_CHAIN  8   /* error value being re-raised by an await */
#define SLOT_CHAINTB 9  /* ... and the awaited task's traceback */
#define SLOT_TASKMT 10  /* the Task metatable */
#define SLOT_DEADLOCK 11 /* the Deadlock error to deliver */
#define SLOT_ERR    12  /* the error SLOT_TB belongs to */
#define SLOT_ERRS   13  /* earlier errors of the same failure ({err, tb}...) */
#define NSLOTS      13

/* uservalue indexes of the state userdata */
#define SUV_THREAD  1   /* S->L, anchored */

/* keys of the side table (SLOT_SIDE, also registry[SIDE_REGKEY]) */
#define SIDE_REGKEY    "corio.side"
#define SIDE_NAMES     "names"      /* task -> name (weak keys) */
#define SIDE_CALLBACKS "callbacks"  /* task/future -> list of done callbacks */
#define SIDE_GROUPS    "groups"     /* lightuserdata(group) -> group ud */
#define SIDE_MESSAGES  "messages"   /* task -> cancel message (weak keys) */
#define SIDE_HANDLER   "handler"    /* unhandled error handler */
#define SIDE_HOOKS     "hooks"      /* functions set by the Lua layer */
#define SIDE_FAILED    "failed"     /* failed tasks not yet asked about (weak) */
#define SIDE_HOSTFUTURES "hostfutures" /* lightuserdata(f) -> Future (host.c) */

/* what a task waits on (for tostring and dump) */
enum { W_NONE, W_SLEEP, W_TASK, W_FUTURE, W_GROUP, W_GATHER,
       W_LOCK, W_EVENT, W_CONDITION, W_SEMAPHORE, W_BARRIER, W_QUEUE,
       W_CHANNEL, W_STREAM, W_CONNECT, W_SERVER, W_UDP, W_DNS, W_OTHER,
       W_PROCESS, W_SIGNAL, W_WORKER };

#define TASK_RETRIEVED 0x01  /* someone took its result or error */
#define TASK_REPORTED  0x02  /* its unhandled error was reported */
#define TASK_PACKED    0x04  /* results packed in a table in uservalue 1 */
#define TASK_HIDDEN    0x08  /* a loop callback: not listed, errors reported */
#define TASK_MAIN      0x10
#define TASK_HASCB     0x20  /* has done callbacks in the side table */
#define TASK_ERRPACK   0x40  /* error and traceback packed in uservalue 1 */
#define TASK_GATHERED  0x80  /* some gather may be waiting on it */

/* 88 bytes: with the userdata's header and uservalue, a block of 144. The
   core's two spare fields hold the id and the shuffle's note. */
typedef struct luatask {
  corio_task_t core;
  lua_State *co;    /* its coroutine once started (anchored by uservalue 1) */
  uint32_t live;    /* slot in the live table; 0 once finished */
  uint8_t nuv;      /* uservalues: fn/thread/results, then args (<= 251) */
  uint8_t n;        /* args before the start, results after the end */
  uint8_t what;     /* W_*, what it waits on */
  uint8_t bits;     /* TASK_* */
} luatask;
#define TASK_ID(t)   ((t)->core.done.user)  /* numbered from 1 in spawn order */
#define TASK_SUSP(t) ((t)->core.user)  /* shuffled mode: its wait_kind when it last suspended */
#define TASK_NPACKED 0xFF  /* n of a task whose results are packed in a table */
typedef char corio__luatask_fits[sizeof(luatask) <= 88 ? 1 : -1];

#define CORIO_BOXES 128  /* a power of two */

/* An I/O module's part in the runtime's ends (iomod.c). The runtime names
   no I/O module: each one (network, files, processes, threads...) adds one
   of these when the module is opened, and the runtime calls every one.
   - abandon: task t is dropped while it waits (end of a run, a task that
     can never finish); forget t wherever the module remembers it as a
     waiter. Called for every abandoned task, whatever it waits on.
   - shutdown: the run is ending. Phase 0 comes before the live tasks are
     cancelled (stop taking new work: servers stop accepting); phase 1
     after they have all ended (close what nobody closed).
   Either may be NULL. */
struct corio_State;
typedef struct corio_iomod {
  const char *name;
  void (*abandon)(struct corio_State *S, luatask *t);
  void (*shutdown)(lua_State *L, struct corio_State *S, int phase);
} corio_iomod;
#define CORIO_MAX_IOMODS 8

typedef struct corio_State {
  lua_State *L;          /* scheduler thread */
  corio_loop_t loop;
  uv_loop_t *host;       /* lent by corio_attach, or NULL */
  uv_async_t sigint;     /* woken by the SIGINT handler */
  luatask *current;      /* the task being stepped */
  luatask *main;
  int running;           /* a loop is open */
  int failed;            /* set by the trampoline: the step ended in error */
  int suspending;        /* the yield under way is corio's (a checkpoint) */
  int debug;
  int warned;            /* debug: the current step was reported slow */
  uint32_t nlive;
  uint32_t live_hi;      /* the most live tasks since the live table's last shrink */
  uint32_t npool;
  uint32_t next_id;
  uint64_t step_start;   /* debug: when the current step began */
  uv_signal_t sigusr1;   /* prints the dump, when the hook is set */
  void *gathers;         /* gathers that a failure must alert (gather.c) */
  int signals;           /* corio.run's SIGINT handler is installed */
  uint32_t run_id;       /* counts runs: objects of an ended run know it */
  uint32_t close_failed; /* loops whose uv_loop_close failed (introspect.c) */
  int command;           /* the corio command hosts the run (run.c) */
  /* host/: posts from other threads, the host's error hook, lifetimes */
  uv_async_t post_async;
  uv_mutex_t post_lock;  /* the post queue, post_open and refs */
  void *post_head, *post_tail;
  void *post_batch;      /* posts taken from the queue, not yet run */
  int post_open, holds;
  int refs;              /* the Lua state, corio_state_retain, closing handles */
  int closing;           /* a detach's handle closes have not all completed */
  uv_idle_t close_tail;  /* closed after the rest: its callback ends closing */
  corio_drop_cb post_drop;
  corio_error_hook error_hook;
  void *error_hook_ud;
  uv_thread_t loop_thread;  /* the thread that attached (debug checks) */
  uint64_t hostfutures;  /* host future handles given out (never reused) */
  void *detach;          /* an asynchronous detach under way (host/detach.c) */
  /* corio_interrupt (host/interrupt.c): the coroutine being stepped, read
     by other threads and signal handlers; interrupters count themselves
     in while they use it, and a step's end waits for them */
  lua_State *volatile stepping;
  volatile int interrupting;
  volatile int interrupt;  /* set and taken with atomics */
  uint64_t budget;       /* corio_set_budget, kept across attaches */
  int hostgroups;        /* host groups alive: spawns look for a parent's */
  /* test modes (modes.c), read from the environment at the first run */
  int modes_read;
  int gc_stress;         /* CORIO_GC_STRESS: a full collection before each step */
  uint64_t shuffle_seed; /* CORIO_SHUFFLE: 0 = off */
  uint64_t shuffle_rng;  /* the generator's state, reseeded at each run */
  corio_list_t group_waits;  /* corio_hostgroup_wait under way */
  const void *task_mt;   /* the Task and Future metatables, for a type */
  const void *future_mt; /* test by pointer on the hot paths */
  const void *stream_mt; /* the Stream metatable, likewise */
  void *stream_box[CORIO_BOXES];  /* Stream userdata type-tested lately (net.h) */
  corio_list_t corked;   /* streams holding small writes until the batch ends */
  const corio_iomod *iomods[CORIO_MAX_IOMODS];  /* iomod.c */
  int niomods;
  int inject;            /* checkpoint injection armed: 1 waiter, 2 root (checkpoint.c) */
  int inject_woken;      /* ... delivered once the waiter is woken */
  uint64_t inject_count, inject_at;
  uint32_t inject_pending;  /* id of the woken waiter to cancel before it resumes */
} corio_State;

#define TASK_MT   "corio.Task"
#define FUTURE_MT "corio.Future"
#define SCOPE_MT  "corio.Scope"
#define GROUP_MT  "corio.TaskGroup"
#define CANCEL_MT "corio.Cancelled"
#define HANDLE_MT "corio.Handle"
#define STATE_MT  "corio.State"

/* around each step (scheduler.c), for corio_interrupt */
static inline void corio__step_begin(corio_State *S, lua_State *co) {
  __atomic_store_n(&S->stepping, co, __ATOMIC_SEQ_CST);
}
static inline void corio__step_end(corio_State *S) {
  __atomic_store_n(&S->stepping, NULL, __ATOMIC_SEQ_CST);
  while (__atomic_load_n(&S->interrupting, __ATOMIC_SEQ_CST) != 0) {}
}

/* the state behind a corio function: its first upvalue (every function
   of the module is registered with it) */
static inline corio_State *corio__state(lua_State *L) {
  return *(corio_State **)lua_touserdata(L, lua_upvalueindex(1));
}
/* the state userdata holds a pointer: corio_State is malloc'ed, so it can
   outlive the Lua state while the host's loop closes its handles and
   while threads hold it to post (host/state.c) */
#define corio__state_of(ud) (*(corio_State **)(ud))

/* selfcheck.c: a method's self, or the error naming the public method
   ("queue:put") and the type ("Queue") */
void *corio__check_self(lua_State *L, int idx, const char *mt,
                        const char *method, const char *tname);
int corio__bad_self(lua_State *L, int idx, const char *method,
                    const char *tname);

/* task.c: a duration or a deadline in seconds (argument arg) as loop
   nanoseconds: NaN raises (naming the function), <= 0 is 0, infinity and
   anything past CORIO_NEVER_S is CORIO_NEVER_NS (never comes) */
#define CORIO_NEVER_S  1e9
#define CORIO_NEVER_NS ((uint64_t)1000000000000000000ULL)
uint64_t corio__check_ns(lua_State *L, int arg);

/* run_gc.c: corio.run's collector option */
enum { GC_KEEP, GC_GEN, GC_INC };
typedef struct corio_gcset {
  int mode, pause, stepmul;  /* pause, stepmul: -1 leaves it unchanged */
  int was_gen, was_pause, was_stepmul, was_running;  /* to put back */
} corio_gcset;
/* reads the setting at idx (nil: the default); raises naming corio.run */
void corio__gc_check(lua_State *L, int idx, corio_gcset *g);
/* applies it, noting what to put back; restore puts it back */
void corio__gc_apply(lua_State *L, corio_gcset *g);
void corio__gc_restore(lua_State *L, const corio_gcset *g);

/* alloc.c: corio's allocator for a state on Lua's own (1 if installed) */
int corio__alloc_install(lua_State *L);
int corio__alloc_stats(lua_State *L, size_t *carved, size_t *released);
void corio__alloc_trim(lua_State *L, uint64_t now);

/* iomod.c: the I/O modules' hooks, called by the runtime */
void corio__iomod_add(corio_State *S, const corio_iomod *m);
void corio__iomod_abandon(corio_State *S, luatask *t);
void corio__iomod_shutdown(lua_State *L, corio_State *S, int phase);

/* modes.c: CORIO_SHUFFLE, CORIO_GC_STRESS; called as each run opens its loop */
void corio__modes_open(corio_State *S);

/* scheduler.c */
void corio__step(corio_loop_t *loop, corio_task_t *ct);
luatask *corio__checkpoint(lua_State *L, corio_State *S, const char *fname);
int corio__suspend(lua_State *L, corio_State *S, lua_KFunction k);
void corio__wake_check(lua_State *L, corio_State *S, luatask *t);
void corio__push_cancel(lua_State *L, corio_State *S, luatask *t);
int corio__is_cancel(lua_State *L, int idx);
luatask *corio__spawn(lua_State *L, corio_State *S, int fidx, int nargs);
void corio__push_side(lua_State *L, corio_State *S, const char *key);
lua_State *corio__callback_thread(lua_State *L, corio_State *S);
void corio__report(lua_State *L, corio_State *S, int task_idx);
void corio__push_error(lua_State *L, int tidx);
void corio__push_traceback(lua_State *L, int tidx);
void corio__init_scheduler(lua_State *L, corio_State *S);

/* finish.c */
void corio__finish(corio_State *S, luatask *t, int tidx, int state, int n);
void corio__abandon(corio_State *S, luatask *t);
void corio__init_finish(lua_State *L);

/* task.c */
void corio__open_task(lua_State *L);
int corio__push_outcome(lua_State *L, int idx);
corio_future_t *corio__future_of(lua_State *L, corio_State *S, int idx,
                                 int *is_task);
void corio__run_callbacks(lua_State *L, corio_State *S, int idx);
void corio__push_task(lua_State *L, corio_State *S, luatask *t);
const char *corio__state_name(const luatask *t);
int corio__add_done_callback(lua_State *L, int done);
extern const luaL_Reg corio__task_funcs[];

/* future.c */
typedef struct luafuture {
  corio_future_t core;
  int n;            /* results */
  uint8_t packed;   /* more than one result: a table in uservalue 1 */
} luafuture;
void corio__open_future(lua_State *L);
int corio__future_new(lua_State *L);
int corio__future_outcome(lua_State *L, int idx);
extern const luaL_Reg corio__future_funcs[];

/* run.c */
void corio__open_loop(lua_State *L, corio_State *S, uv_loop_t *uv);
void corio__finish_all(lua_State *L, corio_State *S);
int corio__close_loop(lua_State *L, corio_State *S);

/* host/ */
void corio__open_posts(corio_State *S);
void corio__close_posts(corio_State *S, int run);
int corio__host_close(corio_State *S);
corio_State *corio__new_state(void);
unsigned corio__options(lua_State *L);
void corio__hostgroup_inherit(lua_State *L, corio_State *S, int tidx);
void corio__hostgroup_close(corio_State *S);
int corio__state_gc(lua_State *L);
int corio__host_pcall(lua_State *L, corio_State *S, int nargs, const char *what);
void corio__host_error(lua_State *L, corio_State *S, const char *what);
void corio__call_hook(lua_State *L, corio_State *S);
void corio__open_run(lua_State *L);
extern const luaL_Reg corio__run_funcs[];
extern const luaL_Reg corio__introspect_funcs[];  /* introspect.c */

/* checkpoint.c (corio.testing.checkpoints) */
void corio__inject_spawn(lua_State *L, corio_State *S);
void corio__inject_step(corio_State *S, luatask *t);
void corio__inject_wake(corio_State *S, luatask *t);
extern const luaL_Reg corio__checkpoint_funcs[];

/* scope.c (timeouts, shields, groups) */
void corio__open_scope(lua_State *L);
extern const luaL_Reg corio__scope_funcs[];
void corio__group_record_error(lua_State *L, corio_State *S, luatask *t, int eidx);
void corio__group_record_replaced(lua_State *L, corio_State *S, luatask *t, int eidx);
/* the cause of the cancellation of scope `by` (not a task's root) for
   t's checkpoint: pushes its message (or nil) and returns 0; or, when the
   scope's maker returned without closing it, drops the scope, pushes the
   error that says so and returns 1 */
int corio__scope_cause(lua_State *L, corio_State *S, luatask *t, void *by);
/* t is finishing inside scopes it never left: drop them */
void corio__scopes_release(lua_State *L, corio_State *S, luatask *t);
/* a child of g has finished: a group nobody is inside any more (its body
   left or dropped) lets go of its anchor with its last child */
void corio__group_child_ended(lua_State *L, corio_State *S, corio_group_t *g);

/* gather.c */
void corio__gather_alert(corio_State *S);
extern const luaL_Reg corio__gather_funcs[];

/* queue.c */
extern const luaL_Reg corio__queue_funcs[];

/* coroutine.c */
extern const luaL_Reg corio__coroutine_funcs[];

/* net/: streams, TCP, Unix sockets, pipes, standard streams, UDP, DNS
   (their shared structs: net/net.h) */
extern const corio_iomod corio__net_iomod;
void corio__open_stream(lua_State *L);
void corio__open_tcp(lua_State *L);
extern const luaL_Reg corio__tcp_funcs[];
/* pipe.c (Unix sockets, pipes, standard streams), udp.c, dns.c */
void corio__open_pipe(lua_State *L);
extern const luaL_Reg corio__pipe_funcs[];
void corio__open_udp(lua_State *L);
extern const luaL_Reg corio__udp_funcs[];
/* tls/: corio.tls (OpenSSL; without it, functions that say so) */
void corio__open_tls(lua_State *L);
extern const luaL_Reg corio__tls_funcs[];
extern const luaL_Reg corio__tlsctx_funcs[];
extern const luaL_Reg corio__dns_funcs[];
void corio__streams_flush(corio_loop_t *loop);  /* the loop's after_batch */
/* net/procpipe.c, for processes: a pipe Stream that uv_spawn opens
   (alloc; then push, or discard if the spawn failed), the fd of a Stream
   (-1: not a Stream; -2: closed), closing one without waiting */
uv_pipe_t *corio__pipe_alloc(corio_State *S);
void corio__pipe_push(lua_State *L, uv_pipe_t *p);
void corio__pipe_discard(uv_pipe_t *p);
int corio__stream_fileno(lua_State *L, int idx);
void corio__stream_close_at(lua_State *L, int idx);

/* os/: processes (corio.exec) and signals (corio.signal) */
extern const corio_iomod corio__proc_iomod;
extern const corio_iomod corio__signal_iomod;
void corio__open_process(lua_State *L);
void corio__open_signal(lua_State *L);
extern const luaL_Reg corio__process_funcs[];
extern const luaL_Reg corio__signal_funcs[];

/* os/thread.c: worker threads (corio.to_thread, corio.workers); st is the
   state userdata's index, the module table at the top */
extern const corio_iomod corio__thread_iomod;
void corio__open_thread(lua_State *L, int st);

/* os/: files (corio.fs; their shared structs: os/fs.h) */
extern const corio_iomod corio__fs_iomod;
void corio__open_fs(lua_State *L, int st);  /* pushes the corio.fs table */

#endif
