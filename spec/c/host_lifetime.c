/*
** host_lifetime.c: corio's state against the host's lifetimes: lua_close
** without a detach, posting after the Lua state is gone, posts accepted
** before a detach, attaching again while the previous closes are pending.
*/
#include "host_test.h"

static int ran, dropped;

static void count_post(lua_State *L, void *payload) {
  (void)L;
  ran++;
  free(payload);
}

static void count_drop(corio_post_cb cb, void *payload) {
  CHECK(cb == count_post);
  dropped++;
  free(payload);
}

/* lua_close without corio_detach: the state's finaliser detaches; the
   host's loop then finishes the closes without touching freed memory */
static void test_lua_close_without_detach(void) {
  uv_loop_t loop;
  lua_State *L;
  int i;
  CHECK(uv_loop_init(&loop) == 0);
  L = host_attached(&loop);
  for (i = 0; i < 10; i++) {
    host_spawn(L, "corio.sleep(100)");
    host_spawn(L, "corio.future():await()");
  }
  CHECK(uv_run(&loop, UV_RUN_NOWAIT) >= 0);
  lua_close(L);
  CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(uv_loop_close(&loop) == 0);
}

/* a retained state outlives lua_close: posts get CORIO_ECLOSED */
static void test_post_after_close(void) {
  uv_loop_t loop;
  lua_State *L;
  corio_state_t *S;
  CHECK(uv_loop_init(&loop) == 0);
  L = host_attached(&loop);
  S = corio_state_retain(corio_state(L));
  lua_close(L);                                  /* no detach */
  CHECK(corio_post(S, count_post, NULL) == CORIO_ECLOSED);
  CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(corio_post(S, count_post, NULL) == CORIO_ECLOSED);
  corio_state_release(S);
  CHECK(uv_loop_close(&loop) == 0);
}

/* posts accepted before a detach run at the detach, exactly once */
static void test_posts_run_at_detach(void) {
  uv_loop_t loop;
  lua_State *L;
  int i;
  CHECK(uv_loop_init(&loop) == 0);
  L = host_attached(&loop);
  ran = dropped = 0;
  corio_set_post_drop(corio_state(L), count_drop);
  for (i = 0; i < 5; i++)
    CHECK(corio_post(corio_state(L), count_post, malloc(16)) == 0);
  CHECK(corio_detach(L) == 0);
  CHECK(ran == 5 && dropped == 0);
  CHECK(corio_post(corio_state(L), count_post, NULL) == CORIO_ECLOSED);
  CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
  lua_close(L);
  CHECK(ran == 5 && dropped == 0);
  CHECK(uv_loop_close(&loop) == 0);
}

/* the same when the detach comes from inside a post: the rest of the
   batch and what came after run once each */
static uv_loop_t *detach_loop;
static void detach_post(lua_State *L, void *payload) {
  (void)payload;
  ran++;
  CHECK(corio_detach(L) == 0);
}

static void test_detach_from_a_post(void) {
  uv_loop_t loop;
  lua_State *L;
  int i;
  CHECK(uv_loop_init(&loop) == 0);
  detach_loop = &loop;
  L = host_attached(&loop);
  ran = dropped = 0;
  corio_set_post_drop(corio_state(L), count_drop);
  CHECK(corio_post(corio_state(L), count_post, malloc(16)) == 0);
  CHECK(corio_post(corio_state(L), detach_post, NULL) == 0);
  for (i = 0; i < 5; i++)
    CHECK(corio_post(corio_state(L), count_post, malloc(16)) == 0);
  corio_hold(corio_state(L));
  CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);    /* the posts, the detach, the closes */
  CHECK(ran == 7 && dropped == 0);
  lua_close(L);
  CHECK(uv_loop_close(&loop) == 0);
}

/* posts still queued when the Lua state closes without a detach reach
   the drop callback, exactly once (the payloads are freed there) */
static void test_posts_dropped_at_lua_close(void) {
  uv_loop_t loop;
  lua_State *L;
  int i;
  CHECK(uv_loop_init(&loop) == 0);
  L = host_attached(&loop);
  ran = dropped = 0;
  corio_set_post_drop(corio_state(L), count_drop);
  for (i = 0; i < 5; i++)
    CHECK(corio_post(corio_state(L), count_post, malloc(16)) == 0);
  lua_close(L);
  CHECK(ran == 0 && dropped == 5);
  CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(ran == 0 && dropped == 5);
  CHECK(uv_loop_close(&loop) == 0);
}

/* attaching again before the loop has run the closes: CORIO_EBUSY; after
   it, the same state attaches and runs tasks again */
static void test_reattach(void) {
  uv_loop_t loop;
  lua_State *L;
  int round;
  CHECK(uv_loop_init(&loop) == 0);
  L = host_attached(&loop);
  for (round = 1; round <= 3; round++) {
    host_do(L, "n = 0");
    host_spawn(L, "corio.sleep(0.001); n = n + 1");
    CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
    CHECK(host_int(L, "n") == 1);
    CHECK(corio_detach(L) == 0);
    CHECK(corio_attach(L, &loop) == CORIO_EBUSY);
    CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
    if (round < 3) CHECK(corio_attach(L, &loop) == 0);
  }
  lua_close(L);
  CHECK(uv_loop_close(&loop) == 0);
}

/* lua_close without a detach while a TCP server has live connections
   (handlers waiting to read, a task waiting for the server to close):
   nothing leaks (under ASan, LeakSanitizer checks at exit), the loop
   finishes and closes */
static void test_lua_close_with_live_server(void) {
  uv_loop_t loop;
  lua_State *L;
  int i;
  CHECK(uv_loop_init(&loop) == 0);
  L = host_attached(&loop);
  host_spawn(L, "srv = assert(corio.serve('127.0.0.1', 0, function(s)\n"
                "  served = (served or 0) + 1; s:read_line() end))\n"
                "local _, port = srv:address()\n"
                "corio.spawn(function() srv:wait_closed() end)\n"
                "clients = {}\n"
                "for i = 1, 3 do clients[i] = assert(corio.connect('127.0.0.1', port)) end\n"
                "while (served or 0) < 3 do corio.sleep(0.001) end\n"
                "connected = 1\n"
                "corio.sleep(1000)");
  for (i = 0; i < 10000 && host_int(L, "connected") == 0; i++)
    CHECK(uv_run(&loop, UV_RUN_ONCE) >= 0);
  CHECK(host_int(L, "connected") == 1);
  lua_close(L);
  CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(uv_loop_close(&loop) == 0);
}

int main(void) {
  TEST_MAIN_BEGIN();
  RUN(test_lua_close_without_detach);
  RUN(test_post_after_close);
  RUN(test_posts_run_at_detach);
  RUN(test_detach_from_a_post);
  RUN(test_posts_dropped_at_lua_close);
  RUN(test_reattach);
  RUN(test_lua_close_with_live_server);
  TEST_MAIN_END();
}
