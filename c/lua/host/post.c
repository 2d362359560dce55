/*
** post.c: posts from other threads. A mutex-guarded queue and a uv_async
** that wakes the loop; each post runs exactly once, under a protected
** call, or reaches the host's drop callback when the Lua state is closed
** without a detach.
*/
#include <stdlib.h>
#include "host.h"

typedef struct post {
  struct post *next;
  corio_post_cb cb;
  void *payload;
} post;

/* The protected part: runs the posts of S->post_batch (S at 1), taking
   each off before it runs, so a detach inside one finds the rest there
   and runs them itself; the post running is in *slot (at 2) for the
   caller to free if it raises. */
static int call_posts(lua_State *L) {
  corio_State *S = (corio_State *)lua_touserdata(L, 1);
  post **slot = (post **)lua_touserdata(L, 2);
  post *p;
  lua_settop(L, 0);
  while ((p = (post *)S->post_batch) != NULL) {
    S->post_batch = p->next;
    *slot = p;
    p->cb(L, p->payload);
    lua_settop(L, 0);
    *slot = NULL;
    free(p);
  }
  return 0;
}

/* One protected call for a whole batch; after an error (reported through
   the hook) the rest of the batch goes on in a new one. */
static void run_batch(corio_State *S) {
  while (S->post_batch != NULL) {
    lua_State *L = corio__callback_thread(S->L, S);
    int top = lua_gettop(L);
    post *running = NULL;
    lua_pushcfunction(L, call_posts);
    lua_pushlightuserdata(L, S);
    lua_pushlightuserdata(L, &running);
    corio__host_pcall(L, S, 2, "post");
    free(running);  /* the post that raised */
    lua_settop(L, top);
  }
}

static void on_posts(uv_async_t *h) {
  corio_State *S = (corio_State *)h->data;
  post *p, *last;
  uv_mutex_lock(&S->post_lock);
  p = (post *)S->post_head;
  S->post_head = S->post_tail = NULL;
  uv_mutex_unlock(&S->post_lock);
  if (p == NULL) return;
  if (S->post_batch == NULL) S->post_batch = p;
  else {  /* not expected (one batch at a time), but keep the order */
    for (last = (post *)S->post_batch; last->next != NULL; last = last->next) {}
    last->next = p;
  }
  run_batch(S);
}

void corio__open_posts(corio_State *S) {
  uv_async_init(S->loop.uv, &S->post_async, on_posts);
  S->post_async.data = S;
  uv_unref((uv_handle_t *)&S->post_async);
  S->holds = 0;
  uv_mutex_lock(&S->post_lock);
  S->post_open = 1;
  uv_mutex_unlock(&S->post_lock);
}

/* Refuse posts from now on; those accepted run now (run = 1: the Lua state
   is usable) or go to the drop callback (the Lua state is closing). Safe
   to call twice, and from inside a post. */
void corio__close_posts(corio_State *S, int run) {
  post *p, *last;
  uv_mutex_lock(&S->post_lock);
  S->post_open = 0;
  p = (post *)S->post_head;
  S->post_head = S->post_tail = NULL;
  uv_mutex_unlock(&S->post_lock);
  if (p != NULL) {
    if (S->post_batch == NULL) S->post_batch = p;
    else {
      for (last = (post *)S->post_batch; last->next != NULL; last = last->next) {}
      last->next = p;
    }
  }
  if (run) {
    run_batch(S);
    return;
  }
  while ((p = (post *)S->post_batch) != NULL) {
    S->post_batch = p->next;
    if (S->post_drop != NULL) S->post_drop(p->cb, p->payload);
    free(p);
  }
}

int corio_post(corio_state_t *S, corio_post_cb cb, void *payload) {
  post *p;
  if (S == NULL || cb == NULL) return CORIO_EINVAL;
  p = (post *)malloc(sizeof *p);
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

void corio_set_post_drop(corio_state_t *S, corio_drop_cb drop) {
  uv_mutex_lock(&S->post_lock);
  S->post_drop = drop;
  uv_mutex_unlock(&S->post_lock);
}

void corio_hold(corio_state_t *S) {
  if (!S->running) return;
  if (S->holds++ == 0) uv_ref((uv_handle_t *)&S->post_async);
}

void corio_release(corio_state_t *S) {
  if (!S->running) return;
  if (S->holds > 0 && --S->holds == 0) uv_unref((uv_handle_t *)&S->post_async);
}
