/*
** host_detach.c: detaching with cleanup that waits. Cleanup runs, with
** timers, until the host's deadline; what does not finish is named in one
** short message; the asynchronous form runs on the host's loop and calls
** back; a detach from inside a task is refused.
*/
#include "host_test.h"

static int hook_calls;
static char hook_msg[512];
static char hook_from[64];

static void hook(lua_State *L, void *ud) {
  (void)ud;
  hook_calls++;
  snprintf(hook_msg, sizeof hook_msg, "%s", luaL_tolstring(L, -3, NULL));
  lua_pop(L, 1);
  snprintf(hook_from, sizeof hook_from, "%s",
           lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : luaL_typename(L, -1));
}

/* 20 plugins whose <close> cleanup waits: shielded sleeps */
static const char *const SLOW_CLEANUP =
  "local _c <close> = setmetatable({}, {__close = function()"
  "  corio.shield(corio.sleep, %s); cleaned = cleaned + 1 end})"
  " corio.sleep(1000)";

static void spawn_slow(lua_State *L, int n, const char *secs) {
  char code[512];
  int i;
  snprintf(code, sizeof code, SLOW_CLEANUP, secs);
  host_do(L, "cleaned = 0");
  for (i = 0; i < n; i++) host_spawn(L, code);
}

static void test_cleanup_runs_with_timers(void) {
  uv_loop_t loop;
  lua_State *L;
  CHECK(uv_loop_init(&loop) == 0);
  L = host_attached(&loop);
  hook_calls = 0;
  corio_set_error_hook(L, hook, NULL);
  spawn_slow(L, 20, "0.01");
  CHECK(uv_run(&loop, UV_RUN_NOWAIT) >= 0);
  CHECK(corio_detach_wait(L, 10000) == 0);
  CHECK(host_int(L, "cleaned") == 20);
  CHECK(hook_calls == 0);
  CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
  lua_close(L);
  CHECK(uv_loop_close(&loop) == 0);
}

static void test_deadline_one_message(void) {
  uv_loop_t loop;
  lua_State *L;
  uint64_t t0;
  CHECK(uv_loop_init(&loop) == 0);
  L = host_attached(&loop);
  hook_calls = 0;
  corio_set_error_hook(L, hook, NULL);
  spawn_slow(L, 20, "100");
  host_spawn(L, "corio.current_task():set_name('stuck') corio.shield(corio.sleep, 100)");
  CHECK(uv_run(&loop, UV_RUN_NOWAIT) >= 0);
  t0 = uv_hrtime();
  CHECK(corio_detach_wait(L, 50) == CORIO_ETIMEDOUT);
  CHECK(uv_hrtime() - t0 >= MS(45));
  CHECK(uv_hrtime() - t0 < MS(5000));
  CHECK(host_int(L, "cleaned") == 0);
  CHECK(hook_calls == 1);                       /* one message, not 21 dumps */
  CHECK(strcmp(hook_from, "detach") == 0);
  CHECK(strstr(hook_msg, "21 tasks did not finish their cleanup within 50 ms") != NULL);
  CHECK(strstr(hook_msg, "and 16 more") != NULL);
  CHECK(strlen(hook_msg) < 200);
  CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
  lua_close(L);
  CHECK(uv_loop_close(&loop) == 0);
}

static int cb_calls, cb_status;
static char cb_msg[256];

static void on_detached(lua_State *L, int status, const char *unfinished, void *ud) {
  cb_calls++;
  cb_status = status;
  snprintf(cb_msg, sizeof cb_msg, "%s", unfinished ? unfinished : "");
  if (ud != NULL) lua_close(L);   /* the host may close the state here */
}

/* the asynchronous detach lets the host's loop run the cleanup, I/O and
   timers included, and calls back once */
static void test_async_detach(void) {
  uv_loop_t loop;
  lua_State *L;
  CHECK(uv_loop_init(&loop) == 0);
  L = host_attached(&loop);
  spawn_slow(L, 5, "0.01");
  CHECK(uv_run(&loop, UV_RUN_NOWAIT) >= 0);
  cb_calls = 0;
  CHECK(corio_detach_async(L, 10000, on_detached, NULL) == 0);
  CHECK(corio_detach_async(L, 10000, on_detached, NULL) == CORIO_EBUSY);
  CHECK(cb_calls == 0);
  CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(cb_calls == 1 && cb_status == 0 && cb_msg[0] == '\0');
  CHECK(host_int(L, "cleaned") == 5);
  lua_close(L);
  CHECK(uv_loop_close(&loop) == 0);
}

static void test_async_detach_deadline_and_close(void) {
  uv_loop_t loop;
  lua_State *L;
  CHECK(uv_loop_init(&loop) == 0);
  L = host_attached(&loop);
  spawn_slow(L, 3, "100");
  CHECK(uv_run(&loop, UV_RUN_NOWAIT) >= 0);
  cb_calls = 0;
  CHECK(corio_detach_async(L, 30, on_detached, (void *)1) == 0);
  CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);    /* lua_close happened in the callback */
  CHECK(cb_calls == 1 && cb_status == CORIO_ETIMEDOUT);
  CHECK(strstr(cb_msg, "3 tasks did not finish") != NULL);
  CHECK(uv_loop_close(&loop) == 0);
}

/* lua_close while an asynchronous detach is under way: no callback */
static void test_lua_close_during_async_detach(void) {
  uv_loop_t loop;
  lua_State *L;
  CHECK(uv_loop_init(&loop) == 0);
  L = host_attached(&loop);
  spawn_slow(L, 3, "100");
  CHECK(uv_run(&loop, UV_RUN_NOWAIT) >= 0);
  cb_calls = 0;
  CHECK(corio_detach_async(L, 10000, on_detached, NULL) == 0);
  lua_close(L);
  CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(cb_calls == 0);
  CHECK(uv_loop_close(&loop) == 0);
}

static int l_detach_now(lua_State *L) {
  lua_pushinteger(L, corio_detach(L));
  return 1;
}

static void test_detach_from_a_task(void) {
  uv_loop_t loop;
  lua_State *L;
  CHECK(uv_loop_init(&loop) == 0);
  L = host_attached(&loop);
  lua_register(L, "detach_now", l_detach_now);
  host_spawn(L, "got = detach_now()");
  CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(host_int(L, "got") == CORIO_EBUSY);
  host_close(L, &loop);
}

/* ------------------------------------------------ detach with open streams */

/* A server whose handler never reads, a client with bytes queued for it
   (written from outside a task: nothing waits), neither closed. */
static const char *const OPEN_STREAMS =
  "srv = assert(corio.serve('127.0.0.1', 0, function(s) held = s; corio.sleep(1000) end))\n"
  "local _, port = srv:address()\n"
  "client = assert(corio.connect('127.0.0.1', port))\n"
  "while not held do corio.sleep(0.001) end\n"
  "connected = 1\n"
  "corio.sleep(1000)";

static uv_check_t watch;
static int in_detach, nested;

/* runs once per iteration of the host's loop: never inside a detach */
static void on_watch(uv_check_t *h) {
  (void)h;
  if (in_detach) nested++;
}

static void open_streams(uv_loop_t *loop, lua_State *L) {
  int i;
  host_spawn(L, OPEN_STREAMS);
  for (i = 0; i < 10000 && host_int(L, "connected") == 0; i++)
    CHECK(uv_run(loop, UV_RUN_ONCE) >= 0);
  CHECK(host_int(L, "connected") == 1);
  host_do(L, "local chunk = string.rep('x', 1 << 20)\n"
             "for _ = 1, 32 do assert(client:write(chunk)) end");
  CHECK(uv_check_init(loop, &watch) == 0);
  CHECK(uv_check_start(&watch, on_watch) == 0);
  uv_unref((uv_handle_t *)&watch);
  in_detach = nested = 0;
}

static lua_State *detach_L;
static int detach_status;

static void on_detach_timer(uv_timer_t *h) {
  in_detach = 1;
  detach_status = corio_detach_wait(detach_L, 50);
  in_detach = 0;
  uv_close((uv_handle_t *)h, NULL);
  uv_close((uv_handle_t *)&watch, NULL);
}

/* the blocking detach from one of the host's callbacks (inside its
   uv_run) with a server, streams and queued bytes: the host's loop is
   never run from inside the detach; the closes finish on the host's loop */
static void test_detach_in_host_callback_with_streams(void) {
  uv_loop_t loop;
  uv_timer_t timer;
  lua_State *L;
  CHECK(uv_loop_init(&loop) == 0);
  L = host_attached(&loop);
  open_streams(&loop, L);
  detach_L = L;
  detach_status = -1;
  CHECK(uv_timer_init(&loop, &timer) == 0);
  CHECK(uv_timer_start(&timer, on_detach_timer, 0, 0) == 0);
  CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(detach_status == 0);
  CHECK(nested == 0);
  lua_close(L);
  CHECK(uv_loop_close(&loop) == 0);
}

static void on_detached_streams(lua_State *L, int status, const char *unfinished, void *ud) {
  (void)unfinished;
  (void)ud;
  cb_calls++;
  cb_status = status;
  uv_close((uv_handle_t *)&watch, NULL);
  lua_close(L);
}

/* the same with the asynchronous detach, the state closed in its callback */
static void test_async_detach_with_streams(void) {
  uv_loop_t loop;
  lua_State *L;
  CHECK(uv_loop_init(&loop) == 0);
  L = host_attached(&loop);
  open_streams(&loop, L);
  cb_calls = 0;
  CHECK(corio_detach_async(L, 5000, on_detached_streams, NULL) == 0);
  CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(cb_calls == 1 && cb_status == 0);
  CHECK(uv_loop_close(&loop) == 0);
}

int main(void) {
  TEST_MAIN_BEGIN();
  RUN(test_cleanup_runs_with_timers);
  RUN(test_deadline_one_message);
  RUN(test_async_detach);
  RUN(test_async_detach_deadline_and_close);
  RUN(test_lua_close_during_async_detach);
  RUN(test_detach_from_a_task);
  RUN(test_detach_in_host_callback_with_streams);
  RUN(test_async_detach_with_streams);
  TEST_MAIN_END();
}
