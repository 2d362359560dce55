/*
** tcp.c: corio.connect, corio.serve and the Server type.
**
** connect resolves with uv_getaddrinfo and tries each address in turn.
** Its state is a malloc'd op behind a small userdata on the waiting
** task's stack; when the task leaves early (cancelled, timed out) the
** request under way is cancelled and the op is freed by its callback.
**
** A server spawns one task per connection: handler(stream). The stream
** is closed (after its queued writes) when the handler's task ends; an
** error in a handler is an unhandled task error, reported as any other,
** and the server goes on. The listener is anchored while it listens.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "net.h"

#define CONNECT_MT "corio.ConnectOp"

/* ------------------------------------------------------------ connect */

typedef struct connop {
  uv_getaddrinfo_t gai;
  uv_connect_t req;
  corio_State *S;
  struct addrinfo *res, *cur;
  netstream *st;         /* the stream being connected, or connected */
  luatask *task;         /* the waiting task; NULL once it left */
  size_t limit, hwm;
  int err;
  uint8_t pending;       /* 1: getaddrinfo, 2: connect, 0: none */
  uint8_t done;
  uint8_t gone;          /* the userdata was collected */
  uint8_t nodelay;
} connop;

static void op_free(connop *op) {
  if (op->res) uv_freeaddrinfo(op->res);
  free(op);
}

static void op_finish(connop *op) {
  op->done = 1;
  if (op->task != NULL)
    corio_task_wake(&op->S->loop, &op->task->core, CORIO_WAKE_NORMAL);
}

static void on_connect(uv_connect_t *req, int status);

/* connect to the next address; finish when none is left */
static void try_next(connop *op) {
  while (op->cur != NULL) {
    struct addrinfo *ai = op->cur;
    int err;
    op->cur = ai->ai_next;
    op->st = corio__stream_alloc(op->S, op->limit, op->hwm);
    if (op->st == NULL) {
      op->err = UV_ENOMEM;
      break;
    }
    err = uv_tcp_connect(&op->req, &op->st->tcp, ai->ai_addr, on_connect);
    if (err == 0) {
      op->pending = 2;
      return;
    }
    op->err = err;
    corio__stream_discard(op->st);
    op->st = NULL;
  }
  op_finish(op);
}

static void on_connect(uv_connect_t *req, int status) {
  connop *op = corio__container_of(req, connop, req);
  op->pending = 0;
  if (op->task == NULL) {  /* abandoned: the stream was discarded already */
    op->st = NULL;
    if (op->gone) op_free(op);
    return;
  }
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
  op->pending = 0;
  op->res = res;
  if (op->task == NULL) {
    if (op->gone) op_free(op);
    return;
  }
  if (status < 0) {
    op->err = status;
    op_finish(op);
    return;
  }
  op->cur = res;
  try_next(op);
}

static int op_gc(lua_State *L) {
  connop **box = (connop **)lua_touserdata(L, 1);
  connop *op = *box;
  if (op == NULL) return 0;
  *box = NULL;
  op->gone = 1;
  op->task = NULL;
  if (op->st != NULL && !op->pending) {  /* connected, never handed out */
    corio__stream_discard(op->st);
    op->st = NULL;
  }
  if (!op->pending) op_free(op);
  return 0;
}

/* the task leaves the wait early: undo what is under way */
static void op_abandon(connop *op) {
  op->task = NULL;
  if (op->pending == 1) uv_cancel((uv_req_t *)&op->gai);
  else if (op->pending == 2) {  /* on_connect runs with ECANCELED */
    corio__stream_discard(op->st);
  }
}

static int connect_k(lua_State *L, int status, lua_KContext ctx) {
  corio_State *S = (corio_State *)ctx;
  luatask *t = S->current;
  connop *op = *(connop **)lua_touserdata(L, 4);
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

/* corio.connect(host, port [, opts]) (suspends) -> Stream, or nil, msg,
   code. opts: timeout (seconds: nil, "ETIMEDOUT..." when it passes),
   limit, high_water, nodelay. */
static int l_connect(lua_State *L) {
  corio_State *S = corio__state(L);
  const char *host = luaL_checkstring(L, 1);
  char port[16];
  connop **box;
  connop *op;
  struct addrinfo hints;
  lua_Number timeout = 0;
  luatask *t;
  int err;
  lua_Integer p = luaL_checkinteger(L, 2);
  luaL_argcheck(L, p > 0 && p <= 65535, 2, "port out of range");
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    if (lua_getfield(L, 3, "timeout") != LUA_TNIL) {
      timeout = luaL_checknumber(L, -1);
      luaL_argcheck(L, timeout > 0, 3, "timeout must be positive");
    }
    lua_pop(L, 1);
  }
  t = corio__checkpoint(L, S, "corio.connect");
  snprintf(port, sizeof port, "%d", (int)p);
  lua_settop(L, 3);
  box = (connop **)lua_newuserdatauv(L, sizeof *box, 0);   /* 4 */
  *box = NULL;
  luaL_setmetatable(L, CONNECT_MT);
  op = (connop *)calloc(1, sizeof *op);
  if (op == NULL) return luaL_error(L, "corio.connect: out of memory");
  *box = op;
  op->S = S;
  op->limit = corio__opt_size(L, 3, "limit", NET_LIMIT);
  op->hwm = corio__opt_size(L, 3, "high_water", NET_HWM);
  if (!lua_isnoneornil(L, 3)) {
    lua_getfield(L, 3, "nodelay");
    op->nodelay = (uint8_t)lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  err = uv_getaddrinfo(S->loop.uv, &op->gai, on_resolved, host, port, &hints);
  if (err) return corio__net_error(L, err);
  op->pending = 1;
  op->task = t;
  if (timeout > 0) {
    uint64_t when = S->loop.now + (uint64_t)(timeout * 1e9);
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

/* ------------------------------------------------------------ serving */

static netserver *check_server(lua_State *L, const char *fname, int open) {
  netserver *srv = *(netserver **)luaL_checkudata(L, 1, SERVER_MT);
  if (open && (srv == NULL || srv->h.state != NET_OPEN))
    luaL_error(L, "%s: the server is closed", fname);
  return srv;
}

static void server_maybe_free(netserver *srv) {
  if (srv->h.gone && srv->h.closed && srv->timer_closed && srv->nconns == 0)
    free(srv);
}

static void server_maybe_done(netserver *srv) {
  if (srv->h.state == NET_CLOSED && srv->h.closed && srv->nconns == 0 &&
      srv->done.state == CORIO_PENDING)
    corio_future_finish(&srv->h.S->loop, &srv->done, CORIO_DONE);
}

static void on_backoff(uv_timer_t *h);

static void on_listener_closed(uv_handle_t *h) {
  netserver *srv = (netserver *)h->data;
  srv->h.closed = 1;
  if (srv->h.state == NET_OPEN && srv->paused) {  /* EMFILE: listen again soon */
    uv_timer_start(&srv->backoff, on_backoff, 100, 0);
    return;
  }
  server_maybe_done(srv);
  server_maybe_free(srv);
}

static void on_timer_closed(uv_handle_t *h) {
  netserver *srv = (netserver *)h->data;
  srv->timer_closed = 1;
  server_maybe_free(srv);
}

static void on_handler_done(corio_loop_t *loop, corio_waiter_t *w,
                            corio_future_t *f) {
  netstream *st = corio__container_of(w, netstream, handler_done);
  netserver *srv = st->srv;
  (void)loop;
  (void)f;
  st->conn.prev->next = st->conn.next;
  st->conn.next->prev = st->conn.prev;
  st->conn.next = st->conn.prev = &st->conn;
  st->srv = NULL;
  st->handler = NULL;
  srv->nconns--;
  corio__stream_close_soon(st);
  server_maybe_done(srv);
  server_maybe_free(srv);
}

static void on_connection(uv_stream_t *server, int status);

static int listen_on(netserver *srv) {
  int err = uv_tcp_bind(&srv->tcp, (const struct sockaddr *)&srv->addr, 0);
  if (err == 0)
    err = uv_listen((uv_stream_t *)&srv->tcp, srv->backlog, on_connection);
  return err;
}

static void on_backoff(uv_timer_t *h) {
  netserver *srv = (netserver *)h->data;
  int err;
  if (srv->h.state != NET_OPEN) return;
  srv->paused = 0;
  uv_tcp_init(srv->h.S->loop.uv, &srv->tcp);
  srv->tcp.data = srv;
  srv->h.closed = 0;
  err = listen_on(srv);
  if (err == UV_EMFILE || err == UV_ENFILE) {
    srv->paused = 1;
    uv_close((uv_handle_t *)&srv->tcp, on_listener_closed);
  }
  else if (err) {
    fprintf(stderr, "corio: serve: cannot listen again (%s); the server "
            "is closed\n", uv_strerror(err));
    corio__server_close(srv, 0);
  }
}

static void on_connection(uv_stream_t *server, int status) {
  netserver *srv = (netserver *)server->data;
  corio_State *S = srv->h.S;
  lua_State *L;
  netstream *st;
  luatask *t;
  int top;
  if (status == UV_EMFILE || status == UV_ENFILE) {
    /* out of descriptors: libuv would retry the accept at once, so close
       the listener, serve the connections we have, listen again later */
    if (!srv->logged) {
      fprintf(stderr, "corio: serve: %s; pausing accepts for 100 ms\n",
              uv_strerror(status));
      srv->logged = 1;
    }
    if (!srv->paused) {
      srv->paused = 1;
      uv_close((uv_handle_t *)&srv->tcp, on_listener_closed);
    }
    return;
  }
  if (status < 0) return;
  st = corio__stream_alloc(S, srv->limit, srv->hwm);
  if (st == NULL) return;
  if (uv_accept(server, (uv_stream_t *)&st->tcp) != 0) {
    corio__stream_discard(st);
    return;
  }
  L = corio__callback_thread(S->L, S);
  top = lua_gettop(L);
  corio__net_push_anchor(L, srv);                  /* top+1: the Server */
  lua_getiuservalue(L, -1, 1);                     /* top+2: the handler */
  corio__stream_push(L, st);
  t = corio__spawn(L, S, top + 2, 1);
  st->srv = srv;
  st->handler = t;
  st->conn.prev = srv->conns.prev;
  st->conn.next = &srv->conns;
  srv->conns.prev->next = &st->conn;
  srv->conns.prev = &st->conn;
  srv->nconns++;
  corio_waiter_init(&st->handler_done, on_handler_done);
  corio_future_wait(&t->core.done, &st->handler_done);
  lua_settop(L, top);
}

void corio__server_close(netserver *srv, int cancel) {
  corio_State *S = srv->h.S;
  if (cancel) {
    corio_list_t *n;
    for (n = srv->conns.next; n != &srv->conns; n = n->next) {
      netstream *st = corio__container_of(n, netstream, conn);
      corio_task_cancel(&S->loop, &st->handler->core);
    }
  }
  if (srv->h.state != NET_OPEN) return;
  srv->h.state = NET_CLOSED;
  srv->h.node.prev->next = srv->h.node.next;
  srv->h.node.next->prev = srv->h.node.prev;
  srv->h.node.next = srv->h.node.prev = &srv->h.node;
  if (!srv->h.closed && !uv_is_closing((uv_handle_t *)&srv->tcp))
    uv_close((uv_handle_t *)&srv->tcp, on_listener_closed);
  uv_close((uv_handle_t *)&srv->backoff, on_timer_closed);
  corio__net_anchor(corio__callback_thread(S->L, S), srv, 0);
  server_maybe_done(srv);
}

static netserver *server_new(corio_State *S, const struct sockaddr *sa,
                             size_t salen) {
  netserver *srv = (netserver *)calloc(1, sizeof *srv);
  if (srv == NULL) return NULL;
  srv->h.S = S;
  srv->h.kind = NET_SERVER;
  srv->h.node.next = srv->h.node.prev = &srv->h.node;
  srv->conns.next = srv->conns.prev = &srv->conns;
  corio_future_init(&srv->done);
  memcpy(&srv->addr, sa, salen);
  uv_tcp_init(S->loop.uv, &srv->tcp);
  srv->tcp.data = srv;
  return srv;
}

/* corio.serve(host, port, handler [, opts]) -> Server, or nil, msg, code:
   handler(stream) runs in a task of its own for each connection. opts:
   backlog (511), limit, high_water (for the streams). */
static int l_serve(lua_State *L) {
  corio_State *S = corio__state(L);
  const char *host = luaL_checkstring(L, 1);
  lua_Integer port = luaL_checkinteger(L, 2);
  netserver **box;
  netserver *srv = NULL;
  struct addrinfo hints, *ai;
  uv_getaddrinfo_t req;
  char portstr[16];
  size_t limit, hwm, backlog;
  int err;
  luaL_argcheck(L, port >= 0 && port <= 65535, 2, "port out of range");
  luaL_checktype(L, 3, LUA_TFUNCTION);
  if (!lua_isnoneornil(L, 4)) luaL_checktype(L, 4, LUA_TTABLE);
  if (!S->running)
    return luaL_error(L, "corio.serve: no running loop (start one with corio.run)");
  limit = corio__opt_size(L, 4, "limit", NET_LIMIT);
  hwm = corio__opt_size(L, 4, "high_water", NET_HWM);
  backlog = corio__opt_size(L, 4, "backlog", 511);
  lua_settop(L, 4);
  box = (netserver **)lua_newuserdatauv(L, sizeof *box, 1);    /* 5 */
  *box = NULL;
  luaL_setmetatable(L, SERVER_MT);
  lua_pushvalue(L, 3);
  lua_setiuservalue(L, 5, 1);
  /* resolved at once: a name costs one blocking lookup, here */
  if (*host == '\0' || strcmp(host, "*") == 0) host = "0.0.0.0";
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  snprintf(portstr, sizeof portstr, "%d", (int)port);
  err = uv_getaddrinfo(S->loop.uv, &req, NULL, host, portstr, &hints);
  if (err) return corio__net_error(L, err);
  err = UV_EADDRNOTAVAIL;
  for (ai = req.addrinfo; ai != NULL; ai = ai->ai_next) {
    srv = server_new(S, ai->ai_addr, ai->ai_addrlen);
    if (srv == NULL) {
      err = UV_ENOMEM;
      break;
    }
    srv->limit = limit;
    srv->hwm = hwm;
    srv->backlog = backlog > 65535 ? 65535 : (int)backlog;
    err = listen_on(srv);
    if (err == 0) break;
    srv->h.gone = 1;
    srv->h.state = NET_CLOSED;
    srv->timer_closed = 1;
    uv_close((uv_handle_t *)&srv->tcp, on_listener_closed);
    srv = NULL;
  }
  uv_freeaddrinfo(req.addrinfo);
  if (srv == NULL) return corio__net_error(L, err);
  {  /* the bound address (port 0: the port the kernel chose) */
    int len = (int)sizeof srv->addr;
    uv_tcp_getsockname(&srv->tcp, (struct sockaddr *)&srv->addr, &len);
  }
  uv_timer_init(S->loop.uv, &srv->backoff);
  srv->backoff.data = srv;
  srv->h.state = NET_OPEN;
  *box = srv;
  corio__net_track(S, &srv->h);
  corio__net_anchor(L, srv, 5);
  lua_settop(L, 5);
  return 1;
}

/* server:close([{cancel = true}]) -> true: no more connections; the
   handlers go on (or are cancelled) */
static int srv_close(lua_State *L) {
  netserver *srv = check_server(L, "server:close", 0);
  int cancel = 0;
  if (lua_istable(L, 2)) {
    lua_getfield(L, 2, "cancel");
    cancel = lua_toboolean(L, -1);
  }
  if (srv != NULL) corio__server_close(srv, cancel);
  lua_pushboolean(L, 1);
  return 1;
}

static int wait_closed_k(lua_State *L, int status, lua_KContext ctx) {
  corio_State *S = (corio_State *)ctx;
  luatask *t = S->current;
  netserver *srv = *(netserver **)lua_touserdata(L, 1);
  (void)status;
  corio__wake_check(L, S, t);
  if (srv->done.state == CORIO_PENDING) {  /* woken early */
    corio_task_await(&S->loop, &t->core, &srv->done);
    t->what = W_SERVER;
    return corio__suspend(L, S, wait_closed_k);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* server:wait_closed() (suspends) -> true once the server is closed and
   every handler has finished */
static int srv_wait_closed(lua_State *L) {
  corio_State *S = corio__state(L);
  netserver *srv = check_server(L, "server:wait_closed", 0);
  luatask *t = corio__checkpoint(L, S, "server:wait_closed");
  lua_settop(L, 1);
  if (srv == NULL || srv->done.state != CORIO_PENDING) {
    lua_pushboolean(L, 1);
    return 1;
  }
  corio_task_await(&S->loop, &t->core, &srv->done);
  t->what = W_SERVER;
  return corio__suspend(L, S, wait_closed_k);
}

/* server:address() -> host, port */
static int srv_address(lua_State *L) {
  netserver *srv = check_server(L, "server:address", 1);
  return corio__push_sockaddr(L, (const struct sockaddr *)&srv->addr);
}

static int srv_tostring(lua_State *L) {
  netserver *srv = check_server(L, "tostring", 0);
  if (srv == NULL || srv->h.state != NET_OPEN) {
    lua_pushliteral(L, "tcp server (closed)");
    return 1;
  }
  corio__push_sockaddr(L, (const struct sockaddr *)&srv->addr);
  lua_pushfstring(L, "tcp server %s:%d (%d connections)", lua_tostring(L, -2),
                  (int)lua_tointeger(L, -1), (int)srv->nconns);
  return 1;
}

static int srv_gc(lua_State *L) {
  netserver **box = (netserver **)lua_touserdata(L, 1);
  netserver *srv = *box;
  if (srv == NULL) return 0;
  *box = NULL;
  srv->h.gone = 1;
  corio__server_close(srv, 0);  /* only reached once closed: anchored before */
  server_maybe_free(srv);
  return 0;
}

static const luaL_Reg server_methods[] = {
  {"close", srv_close},
  {"wait_closed", srv_wait_closed},
  {"address", srv_address},
  {NULL, NULL}
};

const luaL_Reg corio__tcp_funcs[] = {
  {"connect", l_connect},
  {"serve", l_serve},
  {NULL, NULL}
};

/* stack: state userdata at -1 */
void corio__open_tcp(lua_State *L) {
  luaL_newmetatable(L, SERVER_MT);
  lua_newtable(L);
  lua_pushvalue(L, -3);
  luaL_setfuncs(L, server_methods, 1);
  lua_setfield(L, -2, "__index");
  lua_pushvalue(L, -2);
  lua_pushcclosure(L, srv_close, 1);
  lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, srv_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, srv_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  luaL_newmetatable(L, CONNECT_MT);
  lua_pushcfunction(L, op_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
}
