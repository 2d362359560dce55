/*
** state.c: the lifetime of corio's state for a host. corio_State is
** malloc'ed and reference-counted: the Lua state holds one reference,
** every corio_state_retain one, and a detach's handle closes one (the
** host's loop finishes them after the Lua state may be gone). Attaching
** the host's loop, spawning from C, the loop-thread check.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "host.h"

corio_state_t *corio_state(lua_State *L) {
  corio_State *S = NULL;
  if (lua_getfield(L, LUA_REGISTRYINDEX, STATE_MT) == LUA_TUSERDATA)
    S = corio__state_of(lua_touserdata(L, -1));
  lua_pop(L, 1);
  return S;
}

#define OPTIONS_KEY "corio.options"

int corio_set_options(lua_State *L, unsigned options) {
  if (corio_state(L) != NULL) return CORIO_EBUSY;
  lua_pushinteger(L, (lua_Integer)options);
  lua_setfield(L, LUA_REGISTRYINDEX, OPTIONS_KEY);
  return 0;
}

unsigned corio__options(lua_State *L) {
  unsigned options;
  lua_getfield(L, LUA_REGISTRYINDEX, OPTIONS_KEY);
  options = (unsigned)lua_tointeger(L, -1);
  lua_pop(L, 1);
  return options;
}

corio_State *corio__new_state(void) {
  corio_State *S = (corio_State *)calloc(1, sizeof *S);
  if (S == NULL) return NULL;
  if (uv_mutex_init(&S->post_lock) != 0) {
    free(S);
    return NULL;
  }
  S->refs = 1;  /* the Lua state's */
  return S;
}

corio_state_t *corio_state_retain(corio_state_t *S) {
  uv_mutex_lock(&S->post_lock);
  S->refs++;
  uv_mutex_unlock(&S->post_lock);
  return S;
}

void corio__host_unref(corio_State *S) {
  int left;
  uv_mutex_lock(&S->post_lock);
  left = --S->refs;
  uv_mutex_unlock(&S->post_lock);
  if (left == 0) {
    uv_mutex_destroy(&S->post_lock);
    free(S);
  }
}

void corio_state_release(corio_state_t *S) {
  corio__host_unref(S);
}

/* The last close callback of a detach: every handle closed with it has
   finished (libuv runs the closes of one iteration before it starts the
   close_tail's, closed from one of them), so the memory may go. */
static void on_tail_closed(uv_handle_t *h) {
  corio_State *S = (corio_State *)h->data;
  S->closing = 0;
  corio__host_unref(S);
}

static void on_post_closed(uv_handle_t *h) {
  corio_State *S = (corio_State *)h->data;
  uv_idle_init(h->loop, &S->close_tail);
  S->close_tail.data = S;
  uv_close((uv_handle_t *)&S->close_tail, on_tail_closed);
}

static void on_closed(uv_handle_t *h) { (void)h; }

/* Close the loop's handles and the post handle (the post queue is closed
   already). On the host's loop, S stays alive until the host's loop has
   finished the closes; corio.run's own loop finishes them here. */
int corio__host_close(corio_State *S) {
  if (S->host == NULL) {
    if (!uv_is_closing((uv_handle_t *)&S->post_async))
      uv_close((uv_handle_t *)&S->post_async, on_closed);
    return corio_loop_close(&S->loop);
  }
  corio__host_close_handles(S);
  return 0;
}

void corio__host_close_handles(corio_State *S) {
  uv_mutex_lock(&S->post_lock);
  S->refs++;
  uv_mutex_unlock(&S->post_lock);
  S->closing = 1;
  corio_loop_close(&S->loop);
  uv_close((uv_handle_t *)&S->post_async, on_post_closed);
}

/* __gc of the state userdata: at lua_close (it is anchored in the
   registry). Without a detach, the host's loop still holds corio's
   handles: abandon the tasks without running them (the Lua state is going
   away), hand the queued posts to the drop callback, close the handles. */
int corio__state_gc(lua_State *L) {
  corio_State *S = corio__state_of(lua_touserdata(L, 1));
  if (S == NULL) return 0;
  corio__warn_forget(L);
  if (S->running && S->host == NULL) {  /* inside corio.run: its own loop */
    S->loop.closing = 1;
    corio_loop_close(&S->loop);
  }
  else if (S->running) {
    corio__hostgroup_close(S);
    if (S->detach != NULL) {  /* its first half ran: the I/O modules end too */
      corio__detach_abandon(S);
      corio__iomod_shutdown(L, S, 1);
    }
    corio__close_posts(S, 0);
    S->loop.closing = 1;
    corio__host_close_handles(S);
  }
  S->running = 0;
  S->host = NULL;
  S->L = NULL;
  *(corio_State **)lua_touserdata(L, 1) = NULL;
  corio__host_unref(S);
  return 0;
}

#ifndef NDEBUG
int corio__host_wrong_thread(corio_State *S, const char *fn) {
  uv_thread_t self = uv_thread_self();
  if (!S->running || uv_thread_equal(&self, &S->loop_thread)) return 0;
  fprintf(stderr, "corio: %s called from a thread that is not the loop's\n", fn);
  fflush(stderr);
  return 1;
}
#endif

/* ------------------------------------------------------------ the loop */

int corio_attach(lua_State *L, uv_loop_t *loop) {
  corio_State *S = corio_state(L);
  if (S == NULL || loop == NULL) return CORIO_EINVAL;
  if (S->running || S->closing) return CORIO_EBUSY;
  S->host = loop;
  S->loop_thread = uv_thread_self();
  corio__open_loop(L, S, loop);
  S->loop.budget = S->budget;
  return 0;
}

int corio_spawn(lua_State *L, int nargs) {
  corio_State *S = corio_state(L);
  int fidx = lua_gettop(L) - nargs;
  if (S == NULL || !S->running) return CORIO_EINVAL;
  CORIO_LOOP_THREAD(S, "corio_spawn");
  corio__spawn(L, S, fidx, nargs);
  lua_replace(L, fidx);
  lua_settop(L, fidx);
  return 0;
}
