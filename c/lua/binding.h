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
       W_PROCESS, W_SIGNAL };

#define TASK_RETRIEVED 0x01  /* someone took its result or error */
#define TASK_REPORTED  0x02  /* its unhandled error was reported */
#define TASK_PACKED    0x04  /* results packed in a table in uservalue 1 */
#define TASK_HIDDEN    0x08  /* a loop callback: not listed, errors reported */
#define TASK_MAIN      0x10
#define TASK_HASCB     0x20  /* has done callbacks in the side table */
#define TASK_ERRPACK   0x40  /* error and traceback packed in uservalue 1 */
#define TASK_GATHERED  0x80  /* some gather may be waiting on it */

typedef struct luatask {
  corio_task_t core;
  lua_State *co;    /* its coroutine once started (anchored by uservalue 1) */
  uint32_t live;    /* slot in the live table; 0 once finished */
  uint32_t id;
  uint16_t nuv;     /* uservalues: fn/thread/results, then args */
  uint16_t n;       /* args before the start, results after the end */
  uint8_t what;     /* W_*, what it waits on */
  uint8_t bits;     /* TASK_* */
} luatask;

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
  /* host.c: posts from other threads, the host's error hook */
  uv_async_t post_async;
  uv_mutex_t post_lock;
  void *post_head, *post_tail;
  int post_open, holds;
  corio_error_hook error_hook;
  void *error_hook_ud;
  const void *task_mt;   /* the Task and Future metatables, for a type */
  const void *future_mt; /* test by pointer on the hot paths */
  const void *stream_mt; /* the Stream metatable, likewise */
  void *stream_box[CORIO_BOXES];  /* Stream userdata type-tested lately (net.h) */
  corio_list_t corked;   /* streams holding small writes until the batch ends */
  const corio_iomod *iomods[CORIO_MAX_IOMODS];  /* iomod.c */
  int niomods;
} corio_State;

#define TASK_MT   "corio.Task"
#define FUTURE_MT "corio.Future"
#define SCOPE_MT  "corio.Scope"
#define GROUP_MT  "corio.TaskGroup"
#define CANCEL_MT "corio.Cancelled"
#define HANDLE_MT "corio.Handle"
#define STATE_MT  "corio.State"

/* the state behind a corio function: its first upvalue (every function
   of the module is registered with it) */
static inline corio_State *corio__state(lua_State *L) {
  return (corio_State *)lua_touserdata(L, lua_upvalueindex(1));
}

/* selfcheck.c: a method's self, or the error naming the public method
   ("queue:put") and the type ("Queue") */
void *corio__check_self(lua_State *L, int idx, const char *mt,
                        const char *method, const char *tname);
int corio__bad_self(lua_State *L, int idx, const char *method,
                    const char *tname);

/* iomod.c: the I/O modules' hooks, called by the runtime */
void corio__iomod_add(corio_State *S, const corio_iomod *m);
void corio__iomod_abandon(corio_State *S, luatask *t);
void corio__iomod_shutdown(lua_State *L, corio_State *S, int phase);

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

/* host.c */
void corio__open_posts(corio_State *S);
void corio__close_posts(corio_State *S);
void corio__init_host(corio_State *S);
void corio__free_host(corio_State *S);
void corio__open_run(lua_State *L);
extern const luaL_Reg corio__run_funcs[];

/* scope.c (timeouts, shields, groups) */
void corio__open_scope(lua_State *L);
extern const luaL_Reg corio__scope_funcs[];
void corio__group_record_error(lua_State *L, corio_State *S, luatask *t, int eidx);
void corio__group_record_replaced(lua_State *L, corio_State *S, luatask *t, int eidx);

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

#endif
