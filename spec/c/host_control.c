/*
** host_control.c: what a host controls: interrupting a plugin stuck in a
** loop (from another thread and from a signal handler), a time budget per
** loop iteration, and declining corio's process-wide side effects.
*/
#include <signal.h>
#include "host_test.h"

static corio_state_t *victim;

static void interrupter(void *arg) {
  (void)arg;
  uv_sleep(50);
  corio_interrupt(victim);
}

static int calls;
static char msg[256];
static void hook(lua_State *L, void *ud) {
  (void)ud;
  calls++;
  snprintf(msg, sizeof msg, "%s", lua_isstring(L, -3) ? lua_tostring(L, -3) : "?");
}

static void test_interrupt_from_a_thread(void) {
  uv_loop_t loop;
  uv_thread_t th;
  lua_State *L;
  CHECK(uv_loop_init(&loop) == 0);
  L = host_attached(&loop);
  victim = corio_state_retain(corio_state(L));
  corio_set_error_hook(L, hook, NULL);
  calls = 0;
  CHECK(corio_interrupt(victim) == 0);          /* nothing runs: no effect */
  host_spawn(L, "local t = corio.spawn(function() while true do end end)"
                " local ok, e = pcall(t.await, t) caught = tostring(e)"
                " after = 1");
  CHECK(uv_thread_create(&th, interrupter, NULL) == 0);
  CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(uv_thread_join(&th) == 0);
  CHECK(host_int(L, "after") == 1);
  CHECK(calls == 0);                             /* the awaiter handled it */
  lua_getglobal(L, "caught");
  CHECK(strstr(lua_tostring(L, -1), "interrupted") != NULL);
  lua_pop(L, 1);
  corio_state_release(victim);
  host_close(L, &loop);
}

#ifndef __SANITIZE_THREAD__
static void on_alarm(int sig) {
  (void)sig;
  corio_interrupt(victim);
}

static void test_interrupt_from_a_signal(void) {
  uv_loop_t loop;
  lua_State *L;
  CHECK(uv_loop_init(&loop) == 0);
  L = host_attached(&loop);
  corio_set_error_hook(L, hook, NULL);
  victim = corio_state(L);
  calls = 0;
  host_spawn(L, "local n = 0 while true do n = n + 1 end");
  signal(SIGALRM, on_alarm);
  alarm(1);
  CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
  signal(SIGALRM, SIG_DFL);
  host_close(L, &loop);
  CHECK(calls == 1 && strstr(msg, "interrupted") != NULL);
}
#endif

/* with a budget, an iteration of the host's loop runs only part of a
   long batch of ready tasks */
static void test_budget(void) {
  uv_loop_t loop;
  lua_State *L;
  int i, iterations = 0;
  CHECK(uv_loop_init(&loop) == 0);
  L = host_attached(&loop);
  CHECK(corio_set_budget(L, 5) == 0);
  host_do(L, "done = 0");
  for (i = 0; i < 20; i++)   /* each ready task burns about 2 ms */
    host_spawn(L, "local t = os.clock() while os.clock() - t < 0.002 do end done = done + 1");
  while (uv_run(&loop, UV_RUN_NOWAIT) != 0) {
    iterations++;
    CHECK(host_int(L, "done") < 20 || iterations > 1);
  }
  CHECK(host_int(L, "done") == 20);
  CHECK(iterations >= 3);          /* 40 ms of work in 5 ms slices */
  CHECK(corio_set_budget(L, 0) == 0);
  host_close(L, &loop);
}

static void test_keep_side_effects(void) {
  uv_loop_t loop;
  lua_State *L = luaL_newstate();
  struct sigaction sa;
  luaL_openlibs(L);
  signal(SIGPIPE, SIG_DFL);
  CHECK(corio_set_options(L, CORIO_KEEP_SIGPIPE | CORIO_KEEP_COROUTINE) == 0);
  CHECK(luaL_dostring(L, "package.path = '" CORIO_LUA_DIR "/?.lua;"
                      CORIO_LUA_DIR "/?/init.lua;' .. package.path") == LUA_OK);
  luaL_requiref(L, "corio.core", luaopen_corio_core, 0);
  lua_pop(L, 1);
  host_do(L, "local r = coroutine.resume corio = require 'corio'"
             " assert(coroutine.resume == r, 'coroutine.resume replaced')"
             " assert(corio.coroutine.resume ~= r)");
  CHECK(sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL);
  CHECK(corio_set_options(L, 0) == CORIO_EBUSY);
  CHECK(uv_loop_init(&loop) == 0);
  CHECK(corio_attach(L, &loop) == 0);
  host_close(L, &loop);
  L = host_state();                              /* the defaults */
  CHECK(sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN);
  host_do(L, "assert(coroutine.resume == corio.coroutine.resume)");
  lua_close(L);
}

int main(void) {
  TEST_MAIN_BEGIN();
  RUN(test_interrupt_from_a_thread);
#ifndef __SANITIZE_THREAD__  /* TSan holds signals back until code it instruments runs */
  RUN(test_interrupt_from_a_signal);
#endif
  RUN(test_budget);
  RUN(test_keep_side_effects);
  TEST_MAIN_END();
}
