/*
** signal.c: corio.signal(name) -> a receiver of a signal's deliveries:
** wait() (suspends), close(), a to-be-closed variable, and iteration
** (for sig in receiver do ... end).
**
** Each receiver has its own uv_signal_t (libuv hands every delivery to
** every handle watching the signal) and counts the deliveries nobody has
** taken yet, so none is lost between two waits. A receiver's handle is
** ref'd only while a task waits on it, so deadlock detection still sees
** a task that waits for nothing else.
**
** The disposition a signal had before its first receiver (corio.run's
** Ctrl-C handler for SIGINT, say) is put back when its last receiver
** closes: libuv would leave the default action there instead.
*/
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include "os.h"

#define SIGNAL_REGKEY "corio.signals"
#define NSIG_MAX 65

typedef struct sigrecv {
  uv_signal_t h;
  corio_State *S;
  corio_list_t node;     /* in the list of open receivers */
  corio_future_t ready;  /* wakes waiters: a delivery or the close (reused) */
  uint32_t pending;      /* deliveries not yet taken */
  int signum;
  uint16_t nwait;        /* tasks waiting: ref'd while > 0 */
  uint8_t open;
  uint8_t gone;          /* the userdata was collected */
  uint8_t closed;        /* the close callback ran */
} sigrecv;

/* per signal, for the whole process: receivers, and what was there
   before the first one */
static int watchers[NSIG_MAX];
static struct sigaction before[NSIG_MAX];

static corio_list_t *get_list(lua_State *L) {
  corio_list_t *l;
  lua_getfield(L, LUA_REGISTRYINDEX, SIGNAL_REGKEY);
  l = (corio_list_t *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  return l;
}

static void on_closed(uv_handle_t *h) {
  sigrecv *r = (sigrecv *)h->data;
  r->closed = 1;
  if (r->gone) free(r);
}

static void wake(sigrecv *r) {
  corio_future_finish(&r->S->loop, &r->ready, CORIO_DONE);
  corio_future_init(&r->ready);
}

static void on_signal(uv_signal_t *h, int signum) {
  sigrecv *r = (sigrecv *)h->data;
  (void)signum;
  r->pending++;
  wake(r);
}

static void recv_close(sigrecv *r) {
  struct sigaction now;
  int s = r->signum;
  if (!r->open) return;
  r->open = 0;
  corio__list_remove(&r->node);
  uv_close((uv_handle_t *)&r->h, on_closed);  /* stops watching */
  if (--watchers[s] == 0 && sigaction(s, NULL, &now) == 0 &&
      !(now.sa_flags & SA_SIGINFO) && now.sa_handler == SIG_DFL)
    sigaction(s, &before[s], NULL);  /* libuv let go of it */
  wake(r);
}

static sigrecv *check_recv(lua_State *L, const char *method) {
  sigrecv *r = *(sigrecv **)corio__check_self(L, 1, SIGNAL_MT, method,
                                              "SignalReceiver");
  return r;
}

/* a delivery taken: the signal's name; a closed receiver: nil */
static int take(lua_State *L, sigrecv *r) {
  if (r->pending > 0) {
    const char *name = corio__signal_name(r->signum);
    r->pending--;
    if (name != NULL) lua_pushstring(L, name);
    else lua_pushinteger(L, r->signum);
    return 1;
  }
  lua_pushnil(L);
  return 1;
}

static int wait_k(lua_State *L, int status, lua_KContext ctx);

static int wait_on(lua_State *L, corio_State *S, luatask *t, sigrecv *r) {
  if (r->pending > 0 || !r->open) return take(L, r);
  if (r->nwait++ == 0) uv_ref((uv_handle_t *)&r->h);
  corio_task_await(&S->loop, &t->core, &r->ready);
  t->what = W_SIGNAL;
  return corio__suspend(L, S, wait_k);
}

static int wait_k(lua_State *L, int status, lua_KContext ctx) {
  corio_State *S = (corio_State *)ctx;
  luatask *t = S->current;
  sigrecv *r = *(sigrecv **)lua_touserdata(L, 1);
  (void)status;
  if (--r->nwait == 0 && r->open) uv_unref((uv_handle_t *)&r->h);
  corio__wake_check(L, S, t);  /* a cancelled wait takes nothing */
  return wait_on(L, S, t, r);
}

/* receiver:wait() (suspends) -> the signal's name ("SIGTERM"), once per
   delivery (those since the last wait are counted, none is lost); nil
   once the receiver is closed. Also its __call, for iteration. */
static int r_wait(lua_State *L) {
  corio_State *S = corio__state(L);
  sigrecv *r = check_recv(L, "receiver:wait");
  luatask *t;
  lua_settop(L, 1);
  if (r == NULL) {
    lua_pushnil(L);
    return 1;
  }
  t = corio__checkpoint(L, S, "receiver:wait");
  return wait_on(L, S, t, r);
}

/* receiver:close(): stop receiving (waiting tasks get nil); also its
   __close. A second close does nothing. */
static int r_close(lua_State *L) {
  sigrecv *r = check_recv(L, "receiver:close");
  if (r != NULL) recv_close(r);
  return 0;
}

/* receiver:pending() -> deliveries not yet taken */
static int r_pending(lua_State *L) {
  sigrecv *r = check_recv(L, "receiver:pending");
  lua_pushinteger(L, r != NULL ? (lua_Integer)r->pending : 0);
  return 1;
}

static int r_gc(lua_State *L) {
  sigrecv **box = (sigrecv **)lua_touserdata(L, 1);
  sigrecv *r = *box;
  if (r == NULL) return 0;
  *box = NULL;
  r->gone = 1;
  if (r->open) recv_close(r);
  else if (r->closed) free(r);
  return 0;
}

static int r_tostring(lua_State *L) {
  sigrecv *r = *(sigrecv **)luaL_checkudata(L, 1, SIGNAL_MT);
  if (r == NULL) lua_pushliteral(L, "signal receiver (closed)");
  else {
    const char *name = corio__signal_name(r->signum);
    if (r->open)
      lua_pushfstring(L, "signal receiver %s (open, %d pending)",
                      name != NULL ? name : "?", (int)r->pending);
    else lua_pushfstring(L, "signal receiver %s (closed)", name != NULL ? name : "?");
  }
  return 1;
}

/* corio.signal(name) -> receiver, or nil, msg, code (EINVAL for SIGKILL
   and SIGSTOP). name: "SIGTERM", "TERM" or a number. While a receiver
   of SIGINT is open, Ctrl-C goes to it instead of cancelling the main
   task. */
static int l_signal(lua_State *L) {
  corio_State *S = corio__state(L);
  int signum = corio__signal_check(L, 1, "corio.signal"), err;
  sigrecv **box;
  sigrecv *r;
  if (!S->running)
    return luaL_error(L, "corio.signal: no running loop (start one with corio.run)");
  if (signum >= NSIG_MAX) return luaL_error(L, "corio.signal: bad signal number");
  box = (sigrecv **)lua_newuserdatauv(L, sizeof *box, 0);
  *box = NULL;
  luaL_setmetatable(L, SIGNAL_MT);
  r = (sigrecv *)calloc(1, sizeof *r);
  if (r == NULL) return luaL_error(L, "corio.signal: out of memory");
  r->S = S;
  r->signum = signum;
  corio_future_init(&r->ready);
  corio__list_init(&r->node);
  uv_signal_init(S->loop.uv, &r->h);
  r->h.data = r;
  *box = r;
  if (watchers[signum]++ == 0) sigaction(signum, NULL, &before[signum]);
  err = uv_signal_start(&r->h, on_signal, signum);
  if (err) {
    watchers[signum]--;
    *box = NULL;
    r->gone = 1;
    uv_close((uv_handle_t *)&r->h, on_closed);
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", uv_err_name(err), uv_strerror(err));
    lua_pushstring(L, uv_err_name(err));
    return 3;
  }
  uv_unref((uv_handle_t *)&r->h);
  r->open = 1;
  corio__list_push(get_list(L), &r->node);
  return 1;
}

const luaL_Reg corio__signal_funcs[] = {
  {"signal", l_signal},
  {NULL, NULL}
};

static const luaL_Reg recv_methods[] = {
  {"wait", r_wait},
  {"close", r_close},
  {"pending", r_pending},
  {NULL, NULL}
};

/* the run's end, once every task has finished: close what is open */
static void signal_shutdown(lua_State *L, corio_State *S, int phase) {
  corio_list_t *l = get_list(L);
  (void)S;
  if (phase != 1 || l == NULL) return;
  while (!corio__list_empty(l))
    recv_close(corio__container_of(l->next, sigrecv, node));
}

const corio_iomod corio__signal_iomod = { "signal", NULL, signal_shutdown };

/* stack: state userdata at -1 */
void corio__open_signal(lua_State *L) {
  corio_list_t *l;
  luaL_newmetatable(L, SIGNAL_MT);
  lua_newtable(L);
  lua_pushvalue(L, -3);
  luaL_setfuncs(L, recv_methods, 1);
  lua_setfield(L, -2, "__index");
  lua_pushvalue(L, -2);
  lua_pushcclosure(L, r_close, 1);
  lua_setfield(L, -2, "__close");
  lua_pushvalue(L, -2);
  lua_pushcclosure(L, r_wait, 1);
  lua_setfield(L, -2, "__call");
  lua_pushcfunction(L, r_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, r_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  l = (corio_list_t *)lua_newuserdatauv(L, sizeof *l, 0);
  corio__list_init(l);
  lua_setfield(L, LUA_REGISTRYINDEX, SIGNAL_REGKEY);
}
