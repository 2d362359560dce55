/*
** tcp.c: corio.connect and corio.serve (the Server type is in server.c).
**
** connect resolves with uv_getaddrinfo and races the addresses (Happy
** Eyeballs, RFC 8305): the families interleaved, the next address starts
** when the one before fails or has not connected after a delay (250 ms),
** the first to connect wins and the others are dropped.
** Its state is a malloc'd op behind a small userdata on the waiting
** task's stack (a netreq, net.h); when the task leaves early (cancelled,
** timed out) the request under way is cancelled, and the op is freed by
** whichever comes second, its callback or the userdata's collection.
** corio.connect_unix (pipe.c) uses the same op, with one connect and no
** lookup.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "net.h"

/* ------------------------------------------------------------ connect */

/* one address of corio.connect */
typedef struct attempt {
  uv_connect_t req;
  connop *op;
  netstream *st;         /* while it connects; NULL once dropped or won */
  struct sockaddr_storage addr;
  uint8_t stall;         /* the test hook's: never connects */
} attempt;

/* no callback is to come and no userdata holds it */
static void op_free(netreq *r) {
  connop *op = (connop *)r;
  int i;
  if (op->st != NULL) corio__stream_discard(op->st);  /* connected, never handed out */
  for (i = 0; i < op->natt; i++)  /* stalled attempts (no callback) */
    if (op->att[i].st != NULL) corio__stream_discard(op->att[i].st);
  free(op->att);
  free(r);
}

/* the task left (op->task NULL) or will never come back (the userdata
   was collected with the task: op->task is stale) */
static int orphaned(connop *op) {
  return op->task == NULL || op->r.gone;
}

static void op_finish(connop *op) {
  op->done = 1;
  if (op->task != NULL)
    corio_task_wake(&op->S->loop, &op->task->core, CORIO_WAKE_NORMAL);
}

/* a callback is to come / has run (then op may be freed: touch it no more) */
static void pend(connop *op) {
  op->pending++;
  op->r.busy = 1;
}

static void unpend(connop *op) {
  if (--op->pending == 0) corio__netreq_done(&op->r);
}

static void on_timer_closed(uv_handle_t *h) {
  unpend((connop *)h->data);
}

static void timer_close(connop *op) {
  if (!op->timer_on) return;
  op->timer_on = 0;
  uv_close((uv_handle_t *)&op->timer, on_timer_closed);
}

/* Happy Eyeballs is over (won, failed or abandoned): every attempt under
   way is dropped (a connect's callback comes with ECANCELED), no other
   starts */
static void race_stop(connop *op) {
  int i;
  for (i = 0; i < op->next; i++) {
    attempt *a = &op->att[i];
    if (a->st != NULL) {
      corio__stream_discard(a->st);
      a->st = NULL;
    }
  }
  op->next = op->natt;
  op->active = 0;
  timer_close(op);
}

static void start_next(connop *op);

static void on_delay(uv_timer_t *t) {
  connop *op = (connop *)t->data;
  if (orphaned(op)) race_stop(op);
  else start_next(op);
}

/* the next address starts after the delay unless this one fails first */
static void arm_timer(connop *op) {
  if (op->next >= op->natt) {  /* none left to start */
    timer_close(op);
    return;
  }
  if (op->delay < 0) return;
  if (!op->timer_on) {
    uv_timer_init(op->S->loop.uv, &op->timer);
    op->timer.data = op;
    op->timer_on = 1;
    pend(op);  /* its close callback */
  }
  uv_timer_start(&op->timer, on_delay, (uint64_t)(op->delay * 1000 + 0.5), 0);
}

static void on_attempt(uv_connect_t *req, int status);

/* start the next address (skipping those that fail at once); when none
   is under way and none is left, the connect has failed */
static void start_next(connop *op) {
  while (op->next < op->natt) {
    attempt *a = &op->att[op->next++];
    int err = 0;
    a->op = op;
    a->st = corio__stream_alloc(op->S, NS_TCP, op->limit, op->hwm);
    if (a->st == NULL) {
      op->err = UV_ENOMEM;
      continue;
    }
    if (!a->stall)
      err = uv_tcp_connect(&a->req, &a->st->tcp,
                           (const struct sockaddr *)&a->addr, on_attempt);
    if (err == 0) {
      if (!a->stall) pend(op);
      op->active++;
      arm_timer(op);
      return;
    }
    op->err = err;
    corio__stream_discard(a->st);
    a->st = NULL;
  }
  timer_close(op);
  if (op->active == 0) {
    race_stop(op);
    op_finish(op);
  }
}

static void on_attempt(uv_connect_t *req, int status) {
  attempt *a = corio__container_of(req, attempt, req);
  connop *op = a->op;
  if (a->st != NULL) {  /* not dropped meanwhile */
    op->active--;
    if (status == 0 && !op->done && !orphaned(op)) {  /* the first: it wins */
      op->st = a->st;
      a->st = NULL;
      race_stop(op);
      op_finish(op);
    }
    else {
      if (status != 0) op->err = status;
      corio__stream_discard(a->st);
      a->st = NULL;
      if (orphaned(op)) race_stop(op);
      else if (!op->done) start_next(op);  /* a failure starts the next now */
    }
  }
  unpend(op);
}

static int usable(const struct addrinfo *ai) {
  return (ai->ai_family == AF_INET || ai->ai_family == AF_INET6) &&
         ai->ai_addrlen <= sizeof(struct sockaddr_storage);
}

/* the next usable answer of family fam from *p on (NULL: none) */
static const struct addrinfo *next_of(const struct addrinfo **p, int fam) {
  const struct addrinfo *ai = *p;
  while (ai != NULL && !(usable(ai) && ai->ai_family == fam)) ai = ai->ai_next;
  *p = ai != NULL ? ai->ai_next : NULL;
  return ai;
}

/* the attempts, one per answer: the families interleaved, starting with
   the first answer's (RFC 8305, section 4), each in getaddrinfo's order */
static int take_addresses(connop *op, const struct addrinfo *res) {
  const struct addrinfo *ai, *cur[2];
  int n = 0, fam[2] = {AF_INET6, AF_INET}, turn = 0, k = 0;
  for (ai = res; ai != NULL; ai = ai->ai_next)
    if (usable(ai) && n++ == 0 && ai->ai_family == AF_INET) {
      fam[0] = AF_INET;
      fam[1] = AF_INET6;
    }
  op->att = (attempt *)calloc(n > 0 ? (size_t)n : 1, sizeof *op->att);
  if (op->att == NULL) return UV_ENOMEM;
  cur[0] = cur[1] = res;
  while (k < n) {
    ai = next_of(&cur[turn], fam[turn]);
    if (ai != NULL) memcpy(&op->att[k++].addr, ai->ai_addr, ai->ai_addrlen);
    turn ^= 1;
  }
  op->natt = n;
  return 0;
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  connop *op = corio__container_of(req, connop, gai);
  op->looking = 0;
  if (!orphaned(op)) {
    if (status == 0) status = take_addresses(op, res);
    if (status < 0) {
      op->err = status;
      op_finish(op);
    }
    else start_next(op);  /* no address at all: fails (EAI_NONAME) */
  }
  uv_freeaddrinfo(res);
  unpend(op);
}

/* connect_unix: its one connect ended */
void corio__connect_cb(uv_connect_t *req, int status) {
  connop *op = corio__container_of(req, connop, req);
  if (orphaned(op)) {  /* abandoned: the stream was discarded already */
    op->st = NULL;
    corio__netreq_done(&op->r);
    return;
  }
  op->r.busy = 0;
  if (status != 0) {
    op->err = status;
    corio__stream_discard(op->st);
    op->st = NULL;
  }
  op_finish(op);
}

/* the task leaves the wait early: undo what is under way */
static void op_abandon(connop *op) {
  op->task = NULL;
  if (op->tcp) {
    if (op->looking) uv_cancel((uv_req_t *)&op->gai);  /* on_resolved frees */
    race_stop(op);
  }
  else if (op->r.busy == 2) {  /* connect_unix: corio__connect_cb runs with ECANCELED */
    corio__stream_discard(op->st);
    return;
  }
  if (op->st != NULL) {  /* connected, never handed out: close it now */
    corio__stream_discard(op->st);
    op->st = NULL;
  }
}

/* the connected stream's userdata, under lua_pcall: if it cannot be
   made, connect_k closes the stream at once (the caller never got it, so
   nothing else would until the request is collected) */
static int push_stream_lua(lua_State *L) {
  corio__stream_push(L, (netstream *)lua_touserdata(L, 1));
  return 1;
}

static int connect_k(lua_State *L, int status, lua_KContext ctx) {
  corio_State *S = (corio_State *)ctx;
  luatask *t = S->current;
  connop *op = (connop *)corio__netreq_at(L, 4);
  lua_Number deadline = lua_tonumber(L, 5);
  (void)status;
  if (t->core.wake != CORIO_WAKE_NORMAL) {
    op_abandon(op);
    corio__wake_check(L, S, t);
  }
  t->what = W_NONE;
  if (!op->done) {
    corio_loop_update_time(&S->loop);
    if (deadline > 0 && (lua_Number)S->loop.now >= deadline) {
      op_abandon(op);
      return corio__net_error(L, UV_ETIMEDOUT);
    }
    if (deadline > 0)  /* woken early: wait for the rest of the time */
      corio_task_sleep_until(&S->loop, &t->core, (uint64_t)deadline);
    else corio_task_park(&S->loop, &t->core);
    t->what = W_CONNECT;
    return corio__suspend(L, S, connect_k);
  }
  op->task = NULL;
  if (op->st == NULL) return corio__net_error(L, op->err ? op->err : UV_EAI_NONAME);
  if (op->nodelay) uv_tcp_nodelay(&op->st->tcp, 1);
  lua_pushcfunction(L, push_stream_lua);
  lua_pushlightuserdata(L, op->st);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {  /* out of memory: never handed out */
    corio__stream_discard(op->st);
    op->st = NULL;
    return lua_error(L);
  }
  op->st = NULL;
  return 1;
}

/* The start of every connect: checks the options (at index opts, 3 at
   most), a checkpoint, then the op in a userdata at index 4. opts:
   timeout, limit, high_water, nodelay. */
connop *corio__connect_begin(lua_State *L, corio_State *S, const char *fname,
                             int opts) {
  connop *op;
  lua_Number timeout = 0;
  if (corio__opt_table(L, opts)) {
    timeout = corio__opt_seconds(L, opts, "timeout", 0, 0);
    if (timeout < 0) timeout = 0;  /* infinity: no timeout */
  }
  corio__opt_size(L, opts, "limit", NET_LIMIT);  /* misuse raises before the checkpoint */
  corio__opt_size(L, opts, "high_water", NET_HWM);
  corio__checkpoint(L, S, fname);
  lua_settop(L, 3);
  op = (connop *)corio__netreq_push(L, sizeof *op, sizeof *op, op_free);  /* 4 */
  if (op == NULL) luaL_error(L, "%s: out of memory", fname);
  op->S = S;
  op->timeout = timeout;
  op->limit = corio__opt_size(L, opts, "limit", NET_LIMIT);
  op->hwm = corio__opt_size(L, opts, "high_water", NET_HWM);
  /* corio gathers small writes itself: no Nagle delay */
  op->nodelay = (uint8_t)corio__opt_bool(L, opts, "nodelay", 1);
  return op;
}

/* the request is under way (op->r.busy): the task
   waits for the end */
int corio__connect_wait(lua_State *L, corio_State *S, connop *op) {
  luatask *t = S->current;
  lua_settop(L, 4);
  op->task = t;
  if (op->timeout > 0) {
    uint64_t when = S->loop.now + (uint64_t)(op->timeout * 1e9);
    lua_pushnumber(L, (lua_Number)when);                   /* 5 */
    corio_task_sleep_until(&S->loop, &t->core, when);
  }
  else {
    lua_pushnil(L);
    corio_task_park(&S->loop, &t->core);
  }
  t->what = W_CONNECT;
  return corio__suspend(L, S, connect_k);
}

/* happy_eyeballs_delay: seconds (default 0.25), or false: the next
   address starts only when the one before has failed */
static lua_Number opt_delay(lua_State *L, int opts) {
  int off;
  lua_getfield(L, opts, "happy_eyeballs_delay");
  off = lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (off) return -1;
  return corio__opt_seconds(L, opts, "happy_eyeballs_delay", 0.25, 1);
}

#define HOOK_KEY "corio.connect_hook"

/* core._connect_hook(host, list): for tests, corio.connect(host, port)
   takes list's addresses instead of a lookup: numeric addresses, and
   "stall" for one whose connect never ends (a blackhole). list nil:
   forget host. */
static int l_connect_hook(lua_State *L) {
  luaL_checkstring(L, 1);
  if (!lua_isnil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  if (lua_getfield(L, LUA_REGISTRYINDEX, HOOK_KEY) != LUA_TTABLE) {  /* 3 */
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, HOOK_KEY);
  }
  lua_insert(L, 1);
  lua_rawset(L, 1);
  return 0;
}

/* the hook's addresses for host into op (1), or 0 when it has none */
static int hooked(lua_State *L, connop *op, const char *host, int port) {
  int i, n;
  if (lua_getfield(L, LUA_REGISTRYINDEX, HOOK_KEY) != LUA_TTABLE ||
      lua_getfield(L, -1, host) != LUA_TTABLE) {
    lua_settop(L, 4);
    return 0;
  }
  n = (int)lua_rawlen(L, -1);
  op->att = (attempt *)calloc(n > 0 ? (size_t)n : 1, sizeof *op->att);
  if (op->att == NULL) luaL_error(L, "corio.connect: out of memory");
  for (i = 0; i < n; i++) {
    attempt *a = &op->att[i];
    const char *s = (lua_rawgeti(L, -1, i + 1), lua_tostring(L, -1));
    if (s != NULL && strcmp(s, "stall") == 0) a->stall = 1;
    else if (s == NULL ||
             (uv_ip4_addr(s, port, (struct sockaddr_in *)&a->addr) != 0 &&
              uv_ip6_addr(s, port, (struct sockaddr_in6 *)&a->addr) != 0))
      luaL_error(L, "corio.connect: hook: bad address");
    lua_pop(L, 1);
  }
  op->natt = n;
  lua_settop(L, 4);
  return 1;
}

/* corio.connect(host, port [, opts]) (suspends) -> Stream, or nil, msg,
   code. opts: timeout (seconds: nil, "ETIMEDOUT..." when it passes),
   limit, high_water, nodelay (default true), happy_eyeballs_delay. */
/* The tls option of connect and serve: the Lua layer (lua/corio/tls.lua)
   gives the function that does the TLS part (core._tls_hooks), and
   connect and serve, which stay the public C functions so that their
   argument errors name them, hand such a call to it. It calls them again
   without the option. */
#define TLS_HOOKS "corio.tls.hooks"

static int l_tls_hooks(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_settop(L, 2);
  lua_createtable(L, 2, 0);
  lua_insert(L, 1);
  lua_rawseti(L, 1, 2);
  lua_rawseti(L, 1, 1);
  lua_setfield(L, LUA_REGISTRYINDEX, TLS_HOOKS);
  return 0;
}

static int tls_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  return lua_gettop(L);
}

/* opts at index o has a true tls field and a hook is set: call it with the
   arguments (it suspends, so through lua_callk) and answer its results */
static int tls_dispatch(lua_State *L, int o, int which) {
  int tls;
  if (lua_type(L, o) != LUA_TTABLE) return -1;
  lua_getfield(L, o, "tls");
  tls = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (!tls) return -1;
  if (lua_getfield(L, LUA_REGISTRYINDEX, TLS_HOOKS) != LUA_TTABLE) {
    lua_pop(L, 1);
    return -1;
  }
  lua_rawgeti(L, -1, which);
  lua_remove(L, -2);
  lua_insert(L, 1);
  lua_callk(L, lua_gettop(L) - 1, LUA_MULTRET, 0, tls_k);
  return tls_k(L, LUA_OK, 0);
}

static int l_connect(lua_State *L) {
  corio_State *S = corio__state(L);
  const char *host;
  int p;
  lua_Number delay;
  char port[16];
  connop *op;
  struct addrinfo hints;
  int err;
  host = corio__check_host(L, 1);
  p = corio__check_port(L, 2, 1);
  if ((err = tls_dispatch(L, 3, 1)) >= 0) return err;
  delay = corio__opt_table(L, 3) ? opt_delay(L, 3) : 0.25;
  op = corio__connect_begin(L, S, "corio.connect", 3);
  op->tcp = 1;
  op->delay = delay;
  if (hooked(L, op, host, p)) {
    start_next(op);
    if (op->done) return corio__net_error(L, op->err ? op->err : UV_EAI_NONAME);
    return corio__connect_wait(L, S, op);
  }
  snprintf(port, sizeof port, "%d", p);
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  err = uv_getaddrinfo(S->loop.uv, &op->gai, on_resolved, host, port, &hints);
  if (err) return corio__net_error(L, err);
  op->looking = 1;
  pend(op);
  return corio__connect_wait(L, S, op);
}

/* ------------------------------------------------------------ serving */

/* one try of corio.serve: a listener on sa */
typedef struct listening {
  corio_State *S;
  const serveopts *o;
  netserver *srv;
  int err;               /* the last try's error */
} listening;

static int try_listen(void *ctx, const struct sockaddr *sa, size_t len) {
  listening *l = (listening *)ctx;
  l->srv = corio__server_listen(l->S, NS_TCP, sa, len, l->o, &l->err);
  return l->srv != NULL || l->err == UV_ENOMEM;
}

/* corio.serve(host, port, handler [, opts]) -> Server, or nil, msg, code:
   handler(stream) runs in a task of its own for each connection. opts:
   backlog (511), limit, high_water, nodelay (for the streams),
   reuse_port (SO_REUSEPORT before the bind). The host is
   resolved at once (a name costs one blocking lookup, here), and each of
   its addresses tried in turn. */
static int l_serve(lua_State *L) {
  corio_State *S = corio__state(L);
  const char *host;
  int port;
  serveopts o;
  listening l;
  int err;
  host = corio__check_host(L, 1);
  port = corio__check_port(L, 2, 0);
  luaL_checktype(L, 3, LUA_TFUNCTION);
  if ((err = tls_dispatch(L, 4, 2)) >= 0) return err;
  corio__serve_prepare(L, "corio.serve", 3, 4, &o);            /* 5 */
  l.S = S;
  l.o = &o;
  l.srv = NULL;
  l.err = UV_EADDRNOTAVAIL;  /* no address at all */
  err = corio__net_resolve_each(S->loop.uv, corio__net_bind_host(host),
                                port, AF_UNSPEC, SOCK_STREAM, try_listen, &l);
  if (err) return corio__net_error(L, err);
  if (l.srv == NULL) return corio__net_error(L, l.err);
  return corio__server_start(L, l.srv);
}

const luaL_Reg corio__tcp_funcs[] = {
  {"connect", l_connect},
  {"serve", l_serve},
  {"_tls_hooks", l_tls_hooks},
  {"_connect_hook", l_connect_hook},
  {NULL, NULL}
};

/* stack: state userdata at -1 */
void corio__open_tcp(lua_State *L) {
  corio__open_server(L);
}
