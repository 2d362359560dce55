/*
** detach.c: giving the host's loop back. Accepted posts run, every task is
** cancelled and its cleanup runs until all have finished or the host's
** deadline passes; what is left is abandoned and named in one message.
** The blocking form drives corio's own ready queue and timers (never the
** host's uv_run, which may be running further up the stack); the
** asynchronous form lets the host's loop run and calls back.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "host.h"
#include "corio-internal.h"

typedef struct detach {
  uv_timer_t timer;     /* polls for the end, or the deadline */
  corio_State *S;
  lua_State *L;
  uint64_t deadline;    /* uv_hrtime() ns */
  uint64_t ms;          /* the timeout, for the message */
  corio_detach_cb cb;
  void *ud;
} detach;

#define POLL_MS 1

static int check_detach(lua_State *L, corio_State *S, const char *fn) {
  if (S == NULL || !S->running || S->host == NULL) return CORIO_EINVAL;
  CORIO_LOOP_THREAD(S, fn);
  if (S->current != NULL || S->detach != NULL) return CORIO_EBUSY;
  (void)L;
  return 0;
}

/* accepted posts run, servers stop, every task is cancelled */
static void begin(lua_State *L, corio_State *S) {
  uint32_t i;
  corio__close_posts(S, 1);
  corio__iomod_shutdown(L, S, 0);
  for (i = S->nlive; i >= 1; i--) {
    luatask *t;
    lua_rawgeti(S->L, SLOT_LIVE, i);
    t = (luatask *)lua_touserdata(S->L, -1);
    lua_pop(S->L, 1);
    corio_task_cancel(&S->loop, &t->core);
  }
}

/* Pushes the message naming the tasks still alive (NULL if none) and
   abandons them. */
static const char *abandon_rest(lua_State *L, corio_State *S, uint64_t ms) {
  uint32_t i, n = S->nlive;
  int top = lua_gettop(L);
  if (n == 0) return NULL;
  lua_pushfstring(L, "corio_detach: %d task%s did not finish %s cleanup within %d ms:",
                  (int)n, n == 1 ? "" : "s", n == 1 ? "its" : "their", (int)ms);
  for (i = 1; i <= n && i <= 5; i++) {
    lua_rawgeti(S->L, SLOT_LIVE, i);
    lua_xmove(S->L, L, 1);
    corio__push_side(L, S, SIDE_NAMES);
    lua_pushvalue(L, -2);
    if (lua_rawget(L, -2) == LUA_TSTRING)
      lua_pushfstring(L, "%s task %d \"%s\"", i == 1 ? "" : ",",
                      (int)TASK_ID((luatask *)lua_touserdata(L, -3)), lua_tostring(L, -1));
    else
      lua_pushfstring(L, "%s task %d", i == 1 ? "" : ",",
                      (int)TASK_ID((luatask *)lua_touserdata(L, -3)));
    lua_replace(L, -4);
    lua_pop(L, 2);
  }
  if (n > 5) lua_pushfstring(L, " and %d more", (int)(n - 5));
  lua_concat(L, lua_gettop(L) - top);
  while (S->nlive > 0) {
    luatask *t;
    lua_rawgeti(S->L, SLOT_LIVE, S->nlive);
    t = (luatask *)lua_touserdata(S->L, -1);
    lua_pop(S->L, 1);
    corio__abandon(S, t);
  }
  return lua_tostring(L, -1);
}

/* The end of either form: abandon what is left (its message on top of L,
   or nil), close the streams nobody closed and corio's handles, report
   the unhandled errors. */
static int end(lua_State *L, corio_State *S, uint64_t ms, int report) {
  const char *msg = abandon_rest(L, S, ms);
  int err;
  if (msg == NULL) lua_pushnil(L);
  corio__iomod_shutdown(L, S, 1);
  corio__hostgroup_close(S);  /* waits end with the loop, without callbacks */
  err = corio__close_loop(L, S);
  S->host = NULL;
  if (msg == NULL) return err;
  if (report && S->error_hook != NULL) {
    lua_pushvalue(L, -1);
    lua_pushnil(L);
    corio__host_error(L, S, "detach");
  }
  else if (report) {
    fprintf(stderr, "corio: %s\n", msg);
    fflush(stderr);
  }
  return CORIO_ETIMEDOUT;
}

int corio_detach_wait(lua_State *L, uint64_t timeout_ms) {
  corio_State *S = corio_state(L);
  corio_loop_t *loop;
  uint64_t deadline;
  int err = check_detach(L, S, "corio_detach_wait");
  if (err) return err;
  loop = &S->loop;
  deadline = uv_hrtime() + timeout_ms * 1000000u;
  begin(L, S);
  while (S->nlive > 0) {
    corio_timer_t *next;
    corio_loop_update_time(loop);
    corio__timers_fire(loop);
    if (loop->rcount > 0) {
      corio_loop_run_ready(loop);
      continue;
    }
    next = corio__timers_first(loop);
    if (next == NULL || loop->now >= deadline) break;  /* only I/O could help */
    uv_sleep((unsigned)(((next->when < deadline ? next->when : deadline) - loop->now
                         + 999999u) / 1000000u));
  }
  err = end(L, S, timeout_ms, 1);
  lua_pop(L, 1);
  return err;
}

int corio_detach(lua_State *L) {
  return corio_detach_wait(L, 0);
}

static void on_timer_closed(uv_handle_t *h) {
  free(h->data);
}

static void on_poll(uv_timer_t *h) {
  detach *d = (detach *)h->data;
  corio_State *S = d->S;
  lua_State *L = d->L;
  corio_detach_cb cb = d->cb;
  void *ud = d->ud;
  char *msg = NULL;
  int status;
  if (S->nlive > 0 && uv_hrtime() < d->deadline) return;
  uv_timer_stop(h);
  uv_close((uv_handle_t *)h, on_timer_closed);
  S->detach = NULL;
  status = end(L, S, d->ms, 0);
  if (lua_isstring(L, -1)) {  /* a copy: the host may close L in cb */
    size_t len;
    const char *m = lua_tolstring(L, -1, &len);
    msg = (char *)malloc(len + 1);
    if (msg != NULL) memcpy(msg, m, len + 1);
  }
  lua_pop(L, 1);
  cb(L, status, msg, ud);
  free(msg);
}

int corio_detach_async(lua_State *L, uint64_t timeout_ms, corio_detach_cb cb,
                       void *ud) {
  corio_State *S = corio_state(L);
  detach *d;
  int err = check_detach(L, S, "corio_detach_async");
  if (err) return err;
  if (cb == NULL) return CORIO_EINVAL;
  d = (detach *)malloc(sizeof *d);
  if (d == NULL) return CORIO_ENOMEM;
  d->S = S;
  d->L = L;
  d->cb = cb;
  d->ud = ud;
  d->ms = timeout_ms;
  d->deadline = uv_hrtime() + timeout_ms * 1000000u;
  uv_timer_init(S->host, &d->timer);
  d->timer.data = d;
  S->detach = d;
  begin(L, S);
  uv_timer_start(&d->timer, on_poll, 0, POLL_MS);
  return 0;
}

/* The Lua state is closing under an asynchronous detach: it ends without
   its callback. */
void corio__detach_abandon(corio_State *S) {
  detach *d = (detach *)S->detach;
  if (d == NULL) return;
  S->detach = NULL;
  uv_timer_stop(&d->timer);
  uv_close((uv_handle_t *)&d->timer, on_timer_closed);
}
