/*
** host.c: the C API for applications that embed Lua and run plugins as
** corio tasks: lending corio the host's loop, spawning from C, futures
** the host resolves, posts from other threads, and the error hook.
*/
#include <stdlib.h>
#include "binding.h"

typedef struct post {
  struct post *next;
  corio_post_cb cb;
  void *payload;
} post;

corio_state_t *corio_state(lua_State *L) {
  corio_State *S;
  lua_getfield(L, LUA_REGISTRYINDEX, STATE_MT);
  S = (corio_State *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  return S;
}

/* ------------------------------------------------------------ the loop */

int corio_attach(lua_State *L, uv_loop_t *loop) {
  corio_State *S = corio_state(L);
  if (S == NULL) return CORIO_EINVAL;
  if (S->running) return CORIO_EBUSY;
  S->host = loop;
  corio__open_loop(L, S, loop);
  return 0;
}

int corio_detach(lua_State *L) {
  corio_State *S = corio_state(L);
  int err;
  if (S == NULL || !S->running || S->host == NULL) return CORIO_EINVAL;
  corio__finish_all(L, S);
  err = corio__close_loop(L, S);
  S->host = NULL;
  return err;
}

int corio_spawn(lua_State *L, int nargs) {
  corio_State *S = corio_state(L);
  int fidx = lua_gettop(L) - nargs;
  if (S == NULL || !S->running) return CORIO_EINVAL;
  corio__spawn(L, S, fidx, nargs);
  lua_replace(L, fidx);
  lua_settop(L, fidx);
  return 0;
}

/* ------------------------------------------------------------ futures */

corio_future_t *corio_future_new(lua_State *L) {
  corio_State *S = corio_state(L);
  luafuture *f;
  corio__future_new(L);
  f = (luafuture *)lua_touserdata(L, -1);
  corio__push_side(L, S, SIDE_HOSTFUTURES);       /* anchor until settled */
  lua_pushlightuserdata(L, f);
  lua_pushvalue(L, -3);
  lua_rawset(L, -3);
  lua_pop(L, 1);
  return &f->core;
}

/* call fut:method(top n values of L), dropping the anchor first */
static int settle(lua_State *L, corio_future_t *f, const char *method, int n) {
  corio_State *S = corio_state(L);
  int base = lua_gettop(L) - n;
  corio__push_side(L, S, SIDE_HOSTFUTURES);
  lua_pushlightuserdata(L, f);
  if (lua_rawget(L, -2) != LUA_TUSERDATA) {       /* not ours, or settled */
    lua_settop(L, base);
    return CORIO_EINVAL;
  }
  lua_pushlightuserdata(L, f);
  lua_pushnil(L);
  lua_rawset(L, -4);
  lua_remove(L, -2);                              /* the Future */
  if (f->state != CORIO_PENDING) {
    lua_settop(L, base);
    return CORIO_EDONE;
  }
  lua_getfield(L, -1, method);
  lua_insert(L, base + 1);                        /* method, values, fut */
  lua_insert(L, base + 2);                        /* method, fut, values */
  lua_call(L, n + 1, 0);
  return 0;
}

int corio_future_resolve(lua_State *L, corio_future_t *f, int n) {
  return settle(L, f, "set_result", n);
}

int corio_future_fail(lua_State *L, corio_future_t *f) {
  return settle(L, f, "set_error", 1);
}

/* ------------------------------------------------------------ posts */

static void run_posts(uv_async_t *h) {
  corio_State *S = (corio_State *)h->data;
  post *p;
  uv_mutex_lock(&S->post_lock);
  p = (post *)S->post_head;
  S->post_head = S->post_tail = NULL;
  uv_mutex_unlock(&S->post_lock);
  while (p != NULL) {
    post *next = p->next;
    lua_State *L = corio__callback_thread(S->L, S);
    int top = lua_gettop(L);
    p->cb(L, p->payload);
    lua_settop(L, top);
    free(p);
    p = next;
  }
}

void corio__init_host(corio_State *S) {
  uv_mutex_init(&S->post_lock);
}

void corio__free_host(corio_State *S) {
  uv_mutex_destroy(&S->post_lock);
}

void corio__open_posts(corio_State *S) {
  uv_async_init(S->loop.uv, &S->post_async, run_posts);
  S->post_async.data = S;
  uv_unref((uv_handle_t *)&S->post_async);
  S->holds = 0;
  uv_mutex_lock(&S->post_lock);
  S->post_open = 1;
  uv_mutex_unlock(&S->post_lock);
}

static void on_closed(uv_handle_t *h) { (void)h; }

/* posts that arrive after this are refused; those queued are dropped */
void corio__close_posts(corio_State *S) {
  post *p;
  uv_mutex_lock(&S->post_lock);
  S->post_open = 0;
  p = (post *)S->post_head;
  S->post_head = S->post_tail = NULL;
  uv_mutex_unlock(&S->post_lock);
  while (p != NULL) {
    post *next = p->next;
    free(p);
    p = next;
  }
  if (!uv_is_closing((uv_handle_t *)&S->post_async))
    uv_close((uv_handle_t *)&S->post_async, on_closed);
}

int corio_post(corio_state_t *S, corio_post_cb cb, void *payload) {
  post *p = (post *)malloc(sizeof *p);
  if (p == NULL) return CORIO_ENOMEM;
  p->next = NULL;
  p->cb = cb;
  p->payload = payload;
  uv_mutex_lock(&S->post_lock);
  if (!S->post_open) {
    uv_mutex_unlock(&S->post_lock);
    free(p);
    return CORIO_ECLOSED;
  }
  if (S->post_tail != NULL) ((post *)S->post_tail)->next = p;
  else S->post_head = p;
  S->post_tail = p;
  uv_async_send(&S->post_async);  /* under the lock: close waits for it */
  uv_mutex_unlock(&S->post_lock);
  return 0;
}

void corio_hold(corio_state_t *S) {
  if (S->holds++ == 0) uv_ref((uv_handle_t *)&S->post_async);
}

void corio_release(corio_state_t *S) {
  if (S->holds > 0 && --S->holds == 0) uv_unref((uv_handle_t *)&S->post_async);
}

/* ------------------------------------------------------------ errors */

void corio_set_error_hook(lua_State *L, corio_error_hook hook, void *ud) {
  corio_State *S = corio_state(L);
  if (S == NULL) return;
  S->error_hook = hook;
  S->error_hook_ud = ud;
}
