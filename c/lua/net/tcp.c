/*
** tcp.c: corio.connect and corio.serve (the Server type is in server.c).
**
** connect resolves with uv_getaddrinfo and tries each address in turn.
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

#define PENDING(op) ((op)->r.busy)  /* 1 lookup, 2 connect */

/* no callback is to come and no userdata holds it */
static void op_free(netreq *r) {
  connop *op = (connop *)r;
  if (op->st != NULL) corio__stream_discard(op->st);  /* connected, never handed out */
  if (op->res) uv_freeaddrinfo(op->res);
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

#define on_connect corio__connect_cb

/* connect to the next address; finish when none is left */
static void try_next(connop *op) {
  while (op->cur != NULL) {
    struct addrinfo *ai = op->cur;
    int err;
    op->cur = ai->ai_next;
    op->st = corio__stream_alloc(op->S, NS_TCP, op->limit, op->hwm);
    if (op->st == NULL) {
      op->err = UV_ENOMEM;
      break;
    }
    err = uv_tcp_connect(&op->req, &op->st->tcp, ai->ai_addr, on_connect);
    if (err == 0) {
      PENDING(op) = 2;
      return;
    }
    op->err = err;
    corio__stream_discard(op->st);
    op->st = NULL;
  }
  op_finish(op);
}

void corio__connect_cb(uv_connect_t *req, int status) {
  connop *op = corio__container_of(req, connop, req);
  if (orphaned(op)) {  /* abandoned: the stream was discarded already */
    op->st = NULL;
    corio__netreq_done(&op->r);
    return;
  }
  PENDING(op) = 0;
  if (status == 0) {
    op_finish(op);
    return;
  }
  op->err = status;
  corio__stream_discard(op->st);
  op->st = NULL;
  try_next(op);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  connop *op = corio__container_of(req, connop, gai);
  op->res = res;
  if (orphaned(op)) {
    corio__netreq_done(&op->r);
    return;
  }
  PENDING(op) = 0;
  if (status < 0) {
    op->err = status;
    op_finish(op);
    return;
  }
  op->cur = res;
  try_next(op);
}

/* the task leaves the wait early: undo what is under way */
static void op_abandon(connop *op) {
  op->task = NULL;
  if (PENDING(op) == 1) uv_cancel((uv_req_t *)&op->gai);
  else if (PENDING(op) == 2) {  /* on_connect runs with ECANCELED */
    corio__stream_discard(op->st);
  }
  else if (op->st != NULL) {  /* connected, never handed out: close it now */
    corio__stream_discard(op->st);
    op->st = NULL;
  }
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
  corio__stream_push(L, op->st);
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

/* corio.connect(host, port [, opts]) (suspends) -> Stream, or nil, msg,
   code. opts: timeout (seconds: nil, "ETIMEDOUT..." when it passes),
   limit, high_water, nodelay (default true). */
static int l_connect(lua_State *L) {
  corio_State *S = corio__state(L);
  const char *host = corio__check_host(L, 1);
  int p = corio__check_port(L, 2, 1);
  char port[16];
  connop *op;
  struct addrinfo hints;
  int err;
  op = corio__connect_begin(L, S, "corio.connect", 3);
  snprintf(port, sizeof port, "%d", p);
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  err = uv_getaddrinfo(S->loop.uv, &op->gai, on_resolved, host, port, &hints);
  if (err) return corio__net_error(L, err);
  PENDING(op) = 1;
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
   backlog (511), limit, high_water (for the streams). The host is
   resolved at once (a name costs one blocking lookup, here), and each of
   its addresses tried in turn. */
static int l_serve(lua_State *L) {
  corio_State *S = corio__state(L);
  const char *host = corio__check_host(L, 1);
  int port = corio__check_port(L, 2, 0);
  serveopts o;
  listening l;
  int err;
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
  {NULL, NULL}
};

/* stack: state userdata at -1 */
void corio__open_tcp(lua_State *L) {
  corio__open_server(L);
}
