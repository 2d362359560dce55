/*
** host_embed.c: a host application as DESIGN.md section 3 describes one.
** It owns a uv loop and a lua_State, lends the loop to corio, runs Lua
** "plugins" as tasks, turns its own asynchronous work (a worker thread)
** into futures the plugins await, takes unhandled errors through a C
** hook, and detaches cleanly: every loop closes with uv_loop_close == 0.
*/
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include "corio.h"
#include "test_core.h"

typedef struct host {
  uv_loop_t loop;
  lua_State *L;
  corio_promise_t *fut;   /* resolved from the worker's post */
  int hook_calls;
  char hook_msg[128];
  int post_payload;
  corio_state_t *S;      /* retained for the worker thread */
} host;

static host *the_host;   /* for the hook and the post callback */

static void open_host(host *h) {
  memset(h, 0, sizeof *h);
  the_host = h;
  CHECK(uv_loop_init(&h->loop) == 0);
  h->L = luaL_newstate();
  CHECK(h->L != NULL);
  luaL_openlibs(h->L);
  /* the Lua layer from the source tree; the C module linked in */
  CHECK(luaL_dostring(h->L, "package.path = '" CORIO_LUA_DIR "/?.lua;"
                      CORIO_LUA_DIR "/?/init.lua;' .. package.path") == LUA_OK);
  luaL_getsubtable(h->L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(h->L, luaopen_corio_core);
  lua_setfield(h->L, -2, "corio.core");
  lua_pop(h->L, 1);
  CHECK(luaL_dostring(h->L, "corio = require 'corio'") == LUA_OK);
  CHECK(corio_state(h->L) != NULL);
  CHECK(corio_attach(h->L, &h->loop) == 0);
  CHECK(corio_attach(h->L, &h->loop) == CORIO_EBUSY);
}

static void close_host(host *h) {
  CHECK(corio_detach(h->L) == 0);
  CHECK(uv_run(&h->loop, UV_RUN_DEFAULT) == 0);  /* the closes complete */
  lua_close(h->L);
  CHECK(uv_loop_close(&h->loop) == 0);
}

/* spawn a plugin from source; leaves the Task in global `name` */
static void spawn_plugin(host *h, const char *name, const char *src) {
  CHECK(luaL_loadstring(h->L, src) == LUA_OK);
  CHECK(corio_spawn(h->L, 0) == 0);
  CHECK(lua_type(h->L, -1) == LUA_TUSERDATA);
  lua_setglobal(h->L, name);
}

static lua_Integer global_int(lua_State *L, const char *name) {
  lua_Integer v;
  lua_getglobal(L, name);
  v = lua_tointeger(L, -1);
  lua_pop(L, 1);
  return v;
}

/* ---------------------------------------------------------------- tests */

/* plugins run on the host's loop, sleep and await each other */
static void test_plugins_run_on_host_loop(void) {
  host h;
  open_host(&h);
  spawn_plugin(&h, "a", "corio.sleep(0.01); return 20");
  spawn_plugin(&h, "b", "result = a:await() + 22");
  CHECK(uv_run(&h.loop, UV_RUN_DEFAULT) == 0);   /* returns when all is done */
  CHECK(global_int(h.L, "result") == 42);
  close_host(&h);
}

/* a worker thread's result reaches a plugin through a post and a future */
static void resolve_from_post(lua_State *L, void *payload) {
  host *h = the_host;
  CHECK(payload == &h->post_payload);
  lua_pushinteger(L, h->post_payload);
  CHECK(corio_future_resolve(L, h->fut, 1) == 0);
  CHECK(corio_future_resolve(L, h->fut, 0) == CORIO_EDONE);  /* settled */
  corio_release(corio_state(L));
}

static void worker(void *arg) {
  host *h = (host *)arg;
  uv_sleep(20);
  h->post_payload = 21;
  CHECK(corio_post(h->S, resolve_from_post, &h->post_payload) == 0);
}

static void test_future_resolved_from_a_thread(void) {
  host h;
  uv_thread_t th;
  open_host(&h);
  h.fut = corio_future_new(h.L);
  lua_setglobal(h.L, "job");
  spawn_plugin(&h, "p", "result = job:await() * 2");
  corio_hold(corio_state(h.L));  /* a post is on its way: keep the loop */
  h.S = corio_state_retain(corio_state(h.L));  /* the thread's reference */
  CHECK(uv_thread_create(&th, worker, &h) == 0);
  CHECK(uv_run(&h.loop, UV_RUN_DEFAULT) == 0);
  CHECK(uv_thread_join(&th) == 0);
  corio_state_release(h.S);
  CHECK(global_int(h.L, "result") == 42);
  close_host(&h);
}

/* a failed future raises in the plugin; the plugin catches it */
static void test_future_failed(void) {
  host h;
  open_host(&h);
  h.fut = corio_future_new(h.L);
  lua_setglobal(h.L, "job");
  spawn_plugin(&h, "p", "local ok, e = pcall(job.await, job); caught = e");
  CHECK(uv_run(&h.loop, UV_RUN_NOWAIT) >= 0);   /* the plugin now waits */
  lua_pushliteral(h.L, "host error");
  CHECK(corio_future_fail(h.L, h.fut) == 0);
  CHECK(uv_run(&h.loop, UV_RUN_DEFAULT) == 0);
  lua_getglobal(h.L, "caught");
  CHECK(lua_isstring(h.L, -1) && strcmp(lua_tostring(h.L, -1), "host error") == 0);
  lua_pop(h.L, 1);
  close_host(&h);
}

/* unhandled task errors go to the host's hook, once, with a traceback */
static void hook(lua_State *L, void *ud) {
  host *h = (host *)ud;
  CHECK(lua_gettop(L) >= 3);
  CHECK(lua_isstring(L, -2));  /* the traceback */
  CHECK(lua_type(L, -1) == LUA_TUSERDATA);  /* the task */
  h->hook_calls++;
  snprintf(h->hook_msg, sizeof h->hook_msg, "%s", lua_tostring(L, -3));
}

static void test_error_hook(void) {
  host h;
  open_host(&h);
  corio_set_error_hook(h.L, hook, &h);
  spawn_plugin(&h, "bad", "error('plugin broke', 0)");
  CHECK(uv_run(&h.loop, UV_RUN_DEFAULT) == 0);
  CHECK(h.hook_calls == 0);  /* still referenced: someone may look */
  close_host(&h);            /* detach reports what nobody looked at */
  CHECK(h.hook_calls == 1);
  CHECK(strcmp(h.hook_msg, "plugin broke") == 0);
}

/* detach cancels a plugin that waits forever, runs its cleanup, and a
   post after detach is refused */
static void test_detach_cancels(void) {
  host h;
  corio_state_t *S;
  open_host(&h);
  spawn_plugin(&h, "forever",
               "local _c <close> = setmetatable({}, {__close = function(_, e)"
               " cleaned = corio.is_cancelled(e) and 1 or 2 end})"
               " corio.future():await()");
  CHECK(uv_run(&h.loop, UV_RUN_NOWAIT) >= 0);
  S = corio_state(h.L);
  CHECK(corio_detach(h.L) == 0);
  CHECK(global_int(h.L, "cleaned") == 1);
  CHECK(corio_post(S, resolve_from_post, NULL) == CORIO_ECLOSED);
  CHECK(uv_run(&h.loop, UV_RUN_DEFAULT) == 0);
  lua_close(h.L);
  CHECK(uv_loop_close(&h.loop) == 0);
}

int main(void) {
  TEST_MAIN_BEGIN();
  RUN(test_plugins_run_on_host_loop);
  RUN(test_future_resolved_from_a_thread);
  RUN(test_future_failed);
  RUN(test_error_hook);
  RUN(test_detach_cancels);
  TEST_MAIN_END();
}
