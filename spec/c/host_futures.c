/*
** host_futures.c: Futures the host resolves: twice is CORIO_EDONE, a
** stale handle never settles a newer Future, another thread is refused
** (debug builds), a state without corio gives no handle.
*/
#include "host_test.h"

static void test_resolve_twice(void) {
  uv_loop_t loop;
  lua_State *L;
  corio_promise_t *f;
  CHECK(uv_loop_init(&loop) == 0);
  L = host_attached(&loop);
  f = corio_future_new(L);
  CHECK(f != NULL);
  lua_setglobal(L, "job");
  host_spawn(L, "got = job:await()");
  lua_pushinteger(L, 7);
  CHECK(corio_future_resolve(L, f, 1) == 0);
  lua_pushinteger(L, 8);
  CHECK(corio_future_resolve(L, f, 1) == CORIO_EDONE);
  lua_pushliteral(L, "late");
  CHECK(corio_future_fail(L, f) == CORIO_EDONE);
  CHECK(lua_gettop(L) == 0);                     /* values popped all the same */
  CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(host_int(L, "got") == 7);
  CHECK(corio_future_resolve(L, (corio_promise_t *)(uintptr_t)99999, 0) == CORIO_EINVAL);
  host_close(L, &loop);
}

/* resolved, collected, and a new Future made in its place: the old
   handle does not reach the new Future */
static void test_stale_handle(void) {
  uv_loop_t loop;
  lua_State *L;
  corio_promise_t *old, *f;
  int i;
  CHECK(uv_loop_init(&loop) == 0);
  L = host_attached(&loop);
  old = corio_future_new(L);
  lua_pop(L, 1);
  CHECK(corio_future_resolve(L, old, 0) == 0);
  for (i = 0; i < 100; i++) {                    /* the old one's memory is reused */
    lua_gc(L, LUA_GCCOLLECT);
    f = corio_future_new(L);
    CHECK(f != old);
    lua_pop(L, 1);
    CHECK(corio_future_resolve(L, old, 0) == CORIO_EDONE);
    CHECK(corio_future_resolve(L, f, 0) == 0);
  }
  host_close(L, &loop);
}

/* a Future Lua cancelled: the host's resolve says so */
static void test_cancelled_by_lua(void) {
  uv_loop_t loop;
  lua_State *L;
  corio_promise_t *f;
  CHECK(uv_loop_init(&loop) == 0);
  L = host_attached(&loop);
  f = corio_future_new(L);
  lua_setglobal(L, "job");
  host_do(L, "job:cancel()");
  lua_pushinteger(L, 1);
  CHECK(corio_future_resolve(L, f, 1) == CORIO_EDONE);
  CHECK(lua_gettop(L) == 0);
  host_close(L, &loop);
}

#ifndef NDEBUG
static lua_State *thread_L;
static corio_promise_t *thread_f;
static int thread_err;
static void resolve_in_thread(void *arg) {
  (void)arg;
  thread_err = corio_future_resolve(thread_L, thread_f, 0);
}

/* debug builds refuse a resolve from another thread (and touch nothing) */
static void test_other_thread(void) {
  uv_loop_t loop;
  uv_thread_t th;
  CHECK(uv_loop_init(&loop) == 0);
  thread_L = host_attached(&loop);
  thread_f = corio_future_new(thread_L);
  lua_pop(thread_L, 1);
  CHECK(uv_thread_create(&th, resolve_in_thread, NULL) == 0);
  CHECK(uv_thread_join(&th) == 0);
  CHECK(thread_err == CORIO_EINVAL);
  CHECK(corio_future_resolve(thread_L, thread_f, 0) == 0);
  host_close(thread_L, &loop);
}
#endif

static void test_no_corio(void) {
  uv_loop_t loop;
  lua_State *L = luaL_newstate();
  CHECK(corio_future_new(L) == NULL);            /* no module: no handle, no panic */
  CHECK(corio_state(L) == NULL);
  CHECK(corio_attach(L, NULL) == CORIO_EINVAL);
  CHECK(corio_detach(L) == CORIO_EINVAL);
  lua_close(L);
  L = host_state();                              /* the module, no loop */
  CHECK(corio_future_new(L) == NULL);
  CHECK(lua_gettop(L) == 0);
  CHECK(uv_loop_init(&loop) == 0);
  CHECK(corio_attach(L, &loop) == 0);
  CHECK(corio_future_new(L) != NULL);
  lua_pop(L, 1);
  host_close(L, &loop);
}

int main(void) {
  TEST_MAIN_BEGIN();
  RUN(test_resolve_twice);
  RUN(test_stale_handle);
  RUN(test_cancelled_by_lua);
#ifndef NDEBUG
  RUN(test_other_thread);
#endif
  RUN(test_no_corio);
  TEST_MAIN_END();
}
