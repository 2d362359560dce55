/*
** udp.c: UDP sockets (corio.udp and the UDP type).
**
** Receiving: once the socket is bound or connected (or at its first
** recv), libuv reads every datagram that arrives; each is copied into a
** queue of at most `queue` datagrams (default 256). A datagram that finds
** the queue full is dropped and counted (udp:dropped()): UDP semantics,
** and the memory a socket holds stays bounded however fast a peer sends
** and however slowly the task reads. Reading stops when the socket
** closes. One task receives at a time; it waits on the socket's `arrived`
** future, so a cancelled recv leaves every queued datagram in place.
** Sending: uv_udp_try_send first; what the kernel does not take at once
** is copied into a uv_udp_send request and the task waits for it (on the
** request's own future; the request is a netreq, net.h).
** Host names are resolved with a blocking getaddrinfo (numeric addresses
** need none); corio.getaddrinfo resolves without blocking.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "net.h"

#define UDP_MT "corio.UDP"
#define UDP_QUEUE 256          /* default bound of the receive queue */
#define UDP_MAX 65536          /* the largest datagram */

typedef struct dgram {
  struct dgram *next;
  struct sockaddr_storage from;
  size_t len;
  char data[1];
} dgram;

typedef struct netudp {
  nethandle h;
  uv_udp_t udp;
  char *rbuf;            /* libuv receives here, then the bytes are copied */
  dgram *head, *tail;    /* the receive queue */
  size_t qlen, qmax;
  uint64_t dropped;      /* datagrams that found the queue full */
  int rerr;              /* a receive error, for the next recv */
  corio_future_t arrived;  /* wakes the receiver (reused) */
  uint16_t nwait;        /* tasks waiting on it: ref'd while > 0 */
  uint8_t receiving;     /* uv_udp_recv_start is on */
  uint8_t busy;          /* a task is in recv */
  uint8_t connected;
  uint8_t queue_sends;   /* tests: skip uv_udp_try_send */
} netudp;

typedef struct sendreq {
  netreq r;              /* r.busy: the send callback has not run */
  uv_udp_send_t req;
  netudp *u;
  corio_future_t done;
  int status;
  char data[1];
} sendreq;

/* ------------------------------------------------------------ lifetime */

static netudp **box_of(lua_State *L, const char *fname) {
  return (netudp **)corio__check_self(L, 1, UDP_MT, fname, "UDP socket");
}

static netudp *check_open(lua_State *L, const char *fname) {
  netudp *u = *box_of(L, fname);
  if (u == NULL || u->h.state != NET_OPEN)
    luaL_error(L, "%s: the socket is closed", fname);
  return u;
}

static void drop_queue(netudp *u) {
  while (u->head != NULL) {
    dgram *d = u->head;
    u->head = d->next;
    free(d);
  }
  u->tail = NULL;
  u->qlen = 0;
}

static void udp_free(netudp *u) {
  drop_queue(u);
  free(u->rbuf);
  free(u);
}

static void wake_receiver(netudp *u) {
  corio_future_finish(&u->h.S->loop, &u->arrived, CORIO_DONE);
  corio_future_init(&u->arrived);
}

static void on_udp_closed(uv_handle_t *h) {
  netudp *u = (netudp *)h->data;
  u->h.closed = 1;
  if (u->h.gone) udp_free(u);
}

/* Close now: pending sends finish with ECANCELED (their tasks see
   "closed"), the queued datagrams are dropped, the receiver wakes. */
static void udp_close(netudp *u) {
  if (u->h.state == NET_CLOSED) return;
  u->h.state = NET_CLOSED;
  corio__net_untrack(&u->h);
  u->receiving = 0;
  uv_close((uv_handle_t *)&u->udp, on_udp_closed);
  drop_queue(u);
  wake_receiver(u);
}

/* the run's shutdown (net.c): the sockets nobody closed */
void corio__udp_close(nethandle *h) {
  udp_close((netudp *)h);
}

static int u_gc(lua_State *L) {
  netudp **box = (netudp **)lua_touserdata(L, 1);
  netudp *u = *box;
  if (u == NULL) return 0;
  *box = NULL;
  u->h.gone = 1;
  if (u->h.state != NET_CLOSED) udp_close(u);  /* nobody will read */
  else if (u->h.closed) udp_free(u);
  return 0;
}

static void wait_begin(netudp *u, luatask *t, corio_future_t *f) {
  corio_State *S = u->h.S;
  if (u->nwait++ == 0) uv_ref((uv_handle_t *)&u->udp);
  corio_task_await(&S->loop, &t->core, f);
  t->what = W_UDP;
}

static void wait_end(netudp *u) {
  if (--u->nwait == 0) uv_unref((uv_handle_t *)&u->udp);
}

/* ------------------------------------------------------------ addresses */

/* the family the socket has (AF_UNSPEC: not created yet) */
static int family_of(netudp *u) {
  struct sockaddr_storage ss;
  int len = (int)sizeof ss;
  if (uv_udp_getsockname(&u->udp, (struct sockaddr *)&ss, &len) != 0)
    return AF_UNSPEC;
  return ss.ss_family;
}

/* host, port at idx, idx+1 -> the address; an operational failure
   returns its code */
static int arg_address(lua_State *L, netudp *u, int idx, int bind,
                       struct sockaddr_storage *out) {
  const char *host = corio__check_host(L, idx);
  int port = corio__check_port(L, idx + 1, bind ? 0 : 1);
  if (bind) host = corio__net_bind_host(host);
  return corio__net_resolve(u->h.S->loop.uv, host, port, family_of(u),
                            SOCK_DGRAM, out);
}

/* ------------------------------------------------------------ receiving */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
  netudp *u = (netudp *)h->data;
  (void)suggested;
  if (u->rbuf == NULL) u->rbuf = (char *)malloc(UDP_MAX);
  b->base = u->rbuf;
  b->len = u->rbuf != NULL ? UDP_MAX : 0;  /* 0: libuv reports ENOBUFS */
}

static void on_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *b,
                    const struct sockaddr *addr, unsigned flags) {
  netudp *u = (netudp *)h->data;
  dgram *d;
  (void)flags;
  if (nread < 0) {
    u->rerr = (int)nread;
    wake_receiver(u);
    return;
  }
  if (addr == NULL) return;  /* nothing more to read for now */
  if (u->qlen >= u->qmax) {
    u->dropped++;
    return;
  }
  d = (dgram *)malloc(offsetof(dgram, data) + (size_t)nread);
  if (d == NULL) {
    u->dropped++;
    return;
  }
  d->next = NULL;
  d->len = (size_t)nread;
  memcpy(d->data, b->base, (size_t)nread);
  memset(&d->from, 0, sizeof d->from);
  memcpy(&d->from, addr, addr->sa_family == AF_INET6 ?
         sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
  if (u->tail != NULL) u->tail->next = d;
  else u->head = d;
  u->tail = d;
  u->qlen++;
  wake_receiver(u);
}

static int start_receiving(netudp *u) {
  int err;
  if (u->receiving) return 0;
  err = uv_udp_recv_start(&u->udp, on_alloc, on_recv);
  if (err == 0) u->receiving = 1;
  return err;
}

/* pushes data, host, port (or nil, "closed", or the error) and returns
   how many; -1 when nothing is there yet */
static int try_recv(lua_State *L, netudp *u) {
  dgram *d = u->head;
  if (u->h.state != NET_OPEN) {
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
  }
  if (d != NULL) {
    u->head = d->next;
    if (u->head == NULL) u->tail = NULL;
    u->qlen--;
    lua_pushlstring(L, d->data, d->len);
    corio__push_sockaddr(L, (struct sockaddr *)&d->from);
    free(d);
    return 3;
  }
  if (u->rerr) {
    int err = u->rerr;
    u->rerr = 0;
    return corio__net_error(L, err);
  }
  return -1;
}

static int recv_k(lua_State *L, int status, lua_KContext ctx) {
  corio_State *S = (corio_State *)ctx;
  luatask *t = S->current;
  netudp *u = *(netudp **)lua_touserdata(L, 1);
  int n;
  (void)status;
  wait_end(u);
  if (t->core.wake != CORIO_WAKE_NORMAL) u->busy = 0;
  corio__wake_check(L, S, t);  /* raises; the queue is untouched */
  n = try_recv(L, u);
  if (n >= 0) {
    u->busy = 0;
    return n;
  }
  wait_begin(u, t, &u->arrived);
  return corio__suspend(L, S, recv_k);
}

/* udp:recv() (suspends) -> data, host, port; or nil, msg, code */
static int u_recv(lua_State *L) {
  corio_State *S = corio__state(L);
  netudp *u = check_open(L, "udp:recv");
  luatask *t;
  int n, err;
  if (u->busy) return luaL_error(L, "udp:recv: another task is already receiving");
  t = corio__checkpoint(L, S, "udp:recv");
  lua_settop(L, 1);
  if (!u->receiving) {
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&u->udp, &fd) != 0)
      return luaL_error(L, "udp:recv: the socket has no address yet "
                        "(bind, connect or send first)");
    err = start_receiving(u);
    if (err) return corio__net_error(L, err);
  }
  n = try_recv(L, u);
  if (n >= 0) return n;
  u->busy = 1;
  wait_begin(u, t, &u->arrived);
  return corio__suspend(L, S, recv_k);
}

/* udp:dropped() -> how many datagrams found the queue full */
static int u_dropped(lua_State *L) {
  netudp *u = *box_of(L, "udp:dropped");
  lua_pushinteger(L, u != NULL ? (lua_Integer)u->dropped : 0);
  return 1;
}

/* udp:pending() -> how many datagrams are queued */
static int u_pending(lua_State *L) {
  netudp *u = *box_of(L, "udp:pending");
  lua_pushinteger(L, u != NULL ? (lua_Integer)u->qlen : 0);
  return 1;
}

/* ------------------------------------------------------------ sending */

static void sendreq_free(netreq *r) {
  free(r);
}

static void on_send(uv_udp_send_t *req, int status) {
  sendreq *r = corio__container_of(req, sendreq, req);
  r->status = status;
  corio_future_finish(&r->u->h.S->loop, &r->done, CORIO_DONE);
  corio__netreq_done(&r->r);
}

static int send_result(lua_State *L, int status) {
  if (status == UV_ECANCELED) {
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
  }
  if (status < 0) return corio__net_error(L, status);
  lua_pushboolean(L, 1);
  return 1;
}

static int send_k(lua_State *L, int status, lua_KContext ctx) {
  corio_State *S = (corio_State *)ctx;
  luatask *t = S->current;
  sendreq *r = (sendreq *)corio__netreq_at(L, 2);
  (void)status;
  wait_end(r->u);
  corio__wake_check(L, S, t);  /* the datagram goes out anyway */
  if (r->r.busy) {
    wait_begin(r->u, t, &r->done);
    return corio__suspend(L, S, send_k);
  }
  return send_result(L, r->status);
}

/* udp:send(data [, host, port]) -> true, or nil, msg, code; without an
   address on a connected socket only. Suspends (a checkpoint) only when
   the kernel cannot take the datagram at once. */
static int u_send(lua_State *L) {
  corio_State *S = corio__state(L);
  netudp *u = check_open(L, "udp:send");
  size_t len;
  const char *data;
  struct sockaddr_storage ss;
  const struct sockaddr *addr = NULL;
  uv_buf_t buf;
  sendreq *r;
  luatask *t;
  int err;
  if (lua_type(L, 2) != LUA_TSTRING && lua_type(L, 2) != LUA_TNUMBER)
    return luaL_typeerror(L, 2, "string");
  data = lua_tolstring(L, 2, &len);
  if (lua_isnoneornil(L, 3)) {
    if (!u->connected)
      return luaL_error(L, "udp:send: host and port expected (the socket "
                        "is not connected)");
  }
  else {
    if (u->connected)
      return luaL_error(L, "udp:send: the socket is connected: send "
                        "without an address");
    err = arg_address(L, u, 3, 0, &ss);
    if (err) return corio__net_error(L, err);
    addr = (const struct sockaddr *)&ss;
  }
  buf = uv_buf_init((char *)data, (unsigned int)len);
  if (len > UDP_MAX) return corio__net_error(L, UV_EMSGSIZE);
  if (!u->queue_sends) {
    err = uv_udp_try_send(&u->udp, &buf, 1, addr);
    if (err >= 0) {
      lua_pushboolean(L, 1);
      return 1;
    }
    if (err != UV_EAGAIN && err != UV_ENOSYS) return corio__net_error(L, err);
  }
  t = S->current;
  if (t != NULL && lua_isyieldable(L)) t = corio__checkpoint(L, S, "udp:send");
  else t = NULL;
  lua_settop(L, 1);
  r = (sendreq *)corio__netreq_push(L, offsetof(sendreq, data) + (len ? len : 1),
                                    offsetof(sendreq, data), sendreq_free);  /* 2 */
  if (r == NULL) return corio__net_error(L, UV_ENOMEM);
  memcpy(r->data, data, len);
  r->u = u;
  corio_future_init(&r->done);
  buf = uv_buf_init(r->data, (unsigned int)len);
  err = uv_udp_send(&r->req, &u->udp, &buf, 1, addr, on_send);
  if (err == 0) r->r.busy = 1;
  if (err || t == NULL) {  /* failed (freed now), or nobody can wait: it
                              goes out on its own, and on_send frees it */
    corio__netreq_drop(L, 2);
    if (err) return corio__net_error(L, err);
    lua_pushboolean(L, 1);
    return 1;
  }
  wait_begin(u, t, &r->done);
  return corio__suspend(L, S, send_k);
}

/* core._udp_queue_sends(sock, on): the socket's sends skip
   uv_udp_try_send and always wait for libuv (tests reach that path so) */
static int l_queue_sends(lua_State *L) {
  netudp *u = check_open(L, "_udp_queue_sends");
  u->queue_sends = (uint8_t)lua_toboolean(L, 2);
  return 0;
}

/* ------------------------------------------------------------ binding */

/* udp:bind(host, port [, opts]) -> true, or nil, msg, code. Port 0: one
   the kernel picks (see address()). opts: reuseaddr, ipv6only. */
static int u_bind(lua_State *L) {
  netudp *u = check_open(L, "udp:bind");
  struct sockaddr_storage ss;
  unsigned int flags = 0;
  int err;
  if (corio__opt_table(L, 4)) {
    flags = (unsigned int)corio__opt_flag(L, 4, "reuseaddr", UV_UDP_REUSEADDR);
    flags |= (unsigned int)corio__opt_flag(L, 4, "ipv6only", UV_UDP_IPV6ONLY);
  }
  err = arg_address(L, u, 2, 1, &ss);
  if (err == 0) err = uv_udp_bind(&u->udp, (struct sockaddr *)&ss, flags);
  if (err == 0) err = start_receiving(u);
  if (err) return corio__net_error(L, err);
  lua_pushboolean(L, 1);
  return 1;
}

/* udp:connect(host, port) -> true, or nil, msg, code: send() without an
   address goes there, and only its datagrams are received.
   udp:connect() undoes it. */
static int u_connect(lua_State *L) {
  netudp *u = check_open(L, "udp:connect");
  struct sockaddr_storage ss;
  int err;
  if (lua_isnoneornil(L, 2)) {
    if (u->connected) {
      err = uv_udp_connect(&u->udp, NULL);
      if (err) return corio__net_error(L, err);
      u->connected = 0;
    }
    lua_pushboolean(L, 1);
    return 1;
  }
  err = arg_address(L, u, 2, 0, &ss);
  if (err == 0) err = uv_udp_connect(&u->udp, (struct sockaddr *)&ss);
  if (err) return corio__net_error(L, err);
  u->connected = 1;
  err = start_receiving(u);
  if (err) return corio__net_error(L, err);
  lua_pushboolean(L, 1);
  return 1;
}

/* udp:close() -> true; also __close. Waiters wake with nil, "closed";
   the queued datagrams are dropped. A second close does nothing. */
static int u_close(lua_State *L) {
  netudp *u = *box_of(L, "udp:close");
  if (u != NULL) udp_close(u);
  lua_pushboolean(L, 1);
  return 1;
}

/* udp:address() -> host, port (nil, msg, code when not bound yet);
   udp:peer() -> host, port of a connected socket */
static int push_name(lua_State *L, const char *fname,
                     int (*get)(const uv_udp_t *, struct sockaddr *, int *)) {
  netudp *u = check_open(L, fname);
  struct sockaddr_storage ss;
  int len = (int)sizeof ss;
  int err = get(&u->udp, (struct sockaddr *)&ss, &len);
  if (err) return corio__net_error(L, err);
  return corio__push_sockaddr(L, (struct sockaddr *)&ss);
}

static int u_address(lua_State *L) {
  return push_name(L, "udp:address", uv_udp_getsockname);
}

static int u_peer(lua_State *L) {
  return push_name(L, "udp:peer", uv_udp_getpeername);
}

static int u_set_broadcast(lua_State *L) {
  netudp *u = check_open(L, "udp:set_broadcast");
  int err = uv_udp_set_broadcast(&u->udp, lua_isnone(L, 2) || lua_toboolean(L, 2));
  if (err) return corio__net_error(L, err);
  lua_pushboolean(L, 1);
  return 1;
}

static int u_tostring(lua_State *L) {
  netudp *u = *box_of(L, "tostring");
  struct sockaddr_storage a, b;
  int la = (int)sizeof a, lb = (int)sizeof b;
  if (u == NULL || u->h.state != NET_OPEN) {
    lua_pushliteral(L, "udp socket (closed)");
    return 1;
  }
  if (uv_udp_getsockname(&u->udp, (struct sockaddr *)&a, &la) != 0 ||
      corio__push_sockaddr(L, (struct sockaddr *)&a) != 2) {
    lua_pushliteral(L, "udp socket (unbound)");
    return 1;
  }
  if (u->connected &&
      uv_udp_getpeername(&u->udp, (struct sockaddr *)&b, &lb) == 0 &&
      corio__push_sockaddr(L, (struct sockaddr *)&b) == 2) {
    lua_pushfstring(L, "udp socket %s:%d -> %s:%d (open)", lua_tostring(L, -4),
                    (int)lua_tointeger(L, -3), lua_tostring(L, -2),
                    (int)lua_tointeger(L, -1));
    return 1;
  }
  lua_pushfstring(L, "udp socket %s:%d (open)", lua_tostring(L, -2),
                  (int)lua_tointeger(L, -1));
  return 1;
}

/* corio.udp([opts]) -> UDP socket. opts: queue (datagrams kept while
   nobody receives, default 256). Needs a running loop. */
static int l_udp(lua_State *L) {
  corio_State *S = corio__state(L);
  size_t qmax;
  netudp **box;
  netudp *u;
  int err;
  corio__opt_table(L, 1);
  if (!S->running)
    return luaL_error(L, "corio.udp: no running loop (start one with corio.run)");
  qmax = corio__opt_size(L, 1, "queue", UDP_QUEUE);
  box = (netudp **)lua_newuserdatauv(L, sizeof *box, 0);
  *box = NULL;
  luaL_setmetatable(L, UDP_MT);
  u = (netudp *)calloc(1, sizeof *u);
  if (u == NULL) return luaL_error(L, "corio.udp: out of memory");
  err = uv_udp_init(S->loop.uv, &u->udp);
  if (err) {
    free(u);
    return corio__net_error(L, err);
  }
  u->h.S = S;
  u->h.kind = NET_UDP;
  u->h.state = NET_OPEN;
  corio__list_init(&u->h.node);
  u->qmax = qmax;
  corio_future_init(&u->arrived);
  u->udp.data = u;
  uv_unref((uv_handle_t *)&u->udp);
  *box = u;
  corio__net_track(S, &u->h);
  return 1;
}

static const luaL_Reg udp_methods[] = {
  {"bind", u_bind},
  {"connect", u_connect},
  {"send", u_send},
  {"recv", u_recv},
  {"dropped", u_dropped},
  {"pending", u_pending},
  {"address", u_address},
  {"peer", u_peer},
  {"set_broadcast", u_set_broadcast},
  {"close", u_close},
  {NULL, NULL}
};

const luaL_Reg corio__udp_funcs[] = {
  {"udp", l_udp},
  {"_udp_queue_sends", l_queue_sends},
  {NULL, NULL}
};

/* stack: state userdata at -1. The UDP metatable. */
void corio__open_udp(lua_State *L) {
  static const luaL_Reg *const methods[] = {udp_methods, NULL};
  corio__net_class(L, UDP_MT, methods, u_close, u_gc, u_tostring);
  lua_pop(L, 1);
}
