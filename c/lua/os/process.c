/*
** process.c: the Process type (corio.exec, in process_spawn.c): waiting
** for a child, signalling it, terminating it when the task waiting on it
** is cancelled or the scope owning it ends, and the run's end, which
** terminates and reaps every child still running.
**
** A Process userdata holds a pointer to a malloc'd struct embedding the
** uv_process_t. libuv reaps the child and calls back however long after
** the userdata is garbage, so the struct lives until both the handle's
** close callback has run and the userdata is gone: whichever comes
** second frees it. A child whose Process is collected keeps running
** until it exits or the run ends.
**
** Termination: SIGTERM, then SIGKILL once kill_after seconds have passed
** (a core timer); kill_after 0 sends SIGKILL at once.
*/
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include "process.h"

/* ------------------------------------------------------------ the list */

static proclist *get_list(lua_State *L) {
  proclist *pl;
  lua_getfield(L, LUA_REGISTRYINDEX, PROC_REGKEY);
  pl = (proclist *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  return pl;
}

/* ------------------------------------------------------------ lifetime */

static void proc_free(proc *p) {
  free(p);
}

void corio__proc_on_closed(uv_handle_t *h) {
  proc *p = (proc *)h->data;
  p->closed = 1;
  if (p->gone) proc_free(p);
}

static void on_child_exit(uv_process_t *h, int64_t status, int termsig) {
  proc *p = (proc *)h->data;
  p->status = status;
  p->termsig = termsig;
  p->running = 0;
  corio__list_remove(&p->node);
  p->list->nrunning--;
  corio_timer_stop(&p->S->loop, &p->killer);
  uv_close((uv_handle_t *)h, corio__proc_on_closed);
  corio_future_finish(&p->S->loop, &p->exited, CORIO_DONE);
}

static void on_kill_after(corio_loop_t *loop, corio_timer_t *timer) {
  proc *p = corio__container_of(timer, proc, killer);
  (void)loop;
  if (p->running) uv_process_kill(&p->handle, SIGKILL);
}

/* SIGTERM now, SIGKILL after kill_after (once) */
void corio__proc_terminate(proc *p) {
  corio_loop_t *loop = &p->S->loop;
  if (!p->running || p->terminating) return;
  p->terminating = 1;
  if (p->kill_after == 0) {
    uv_process_kill(&p->handle, SIGKILL);
    return;
  }
  uv_process_kill(&p->handle, SIGTERM);
  corio_loop_update_time(loop);
  corio_timer_start(loop, &p->killer, loop->now + p->kill_after);
}

proc *corio__proc_new(corio_State *S, lua_State *L) {
  proc *p = (proc *)calloc(1, sizeof *p);
  if (p == NULL) return NULL;
  p->S = S;
  p->list = get_list(L);
  corio__list_init(&p->node);
  corio_future_init(&p->exited);
  corio_timer_init(&p->killer, on_kill_after);
  p->closed = 1;  /* until a handle is open */
  p->handle.data = p;
  return p;
}

/* the spawn made the handle: the child runs */
void corio__proc_started(proc *p) {
  p->closed = 0;
  p->running = 1;
  p->pid = p->handle.pid;
  uv_unref((uv_handle_t *)&p->handle);  /* ref'd while a task waits */
  corio__list_push(&p->list->running, &p->node);
  p->list->nrunning++;
}

uv_exit_cb corio__proc_exit_cb(void) {
  return on_child_exit;
}

/* ------------------------------------------------------------ methods */

static proc *check_proc(lua_State *L, const char *method) {
  proc *p = *(proc **)corio__check_self(L, 1, PROCESS_MT, method, "Process");
  return p;
}

/* code, signal name: exit status (128 + n when killed by signal n) */
static int push_status(lua_State *L, proc *p) {
  if (p->termsig != 0) {
    const char *name = corio__signal_name(p->termsig);
    lua_pushinteger(L, 128 + p->termsig);
    if (name != NULL) lua_pushstring(L, name);
    else lua_pushinteger(L, p->termsig);
    return 2;
  }
  lua_pushinteger(L, (lua_Integer)p->status);
  return 1;
}

static int wait_k(lua_State *L, int status, lua_KContext ctx);

/* the task waits for the exit: the Process at 1, and at 2 whether a
   cancellation is to be raised once the child has exited */
static int wait_exit(lua_State *L, corio_State *S, luatask *t, proc *p) {
  if (p->nwait++ == 0) uv_ref((uv_handle_t *)&p->handle);
  corio_task_await(&S->loop, &t->core, &p->exited);
  t->what = W_PROCESS;
  return corio__suspend(L, S, wait_k);
}

static int wait_k(lua_State *L, int status, lua_KContext ctx) {
  corio_State *S = (corio_State *)ctx;
  luatask *t = S->current;
  proc *p = *(proc **)lua_touserdata(L, 1);
  (void)status;
  if (--p->nwait == 0 && p->running) uv_unref((uv_handle_t *)&p->handle);
  if (t->core.wake == CORIO_WAKE_CANCEL && p->running) {
    /* cancelled: the child is terminated and reaped, then the
       cancellation goes on */
    t->core.wake = CORIO_WAKE_NORMAL;
    t->what = W_NONE;
    corio__proc_terminate(p);
    lua_pushboolean(L, 1);
    lua_replace(L, 2);
    return wait_exit(L, S, t, p);
  }
  corio__wake_check(L, S, t);  /* a deadlock, a cancellation as it exited */
  if (p->running) return wait_exit(L, S, t, p);
  if (lua_toboolean(L, 2)) {
    corio__push_cancel(L, S, t);
    return lua_error(L);
  }
  return push_status(L, p);
}

/* process:wait() (suspends) -> code [, signal]: the exit code, or 128 + n
   and the signal's name ("SIGTERM") when a signal ended it. Cancelled,
   it terminates the child (SIGTERM, SIGKILL after kill_after), waits for
   its end, and raises the cancellation. */
static int p_wait(lua_State *L) {
  corio_State *S = corio__state(L);
  proc *p = check_proc(L, "process:wait");
  luatask *t;
  if (p->detached)
    return luaL_error(L, "process:wait: a detached process is not waited for");
  t = corio__checkpoint(L, S, "process:wait");
  if (!p->running) return push_status(L, p);
  lua_settop(L, 1);
  lua_pushboolean(L, 0);
  return wait_exit(L, S, t, p);
}

/* process:kill([sig]) -> true, or nil, msg, code (ESRCH once it has
   exited). sig: a name ("SIGKILL", "KILL") or a number; SIGTERM by
   default. */
static int p_kill(lua_State *L) {
  proc *p = check_proc(L, "process:kill");
  int sig = lua_isnoneornil(L, 2) ? SIGTERM
            : corio__signal_check(L, 2, "process:kill");
  int err;
  if (p->detached) err = uv_kill(p->pid, sig);
  else if (!p->running) err = UV_ESRCH;
  else err = uv_process_kill(&p->handle, sig);
  if (err) {
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", uv_err_name(err), uv_strerror(err));
    lua_pushstring(L, uv_err_name(err));
    return 3;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int close_k(lua_State *L, int status, lua_KContext ctx) {
  corio_State *S = (corio_State *)ctx;
  luatask *t = S->current;
  proc *p = *(proc **)lua_touserdata(L, 1);
  (void)status;
  if (--p->nwait == 0 && p->running) uv_unref((uv_handle_t *)&p->handle);
  t->what = W_NONE;
  if (t->core.wake == CORIO_WAKE_CANCEL) t->core.wake = CORIO_WAKE_NORMAL;
  if (t->core.wake != CORIO_WAKE_NORMAL || !p->running) return 0;
  if (p->nwait++ == 0) uv_ref((uv_handle_t *)&p->handle);
  corio_task_await(&S->loop, &t->core, &p->exited);
  t->what = W_PROCESS;
  return corio__suspend(L, S, close_k);
}

/* process:close(): also its __close. Closes its pipes, terminates the
   child if it still runs, and waits for its end (a wait that
   cancellation does not interrupt: the kill timer bounds it). Outside a
   task, the child is signalled and reaped later. */
static int p_close(lua_State *L) {
  corio_State *S = corio__state(L);
  proc *p = check_proc(L, "process:close");
  luatask *t = S->current;
  int i;
  lua_settop(L, 1);
  for (i = 1; i <= 3; i++) {
    lua_getiuservalue(L, 1, i);
    corio__stream_close_at(L, -1);
    lua_pop(L, 1);
  }
  if (!p->running) return 0;
  corio__proc_terminate(p);
  if (t == NULL || !lua_isyieldable(L)) return 0;
  if (p->nwait++ == 0) uv_ref((uv_handle_t *)&p->handle);
  corio_task_await(&S->loop, &t->core, &p->exited);
  t->what = W_PROCESS;
  return corio__suspend(L, S, close_k);
}

static int p_gc(lua_State *L) {
  proc **box = (proc **)lua_touserdata(L, 1);
  proc *p = *box;
  if (p == NULL) return 0;
  *box = NULL;
  p->gone = 1;
  if (p->closed) proc_free(p);
  return 0;
}

/* "process 1234 (running)", "(exited 0)", "(killed by SIGTERM)",
   "(detached)" */
static int p_tostring(lua_State *L) {
  proc *p = *(proc **)luaL_checkudata(L, 1, PROCESS_MT);
  if (p == NULL) lua_pushliteral(L, "process (gone)");
  else if (p->detached) lua_pushfstring(L, "process %d (detached)", p->pid);
  else if (p->running) lua_pushfstring(L, "process %d (running)", p->pid);
  else if (p->termsig != 0) {
    const char *name = corio__signal_name(p->termsig);
    lua_pushfstring(L, "process %d (killed by %s)", p->pid,
                    name != NULL ? name : "a signal");
  }
  else lua_pushfstring(L, "process %d (exited %d)", p->pid, (int)p->status);
  return 1;
}

/* process.pid, .stdin, .stdout, .stderr, and the methods */
static int p_index(lua_State *L) {
  proc *p = *(proc **)lua_touserdata(L, 1);  /* __index of a Process */
  const char *k = lua_tostring(L, 2);
  if (k != NULL && lua_type(L, 2) == LUA_TSTRING) {
    if (strcmp(k, "pid") == 0 && p != NULL) {
      lua_pushinteger(L, p->pid);
      return 1;
    }
    if (strcmp(k, "stdin") == 0) return lua_getiuservalue(L, 1, 1), 1;
    if (strcmp(k, "stdout") == 0) return lua_getiuservalue(L, 1, 2), 1;
    if (strcmp(k, "stderr") == 0) return lua_getiuservalue(L, 1, 3), 1;
  }
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(1));
  return 1;
}

static const luaL_Reg proc_methods[] = {
  {"wait", p_wait},
  {"kill", p_kill},
  {"close", p_close},
  {NULL, NULL}
};

/* ------------------------------------------------------------ run's end */

/* The run's end, once every task has finished: each child still running
   is terminated (as a cancelled wait would) and reaped. */
static void proc_shutdown(lua_State *L, corio_State *S, int phase) {
  proclist *pl = get_list(L);
  corio_list_t *n;
  if (phase != 1 || pl == NULL) return;
  for (n = pl->running.next; n != &pl->running; n = n->next) {
    proc *p = corio__container_of(n, proc, node);
    uv_ref((uv_handle_t *)&p->handle);
    corio__proc_terminate(p);
  }
  while (pl->nrunning > 0)
    if (corio_loop_run(&S->loop, UV_RUN_ONCE) == 0 && pl->nrunning > 0)
      break;  /* cannot happen: a running child's handle is ref'd */
}

const corio_iomod corio__proc_iomod = { "process", NULL, proc_shutdown };

/* stack: state userdata at -1. The Process metatable and the list. */
void corio__open_process(lua_State *L) {
  proclist *pl;
  luaL_newmetatable(L, PROCESS_MT);
  lua_newtable(L);
  lua_pushvalue(L, -3);
  luaL_setfuncs(L, proc_methods, 1);
  lua_pushcclosure(L, p_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pushvalue(L, -2);
  lua_pushcclosure(L, p_close, 1);
  lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, p_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, p_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  pl = (proclist *)lua_newuserdatauv(L, sizeof *pl, 0);
  corio__list_init(&pl->running);
  pl->nrunning = 0;
  lua_setfield(L, LUA_REGISTRYINDEX, PROC_REGKEY);
}
