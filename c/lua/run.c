/*
** run.c: corio.run and what surrounds a run: the clock, Ctrl-C, deadlock
** detection, the orderly shutdown (cancel and await every task left,
** close every handle, close the loop), and the host API for embedding.
** The collector setting of a run is run_gc.c's.
*/
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "binding.h"

static void on_closed(uv_handle_t *h) { (void)h; }


/* Ctrl-C. A raw handler, not a uv_signal: the second Ctrl-C must end the
   process even when a task never returns to the loop. The first wakes the
   loop (uv_async_send is async-signal-safe), which cancels the main task. */
static uv_async_t *volatile sigint_wake;
static volatile sig_atomic_t sigint_count;
static volatile sig_atomic_t sig_last;    /* SIGINT or SIGTERM */
static int sig_cancelled;                 /* the signal that cancelled main */
static struct sigaction sigint_saved, sigterm_saved;

static void on_sigint_raw(int signum) {
  sig_last = signum;
  if (++sigint_count >= 2 || sigint_wake == NULL) {
    signal(signum, SIG_DFL);  /* leave at once, the way the signal would */
    raise(signum);
    return;
  }
  uv_async_send(sigint_wake);
}

static void on_sigint(uv_async_t *h) {
  corio_State *S = (corio_State *)h->data;
  if (sigint_count >= 1 && S->main != NULL &&
      S->main->core.done.state == CORIO_PENDING &&
      !(S->main->core.flags & CORIO_TASK_CANCEL_REQUESTED)) {
    lua_State *L = S->L;
    corio__push_side(L, S, SIDE_MESSAGES);
    lua_pushlightuserdata(L, S->main);
    if (sig_last == SIGTERM) lua_pushliteral(L, "terminated (SIGTERM)");
    else lua_pushliteral(L, "interrupted (SIGINT)");
    lua_rawset(L, -3);
    lua_pop(L, 1);
    sig_cancelled = sig_last == SIGTERM ? SIGTERM : SIGINT;
    corio_task_cancel(&S->loop, &S->main->core);
  }
}

static void on_sigusr1(uv_signal_t *h, int signum) {
  corio_State *S = (corio_State *)h->data;
  lua_State *L = corio__callback_thread(S->L, S);
  int top = lua_gettop(L);
  (void)signum;
  corio__push_side(L, S, SIDE_HOOKS);
  if (lua_getfield(L, -1, "dump_signal") == LUA_TFUNCTION)
    lua_pcall(L, 0, 0, 0);
  lua_settop(L, top);
}

/* the loop's after_batch: gathered writes go out; a loop about to poll
   with nothing ready gives the allocator's surplus pages back */
static void after_batch(corio_loop_t *loop) {
  corio_State *S = (corio_State *)loop->data;
  corio__streams_flush(loop);
  if (loop->rcount == 0) corio__alloc_trim(S->L, loop->now);
}

void corio__open_loop(lua_State *L, corio_State *S, uv_loop_t *uv) {
  int err = corio_loop_init(&S->loop, uv);
  if (err) luaL_error(L, "corio: cannot start a loop (%s)", corio_strerror(err));
  S->loop.data = S;
  S->loop.step = corio__step;
  S->loop.after_batch = after_batch;
  corio__modes_open(S);
  S->running = 1;
  S->run_id++;
  S->loop_thread = uv_thread_self();
  corio__open_posts(S);
}

static void start_signals(corio_State *S) {
  struct sigaction sa;
  S->signals = 1;
  uv_async_init(S->loop.uv, &S->sigint, on_sigint);
  S->sigint.data = S;
  uv_unref((uv_handle_t *)&S->sigint);
  sigint_count = 0;
  sig_cancelled = 0;
  sigint_wake = &S->sigint;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigint_raw;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &sigint_saved);
  if (S->command) sigaction(SIGTERM, &sa, &sigterm_saved);
}

static void stop_signals(corio_State *S) {
  if (!S->signals) return;
  S->signals = 0;
  sigaction(SIGINT, &sigint_saved, NULL);
  if (S->command) sigaction(SIGTERM, &sigterm_saved, NULL);
  sigint_wake = NULL;
  if (!uv_is_closing((uv_handle_t *)&S->sigint))
    uv_close((uv_handle_t *)&S->sigint, on_closed);
}

static void start_dump_signal(corio_State *S) {
  lua_State *L = S->L;
  int on;
  corio__push_side(L, S, SIDE_HOOKS);
  on = lua_getfield(L, -1, "dump_signal") == LUA_TFUNCTION;
  lua_pop(L, 2);
  S->sigusr1.data = NULL;
  if (!on) return;
  uv_signal_init(S->loop.uv, &S->sigusr1);
  S->sigusr1.data = S;
  uv_signal_start(&S->sigusr1, on_sigusr1, SIGUSR1);
  uv_unref((uv_handle_t *)&S->sigusr1);
}


/* The Deadlock error is made while the tasks still wait, so its dump
   shows what each waits on; the wake delivers it. */
static void make_deadlock(lua_State *L, corio_State *S) {
  int top = lua_gettop(L);
  corio__push_side(L, S, SIDE_HOOKS);
  if (lua_getfield(L, -1, "deadlock") != LUA_TFUNCTION ||
      lua_pcall(L, 0, 1, 0) != LUA_OK) {
    lua_settop(L, top);
    lua_pushliteral(L, "deadlock: nothing can ever wake the waiting tasks");
  }
  lua_xmove(L, S->L, 1);
  lua_replace(S->L, SLOT_DEADLOCK);
  lua_settop(L, top);
}

/* Report the failed tasks nobody asked about (once each). */
static void report_failed(lua_State *L, corio_State *S) {
  int top = lua_gettop(L), i, n = 0;
  corio__push_side(L, S, SIDE_FAILED);             /* top+1 */
  lua_newtable(L);                                 /* top+2: the tasks */
  lua_pushnil(L);
  while (lua_next(L, top + 1)) {
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    lua_rawseti(L, top + 2, ++n);
  }
  for (i = 1; i <= n; i++) {
    luatask *t;
    lua_rawgeti(L, top + 2, i);
    t = (luatask *)lua_touserdata(L, -1);
    lua_pushnil(L);
    lua_rawset(L, top + 1);
    if (!(t->bits & (TASK_RETRIEVED | TASK_REPORTED))) {
      lua_rawgeti(L, top + 2, i);
      corio__report(L, S, lua_gettop(L));
      lua_pop(L, 1);
    }
  }
  lua_settop(L, top);
}

/* Cancel every task still alive and run until they have finished. A task
   that cannot finish (it waits, shielded, on something that will never
   come) is woken with a Deadlock error; one that still hangs on is
   abandoned, so the loop can close. */
void corio__finish_all(lua_State *L, corio_State *S) {
  int round;
  corio__iomod_shutdown(L, S, 0);  /* servers stop accepting first */
  for (round = 0; round < 4 && S->nlive > 0; round++) {
    uint32_t i;
    for (i = S->nlive; i >= 1; i--) {
      luatask *t;
      lua_rawgeti(S->L, SLOT_LIVE, i);
      t = (luatask *)lua_touserdata(S->L, -1);
      lua_pop(S->L, 1);
      if (round == 0) {
        if (!(t->core.flags & CORIO_TASK_CANCEL_REQUESTED) &&
            t->core.done.state == CORIO_PENDING) {
          corio__push_side(L, S, SIDE_MESSAGES);
          lua_pushlightuserdata(L, t);
          lua_pushliteral(L, "run ended");
          lua_rawset(L, -3);
          lua_pop(L, 1);
        }
        corio_task_cancel(&S->loop, &t->core);
      }
      else corio_task_wake(&S->loop, &t->core, CORIO_WAKE_DEADLOCK);
    }
    if (round == 0) make_deadlock(L, S);
    if (S->host == NULL) corio_loop_run(&S->loop, UV_RUN_DEFAULT);
    else {  /* the host's loop may hold handles of its own: don't block */
      int spins;
      for (spins = 0; spins < 1000 && S->loop.rcount > 0; spins++)
        corio_loop_run(&S->loop, UV_RUN_NOWAIT);
    }
  }
  while (S->nlive > 0) {
    luatask *t;
    lua_rawgeti(S->L, SLOT_LIVE, S->nlive);
    t = (luatask *)lua_touserdata(S->L, -1);
    lua_pop(S->L, 1);
    corio__abandon(S, t);
  }
  corio__iomod_shutdown(L, S, 1);  /* the streams nobody closed */
}

/* The scopes and task groups of the run that were never closed (made
   without <close>, or left by an error) stay anchored under their address
   while a task could reach them; no task of the run is left now. Cleared
   in place: nothing to allocate at a run's end. */
static void drop_anchors(lua_State *L) {
  int top = lua_gettop(L);
  lua_getfield(L, LUA_REGISTRYINDEX, SIDE_REGKEY);
  if (lua_type(L, -1) == LUA_TTABLE &&
      lua_getfield(L, -1, SIDE_GROUPS) == LUA_TTABLE) {
    lua_pushnil(L);
    while (lua_next(L, top + 2)) {
      lua_pop(L, 1);
      lua_pushvalue(L, -1);
      lua_pushnil(L);
      lua_rawset(L, top + 2);  /* clearing a field during a traversal is allowed */
    }
  }
  lua_settop(L, top);
}

int corio__close_loop(lua_State *L, corio_State *S) {
  int err;
  stop_signals(S);
  corio__close_posts(S, 1);  /* posts accepted run */
  if (S->sigusr1.data == S) {
    uv_close((uv_handle_t *)&S->sigusr1, on_closed);
    S->sigusr1.data = NULL;
  }
  err = corio__host_close(S);  /* the loop's handles and the post handle */
  if (err) S->close_failed++;
  S->running = 0;
  S->main = NULL;
  lua_pushnil(S->L);
  lua_replace(S->L, SLOT_MAIN);
  lua_pushnil(S->L);
  lua_replace(S->L, SLOT_DEADLOCK);
  drop_anchors(L);
  lua_pushnil(S->L);  /* the last error an await re-raised: not the next run's */
  lua_replace(S->L, SLOT_CHAIN);
  lua_pushnil(S->L);
  lua_replace(S->L, SLOT_CHAINTB);
  report_failed(L, S);
  return err;
}

/* does the traceback show a Lua frame (a line other than "\t[C]: ...")? */
static int has_lua_frame(const char *tb) {
  const char *p = strchr(tb, '\n');
  for (; p != NULL; p = strchr(p + 1, '\n'))
    if (strncmp(p + 1, "\t[C]", 4) != 0 && p[1] != '\0') return 1;
  return 0;
}

/* The run itself: main and its arguments on the stack; returns main's
   results, or raises its error. */
static int run_loop(lua_State *L) {
  corio_State *S = corio__state(L);
  luatask *m;
  int err, midx;
  corio__open_loop(L, S, NULL);
  start_signals(S);
  start_dump_signal(S);
  m = corio__spawn(L, S, 1, lua_gettop(L) - 1);
  midx = lua_gettop(L);
  m->bits |= TASK_MAIN | TASK_RETRIEVED;
  S->main = m;
  corio__push_side(L, S, SIDE_NAMES);
  lua_pushvalue(L, midx);
  lua_pushliteral(L, "main");
  lua_rawset(L, -3);
  lua_pop(L, 1);
  lua_pushvalue(L, midx);
  lua_xmove(L, S->L, 1);
  lua_replace(S->L, SLOT_MAIN);
  for (;;) {
    corio_loop_run(&S->loop, UV_RUN_DEFAULT);
    if (m->core.done.state != CORIO_PENDING) break;
    /* nothing is ready, no timer or I/O is pending: nothing can ever
       wake the main task */
    make_deadlock(L, S);
    if (corio_task_wake(&S->loop, &m->core, CORIO_WAKE_DEADLOCK) != 0) break;
  }
  corio__finish_all(L, S);
  err = corio__close_loop(L, S);
  if (err)
    return luaL_error(L, "corio.run: the loop did not close cleanly (%s)",
                      corio_strerror(err));
  if (m->core.done.state == CORIO_DONE) {
    lua_settop(L, midx);
    return corio__push_outcome(L, midx);
  }
  corio__push_error(L, midx);
  if (lua_type(L, -1) == LUA_TSTRING) {
    corio__push_traceback(L, midx);
    if (lua_isstring(L, -1)) {
      lua_pushliteral(L, "\n");
      lua_insert(L, -2);
      lua_concat(L, 3);
    }
    else lua_pop(L, 1);
  }
  else if (lua_type(L, -1) == LUA_TTABLE && !corio__is_cancel(L, -1) &&
           luaL_getmetafield(L, -1, "__name") == LUA_TSTRING) {
    /* corio's own error values (TimeoutError...) keep the main task's
       traceback in a field, for whoever prints them (the command does) */
    int ours = strncmp(lua_tostring(L, -1), "corio.", 6) == 0;
    lua_pop(L, 1);
    if (ours && lua_getfield(L, -1, "traceback") == LUA_TNIL) {
      lua_pop(L, 1);
      corio__push_traceback(L, midx);
      if (lua_isstring(L, -1) && has_lua_frame(lua_tostring(L, -1)))
        lua_setfield(L, -2, "traceback");
      else lua_pop(L, 1);  /* only C frames: it would tell nothing */
    }
    else lua_pop(L, 1);
  }
  return lua_error(L);
}

/* core.run_gc(gc, main, ...) -> main's results, or raises its error: the
   run under the collector setting gc (nil: the default), which is put
   back however the run ends. core.run_gc(gc) only checks gc. */
static int l_run_gc(lua_State *L) {
  corio_State *S = corio__state(L);
  corio_gcset g;
  int status;
  corio__gc_check(L, 1, &g);
  if (lua_isnone(L, 2)) return 0;  /* only the check (the command's child run) */
  if (S->running)
    return luaL_error(L, "corio.run: a loop is already running");
  lua_remove(L, 1);
  luaL_checktype(L, 1, LUA_TFUNCTION);
  corio__gc_apply(L, &g);
  lua_pushvalue(L, lua_upvalueindex(1));  /* the state, for corio__state */
  lua_pushcclosure(L, run_loop, 1);
  lua_insert(L, 1);
  status = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
  corio__gc_restore(L, &g);
  if (status != LUA_OK) return lua_error(L);
  return lua_gettop(L);
}

/* core.run(main, ...): the same under the default setting */
static int l_run(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_pushnil(L);
  lua_insert(L, 1);
  return l_run_gc(L);
}

/* corio.now(): the loop's clock, read afresh (as asyncio's loop.time()) */
static int l_now(lua_State *L) {
  corio_State *S = corio__state(L);
  uint64_t now = uv_hrtime();
  if (S->running) {  /* the loop's clock: a test's virtual clock moves it */
    corio_loop_update_time(&S->loop);
    now = S->loop.now;
  }
  lua_pushnumber(L, (lua_Number)now / 1e9);
  return 1;
}

/* ------------------------------------------------ corio.testing's hooks */

static corio_State *running_state(lua_State *L, const char *fname) {
  corio_State *S = corio__state(L);
  if (!S->running) luaL_error(L, "%s: no loop is running", fname);
  return S;
}

/* core.testing_autojump(on): the clock jumps whenever only timers could
   wake a task (corio_loop_set_autojump); for this run only */
static int l_testing_autojump(lua_State *L) {
  corio_State *S = running_state(L, "corio.testing.run");
  corio_loop_set_autojump(&S->loop, lua_toboolean(L, 1));
  return 0;
}

/* core.testing_advance(secs): the loop's clock moves forward */
static int l_testing_advance(lua_State *L) {
  corio_State *S = running_state(L, "corio.testing.advance");
  lua_Number secs = luaL_checknumber(L, 1);
  luaL_argcheck(L, secs >= 0 && secs < 1e9, 1, "a number of seconds >= 0 expected");
  corio_loop_advance(&S->loop, (uint64_t)(secs * 1e9));
  return 0;
}

/* core.testing_ready() -> how many tasks are ready to run */
static int l_testing_ready(lua_State *L) {
  corio_State *S = running_state(L, "corio.testing.wait_all_blocked");
  lua_pushinteger(L, (lua_Integer)S->loop.rcount);
  return 1;
}

static void walk_handle(uv_handle_t *h, void *arg) {
  lua_State *L = (lua_State *)arg;
  corio_State *S = corio__state(L);
  if (h == (uv_handle_t *)&S->loop.idle || h == (uv_handle_t *)&S->loop.timer ||
      h == (uv_handle_t *)&S->loop.jump || uv_is_closing(h) || !uv_has_ref(h))
    return;  /* corio's own, closing, or not keeping the loop alive */
  lua_pushstring(L, uv_handle_type_name(uv_handle_get_type(h)));
  lua_rawseti(L, -2, (lua_Integer)luaL_len(L, -2) + 1);
}

/* core.testing_handles() -> the type names of the libuv handles open on
   the loop that keep it alive (corio's own loop handles left out) */
static int l_testing_handles(lua_State *L) {
  corio_State *S = running_state(L, "corio.testing.run");
  lua_newtable(L);
  uv_walk(S->loop.uv, walk_handle, L);
  return 1;
}

/* core.testing_fds() -> {[fd] = what it is}, from /proc/self/fd, or nil
   where that is not available */
static int l_testing_fds(lua_State *L) {
  DIR *d = opendir("/proc/self/fd");
  struct dirent *e;
  int self;
  if (d == NULL) return 0;
  self = dirfd(d);
  lua_newtable(L);
  while ((e = readdir(d)) != NULL) {
    char path[64], target[256];
    ssize_t n;
    int fd;
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    fd = atoi(e->d_name);
    if (fd == self) continue;
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    n = readlink(path, target, sizeof target - 1);
    target[n > 0 ? n : 0] = '\0';
    lua_pushstring(L, target);
    lua_rawseti(L, -2, fd);
  }
  closedir(d);
  return 1;
}

static int l_running(lua_State *L) {
  lua_pushboolean(L, corio__state(L)->running);
  return 1;
}

/* core.spawn_hidden(fn, ...): a loop callback, run as an unlisted task */
static int l_spawn_hidden(lua_State *L) {
  corio_State *S = corio__state(L);
  luatask *t;
  if (!S->running)
    return luaL_error(L, "corio.loop: no running loop (start one with corio.run)");
  if (lua_type(L, 1) != LUA_TFUNCTION) {
    if (luaL_getmetafield(L, 1, "__call") == LUA_TNIL)
      return luaL_typeerror(L, 1, "function");
    lua_pop(L, 1);
  }
  t = corio__spawn(L, S, 1, lua_gettop(L) - 1);
  t->bits |= TASK_HIDDEN;
  return 1;
}

static void count_handle(uv_handle_t *h, void *arg) {
  if (!uv_is_closing(h)) (*(int *)arg)++;
}

static int l_stats(lua_State *L) {
  corio_State *S = corio__state(L);
  int handles = 0;
  if (S->running) uv_walk(S->loop.uv, count_handle, &handles);
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, S->running);
  lua_setfield(L, -2, "loops");
  lua_pushinteger(L, S->nlive);
  lua_setfield(L, -2, "tasks");
  lua_pushinteger(L, handles);
  lua_setfield(L, -2, "handles");
  lua_pushinteger(L, S->npool);
  lua_setfield(L, -2, "pooled");
  return 1;
}

static int l_set_error_handler(lua_State *L) {
  if (!lua_isnoneornil(L, 1)) luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 1);
  lua_getfield(L, LUA_REGISTRYINDEX, SIDE_REGKEY);
  lua_pushvalue(L, 1);
  lua_setfield(L, -2, SIDE_HANDLER);
  return 0;
}

/* core.set_hook(name, fn): deadlock, slow, dump_signal */
static int l_set_hook(lua_State *L) {
  corio_State *S = corio__state(L);
  luaL_checkstring(L, 1);
  lua_settop(L, 2);
  corio__push_side(L, S, SIDE_HOOKS);
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  lua_rawset(L, -3);
  return 0;
}

static int l_debug(lua_State *L) {
  corio_State *S = corio__state(L);
  if (!lua_isnone(L, 1)) S->debug = lua_toboolean(L, 1);
  lua_pushboolean(L, S->debug);
  return 1;
}

/* core.cancel_main([msg]): cancel the main task (loop:stop()) */
static int l_cancel_main(lua_State *L) {
  corio_State *S = corio__state(L);
  if (S->main == NULL || S->main->core.done.state != CORIO_PENDING) return 0;
  if (!lua_isnoneornil(L, 1) &&
      !(S->main->core.flags & CORIO_TASK_CANCEL_REQUESTED)) {
    corio__push_side(L, S, SIDE_MESSAGES);
    lua_pushlightuserdata(L, S->main);
    lua_pushvalue(L, 1);
    lua_rawset(L, -3);
  }
  corio_task_cancel(&S->loop, &S->main->core);
  return 0;
}

/* core.command_host(): the corio command hosts the runs from now on
   (SIGTERM cancels the main task as SIGINT does; corio.run inside the
   main task runs its function as a child) */
static int l_command_host(lua_State *L) {
  corio__state(L)->command = 1;
  return 0;
}

/* core.command_main() -> true inside the main task of a run that the
   corio command hosts */
static int l_command_main(lua_State *L) {
  corio_State *S = corio__state(L);
  lua_pushboolean(L, S->command && S->running && S->main != NULL &&
                  S->current == S->main);
  return 1;
}

/* core.interrupted() -> "SIGINT" or "SIGTERM" when that signal cancelled
   the main task of the last run, else nil */
static int l_interrupted(lua_State *L) {
  if (sig_cancelled == SIGTERM) lua_pushliteral(L, "SIGTERM");
  else if (sig_cancelled == SIGINT) lua_pushliteral(L, "SIGINT");
  else lua_pushnil(L);
  return 1;
}

const luaL_Reg corio__run_funcs[] = {
  {"run", l_run},
  {"run_gc", l_run_gc},
  {"now", l_now},
  {"running", l_running},
  {"spawn_hidden", l_spawn_hidden},
  {"stats", l_stats},
  {"set_error_handler", l_set_error_handler},
  {"set_hook", l_set_hook},
  {"debug", l_debug},
  {"cancel_main", l_cancel_main},
  {"command_host", l_command_host},
  {"command_main", l_command_main},
  {"interrupted", l_interrupted},
  {"testing_autojump", l_testing_autojump},
  {"testing_advance", l_testing_advance},
  {"testing_ready", l_testing_ready},
  {"testing_handles", l_testing_handles},
  {"testing_fds", l_testing_fds},
  {NULL, NULL}
};
