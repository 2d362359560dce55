/*
** host_errors.c: every error corio runs into on the host's behalf reaches
** the host's hook through one protected path: a post callback that
** raises, a done callback that raises, an unhandled task error, a hook
** that raises itself. Nothing aborts the host.
*/
#include "host_test.h"

static int calls;
static char msg[256], from[64];
static int traceback;

static void hook(lua_State *L, void *ud) {
  (void)ud;
  calls++;
  snprintf(msg, sizeof msg, "%s", lua_isstring(L, -3) ? lua_tostring(L, -3) : "?");
  traceback = lua_isstring(L, -2);
  snprintf(from, sizeof from, "%s",
           lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : luaL_typename(L, -1));
}

static void raising_post(lua_State *L, void *payload) {
  (void)payload;
  luaL_error(L, "post broke");
}

static int after;
static void next_post(lua_State *L, void *payload) {
  (void)L; (void)payload;
  after++;
}

static void test_post_error(void) {
  uv_loop_t loop;
  lua_State *L;
  CHECK(uv_loop_init(&loop) == 0);
  L = host_attached(&loop);
  corio_set_error_hook(L, hook, NULL);
  calls = after = 0;
  CHECK(corio_post(corio_state(L), raising_post, NULL) == 0);
  CHECK(corio_post(corio_state(L), next_post, NULL) == 0);
  corio_hold(corio_state(L));
  CHECK(uv_run(&loop, UV_RUN_NOWAIT) >= 0);
  corio_release(corio_state(L));
  CHECK(calls == 1 && strstr(msg, "post broke") != NULL);
  CHECK(strcmp(from, "post") == 0 && traceback);
  CHECK(after == 1);                              /* the next post still ran */
  host_close(L, &loop);
}

static void test_done_callback_error(void) {
  uv_loop_t loop;
  lua_State *L;
  CHECK(uv_loop_init(&loop) == 0);
  L = host_attached(&loop);
  corio_set_error_hook(L, hook, NULL);
  calls = 0;
  host_spawn(L, "local t = corio.spawn(function() return 1 end)"
                " t:add_done_callback(function() error('callback broke', 0) end)"
                " t:await() corio.sleep(0) ok = 1");
  CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(host_int(L, "ok") == 1);
  CHECK(calls == 1 && strcmp(msg, "callback broke") == 0);
  CHECK(strcmp(from, "done callback") == 0 && traceback);
  host_close(L, &loop);
}

static void test_task_error(void) {
  uv_loop_t loop;
  lua_State *L;
  CHECK(uv_loop_init(&loop) == 0);
  L = host_attached(&loop);
  corio_set_error_hook(L, hook, NULL);
  calls = 0;
  host_spawn(L, "error('task broke', 0)");
  CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(corio_detach(L) == 0);                   /* reports what nobody asked about */
  CHECK(calls == 1 && strcmp(msg, "task broke") == 0);
  CHECK(strcmp(from, "userdata") == 0 && traceback);  /* the Task */
  CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
  lua_close(L);
  CHECK(uv_loop_close(&loop) == 0);
}

static void raising_hook(lua_State *L, void *ud) {
  (void)ud;
  calls++;
  luaL_error(L, "the hook broke too");
}

static void test_hook_raises(void) {
  uv_loop_t loop;
  lua_State *L;
  CHECK(uv_loop_init(&loop) == 0);
  L = host_attached(&loop);
  corio_set_error_hook(L, raising_hook, NULL);
  calls = 0;
  CHECK(corio_post(corio_state(L), raising_post, NULL) == 0);
  host_spawn(L, "error('task broke', 0)");
  CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
  host_close(L, &loop);
  CHECK(calls == 2);
}

/* without a hook, a post error is printed and the host goes on */
static void test_post_error_without_hook(void) {
  uv_loop_t loop;
  lua_State *L;
  CHECK(uv_loop_init(&loop) == 0);
  L = host_attached(&loop);
  after = 0;
  CHECK(corio_post(corio_state(L), raising_post, NULL) == 0);
  CHECK(corio_post(corio_state(L), next_post, NULL) == 0);
  host_close(L, &loop);
  CHECK(after == 1);
}

/* an error in a __gc metamethod reaches the hook (Lua only warns, and
   warnings are off by default) */
static void test_gc_error(void) {
  uv_loop_t loop;
  lua_State *L;
  CHECK(uv_loop_init(&loop) == 0);
  L = host_attached(&loop);
  corio_set_error_hook(L, hook, NULL);
  calls = 0;
  host_do(L, "setmetatable({}, {__gc = function() error('gc broke', 0) end})");
  lua_gc(L, LUA_GCCOLLECT);
  corio_hold(corio_state(L));
  CHECK(uv_run(&loop, UV_RUN_NOWAIT) >= 0);
  corio_release(corio_state(L));
  CHECK(calls == 1 && strstr(msg, "gc broke") != NULL);
  CHECK(strcmp(from, "__gc") == 0);
  host_do(L, "setmetatable({}, {__gc = function() error('at close', 0) end})");
  host_close(L, &loop);                           /* one at lua_close: stderr */
}

int main(void) {
  TEST_MAIN_BEGIN();
  RUN(test_post_error);
  RUN(test_done_callback_error);
  RUN(test_task_error);
  RUN(test_hook_raises);
  RUN(test_post_error_without_hook);
  RUN(test_gc_error);
  TEST_MAIN_END();
}
