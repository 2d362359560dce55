/*
** host_group.c: groups of tasks a host owns: spawn into one (children
** join), cancel one without disturbing another, wait with a deadline
** through a callback while the host's loop keeps running, name the group
** of a failed task in the error hook.
*/
#include "host_test.h"

static const char *const PLUGIN =
  "local name = ... "
  "for i = 1, 3 do corio.spawn(function()"
  "  local _c <close> = setmetatable({}, {__close = function()"
  "    corio.shield(corio.sleep, 0.01) cleaned[name] = (cleaned[name] or 0) + 1 end})"
  "  while true do ticks[name] = (ticks[name] or 0) + 1 corio.sleep(0.001) end end) end "
  "corio.sleep(1000)";

static void spawn_plugin(lua_State *L, corio_hostgroup_t *g, const char *name) {
  CHECK(luaL_loadstring(L, PLUGIN) == LUA_OK);
  lua_pushstring(L, name);
  CHECK(corio_hostgroup_spawn(L, g, 1) == 0);
  lua_pop(L, 1);
}

static lua_Integer field(lua_State *L, const char *table, const char *key) {
  lua_Integer v;
  lua_getglobal(L, table);
  lua_getfield(L, -1, key);
  v = lua_tointeger(L, -1);
  lua_pop(L, 2);
  return v;
}

static int wait_calls, wait_status, host_ticks;
static char wait_msg[256];
static void on_wait(lua_State *L, corio_hostgroup_t *g, int status,
                    const char *unfinished, void *ud) {
  (void)L; (void)g;
  wait_calls++;
  wait_status = status;
  snprintf(wait_msg, sizeof wait_msg, "%s", unfinished ? unfinished : "");
  uv_stop((uv_loop_t *)ud);
}

static void on_host_tick(uv_timer_t *t) {
  (void)t;
  host_ticks++;
}

static void test_unload_one_plugin(void) {
  uv_loop_t loop;
  uv_timer_t tick;
  lua_State *L;
  corio_hostgroup_t *a, *b;
  lua_Integer b_before;
  CHECK(uv_loop_init(&loop) == 0);
  L = host_attached(&loop);
  host_do(L, "cleaned, ticks = {}, {}");
  a = corio_hostgroup_new(L, "a");
  b = corio_hostgroup_new(L, "b");
  spawn_plugin(L, a, "a");
  spawn_plugin(L, b, "b");
  while (field(L, "ticks", "a") < 3 || field(L, "ticks", "b") < 3)
    CHECK(uv_run(&loop, UV_RUN_ONCE) != 0);
  CHECK(corio_hostgroup_size(L, a) == 4 && corio_hostgroup_size(L, b) == 4);
  uv_timer_init(&loop, &tick);
  uv_timer_start(&tick, on_host_tick, 1, 1);
  host_ticks = wait_calls = 0;
  CHECK(corio_hostgroup_cancel(L, a) == 0);
  CHECK(corio_hostgroup_wait(L, a, 10000, on_wait, &loop) == 0);
  b_before = field(L, "ticks", "b");
  uv_run(&loop, UV_RUN_DEFAULT);                 /* until on_wait stops it */
  CHECK(wait_calls == 1 && wait_status == 0);
  CHECK(field(L, "cleaned", "a") == 3);           /* a's cleanup ran */
  CHECK(corio_hostgroup_size(L, a) == 0);
  CHECK(corio_hostgroup_size(L, b) == 4);         /* b was not disturbed */
  CHECK(field(L, "cleaned", "b") == 0);
  CHECK(field(L, "ticks", "b") > b_before);       /* and kept running */
  CHECK(host_ticks > 0);                          /* the host's loop ran meanwhile */
  uv_close((uv_handle_t *)&tick, NULL);
  corio_hostgroup_free(L, a);
  CHECK(corio_hostgroup_spawn(L, a, 0) == CORIO_EINVAL);
  corio_hostgroup_free(L, b);
  CHECK(corio_detach_wait(L, 10000) == 0);       /* b's cleanup: 10 ms sleeps */
  CHECK(field(L, "cleaned", "b") == 3);
  CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
  lua_close(L);
  CHECK(uv_loop_close(&loop) == 0);
}

static void test_wait_deadline(void) {
  uv_loop_t loop;
  lua_State *L;
  corio_hostgroup_t *g;
  CHECK(uv_loop_init(&loop) == 0);
  L = host_attached(&loop);
  g = corio_hostgroup_new(L, "stubborn");
  CHECK(luaL_loadstring(L, "corio.shield(corio.sleep, 100)") == LUA_OK);
  CHECK(corio_hostgroup_spawn(L, g, 0) == 0);
  lua_pop(L, 1);
  CHECK(uv_run(&loop, UV_RUN_NOWAIT) >= 0);
  wait_calls = 0;
  CHECK(corio_hostgroup_cancel(L, g) == 0);
  CHECK(corio_hostgroup_wait(L, g, 50, on_wait, &loop) == 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(wait_calls == 1 && wait_status == CORIO_ETIMEDOUT);
  CHECK(strstr(wait_msg, "group \"stubborn\": 1 task did not finish within 50 ms: task 1") != NULL);
  CHECK(corio_hostgroup_size(L, g) == 1);
  /* a wait still under way when the state detaches ends without its callback */
  CHECK(corio_hostgroup_wait(L, g, 10000, on_wait, &loop) == 0);
  CHECK(corio_detach(L) == CORIO_ETIMEDOUT);     /* the shielded sleep is abandoned */
  CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
  lua_close(L);
  CHECK(uv_loop_close(&loop) == 0);
  CHECK(wait_calls == 1);
}

static char hook_group[64];
static void hook(lua_State *L, void *ud) {
  const char *name = corio_hostgroup_name_of(L, -1);
  (void)ud;
  snprintf(hook_group, sizeof hook_group, "%s", name ? name : "(none)");
}

static void test_error_names_the_group(void) {
  uv_loop_t loop;
  lua_State *L;
  corio_hostgroup_t *g;
  CHECK(uv_loop_init(&loop) == 0);
  L = host_attached(&loop);
  corio_set_error_hook(L, hook, NULL);
  g = corio_hostgroup_new(L, "plugin-x");
  CHECK(luaL_loadstring(L, "corio.spawn(function() error('child broke') end) corio.sleep(0.01)") == LUA_OK);
  CHECK(corio_hostgroup_spawn(L, g, 0) == 0);
  lua_pop(L, 1);
  CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
  lua_gc(L, LUA_GCCOLLECT);                      /* the child's error is reported */
  lua_gc(L, LUA_GCCOLLECT);
  CHECK(corio_detach(L) == 0);
  CHECK(strcmp(hook_group, "plugin-x") == 0);
  CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
  lua_close(L);
  CHECK(uv_loop_close(&loop) == 0);
}

int main(void) {
  TEST_MAIN_BEGIN();
  RUN(test_unload_one_plugin);
  RUN(test_wait_deadline);
  RUN(test_error_names_the_group);
  TEST_MAIN_END();
}
