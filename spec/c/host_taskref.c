/*
** host_taskref.c: a C handle on a Task: state, cancel, done callback,
** release; a stale or foreign handle is refused.
*/
#include "host_test.h"

static int done_calls, done_state;
static void on_done(lua_State *L, corio_taskref_t *r, int state, void *ud) {
  (void)ud;
  done_calls++;
  done_state = state;
  corio_taskref_release(L, r);
}

static corio_taskref_t *spawn_ref(lua_State *L, const char *code) {
  corio_taskref_t *r;
  CHECK(luaL_loadstring(L, code) == LUA_OK);
  CHECK(corio_spawn(L, 0) == 0);
  r = corio_taskref(L, -1);
  CHECK(r != NULL);
  lua_pop(L, 1);
  return r;
}

static void test_taskref(void) {
  uv_loop_t loop;
  lua_State *L;
  corio_taskref_t *a, *b, *c;
  CHECK(uv_loop_init(&loop) == 0);
  L = host_attached(&loop);
  lua_pushinteger(L, 1);
  CHECK(corio_taskref(L, -1) == NULL);            /* not a Task */
  lua_pop(L, 1);
  a = spawn_ref(L, "corio.sleep(0.01) return 1");
  b = spawn_ref(L, "corio.sleep(100)");
  c = spawn_ref(L, "error('c broke', 0)");
  lua_gc(L, LUA_GCCOLLECT);                      /* the handles keep the Tasks */
  CHECK(corio_taskref_state(L, a) == CORIO_PENDING);
  done_calls = 0;
  CHECK(corio_taskref_on_done(L, a, on_done, NULL) == 0);
  CHECK(corio_taskref_cancel(L, b) == 0);
  CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(done_calls == 1 && done_state == CORIO_DONE);
  CHECK(corio_taskref_state(L, a) == CORIO_EINVAL);  /* released in the callback */
  CHECK(corio_taskref_state(L, b) == CORIO_CANCELLED);
  CHECK(corio_taskref_state(L, c) == CORIO_FAILED);
  CHECK(corio_taskref_cancel(L, b) == CORIO_EDONE);
  CHECK(corio_taskref_on_done(L, c, on_done, NULL) == 0);  /* done: at once */
  CHECK(done_calls == 2 && done_state == CORIO_FAILED);
  corio_taskref_release(L, b);
  CHECK(corio_taskref_state(L, b) == CORIO_EINVAL);
  CHECK(lua_gettop(L) == 0);
  lua_pushnil(L);
  lua_setglobal(L, "x");
  host_close(L, &loop);
}

int main(void) {
  TEST_MAIN_BEGIN();
  RUN(test_taskref);
  TEST_MAIN_END();
}
