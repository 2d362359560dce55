/*
** process.h: what process.c (the Process type) and process_spawn.c
** (corio.exec) share.
*/
#ifndef CORIO_PROCESS_H
#define CORIO_PROCESS_H

#include "os.h"

#define PROC_REGKEY "corio.processes"
#define KILL_AFTER_NS 2000000000ULL  /* default kill_after: 2 s */

/* the children still running (not detached), for the run's end */
typedef struct proclist {
  corio_list_t running;
  size_t nrunning;
} proclist;

typedef struct proc {
  uv_process_t handle;
  corio_list_t node;     /* in list->running while the child runs */
  proclist *list;
  corio_State *S;
  corio_future_t exited; /* wakes the tasks waiting for the exit */
  corio_timer_t killer;  /* SIGKILL, kill_after after the SIGTERM */
  uint64_t kill_after;   /* ns */
  int64_t status;        /* exit status, once exited */
  int termsig;           /* the signal that ended it, or 0 */
  int pid;
  uint16_t nwait;        /* tasks waiting: the handle is ref'd while > 0 */
  uint8_t running;       /* spawned, not yet reaped */
  uint8_t detached;      /* a new session, not ours to wait for */
  uint8_t terminating;   /* SIGTERM sent, the kill timer armed */
  uint8_t gone;          /* the userdata was collected */
  uint8_t closed;        /* the handle's close callback ran (or no handle) */
} proc;

/* process.c */
proc *corio__proc_new(corio_State *S, lua_State *L);  /* NULL: out of memory */
void corio__proc_started(proc *p);
void corio__proc_terminate(proc *p);
uv_exit_cb corio__proc_exit_cb(void);
void corio__proc_on_closed(uv_handle_t *h);

#endif
