/*
** server.c: the Server type, whatever it listens on (TCP in tcp.c, a Unix
** domain socket in pipe.c).
**
** A server spawns one task per connection: handler(stream). The stream
** is closed (after its queued writes) when the handler's task ends; an
** error in a handler is an unhandled task error, reported as any other,
** and the server goes on. The listener is anchored while it listens.
** Out of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM), the
** listener is closed for 100 ms and opened again (a Unix server's socket
** file is gone meanwhile). The Lua
** part of an accept runs under lua_pcall (it is reached from a libuv
** callback): out of memory there, the connection is closed, a line goes
** to stderr, and the server goes on.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include "net.h"

static netserver *check_server(lua_State *L, const char *fname, int open) {
  netserver *srv = *(netserver **)corio__check_self(L, 1, SERVER_MT, fname, "Server");
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
  st->handler = NULL;
  corio__stream_close_soon(st);
  if (srv == NULL) return;  /* the server was collected first (forget_conns) */
  corio__list_remove(&st->conn);
  st->srv = NULL;
  srv->nconns--;
  server_maybe_done(srv);
  server_maybe_free(srv);
}

/* The Server userdata is collected while handlers run: nothing can close
   it or wait for it any more (a task waiting in wait_closed holds the
   userdata, so that happens only at lua_close, where such a task is
   gone with the state). The connections forget it, so its memory goes
   once its own handles have closed, whether or not their handlers ever
   finish (at lua_close they never do). */
static void forget_conns(netserver *srv) {
  while (srv->conns.next != &srv->conns) {
    netstream *st = corio__container_of(srv->conns.next, netstream, conn);
    corio__list_remove(&st->conn);
    st->srv = NULL;
  }
  srv->nconns = 0;
  corio_future_init(&srv->done);  /* its waiters went with their tasks */
}

static void on_connection(uv_stream_t *server, int status);

/* srv->tcp (initialised) gets a socket of its own with SO_REUSEPORT set,
   before the bind: libuv has no flag for it */
static int open_reuse_port(netserver *srv) {
#ifdef SO_REUSEPORT
  int on = 1, err;
  int fd = socket(srv->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return uv_translate_sys_error(errno);
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0) {
    err = uv_translate_sys_error(errno);
    close(fd);
    return err;
  }
  err = uv_tcp_open(&srv->tcp, (uv_os_sock_t)fd);  /* makes it non-blocking */
  if (err) close(fd);
  return err;
#else
  (void)srv;
  return UV_ENOTSUP;
#endif
}

/* a new listener handle, bound to srv->addr, listening */
static int listen_on(netserver *srv) {
  uv_loop_t *uv = srv->h.S->loop.uv;
  int err = 0;
  if (srv->type == NS_TCP) {
    uv_tcp_init(uv, &srv->tcp);
    if (srv->reuse_port) err = open_reuse_port(srv);
    if (err == 0)
      err = uv_tcp_bind(&srv->tcp, (const struct sockaddr *)&srv->addr, 0);
  }
  else {
    uv_pipe_init(uv, &srv->pipe, 0);
    err = uv_pipe_bind(&srv->pipe,
                       ((const struct sockaddr_un *)(const void *)&srv->addr)->sun_path);
  }
  srv->handle.data = srv;
  if (err == 0) err = uv_listen(&srv->stream, srv->backlog, on_connection);
  return err;
}

static void on_backoff(uv_timer_t *h) {
  netserver *srv = (netserver *)h->data;
  int err;
  if (srv->h.state != NET_OPEN) return;
  srv->paused = 0;
  srv->h.closed = 0;
  err = listen_on(srv);
  if (err == UV_EMFILE || err == UV_ENFILE) {
    srv->paused = 1;
    uv_close(&srv->handle, on_listener_closed);
  }
  else if (err) {
    fprintf(stderr, "corio: serve: cannot listen again (%s); the server "
            "is closed\n", uv_strerror(err));
    corio__server_close(srv, 0);
  }
}

/* what the Lua part of an accept works on (accept_lua) */
typedef struct acceptctx {
  netserver *srv;
  netstream *st;
  luatask *t;        /* the handler's task, once spawned */
  uint8_t boxed;     /* st has its Stream userdata */
} acceptctx;

/* lua_pcall'd on the callback thread: spawn handler(stream). Any error
   (out of memory) is caught there, not in Lua's panic handler. */
static int accept_lua(lua_State *L) {
  acceptctx *a = (acceptctx *)lua_touserdata(L, 1);
  corio_State *S = a->srv->h.S;
  int top = lua_gettop(L);
  corio__net_push_anchor(L, a->srv);               /* top+1: the Server */
  lua_getiuservalue(L, -1, 1);                     /* top+2: the handler */
  corio__stream_push(L, a->st);
  a->boxed = 1;
  a->t = corio__spawn(L, S, top + 2, 1);
  return 0;
}

/* Out of descriptors or memory: libuv would retry the accept at once, and
   again, without returning to the loop; a connection it accepted and
   nobody takes stops its accepts for good. So the listener closes (with
   what libuv accepted), the connections being served go on, and it listens
   again 100 ms later. */
static void pause_accepts(netserver *srv, int err) {
  if (!srv->logged) {
    fprintf(stderr, "corio: serve: %s; pausing accepts for 100 ms\n",
            uv_strerror(err));
    srv->logged = 1;
  }
  if (!srv->paused) {
    srv->paused = 1;
    uv_close(&srv->handle, on_listener_closed);
  }
}

static void on_connection(uv_stream_t *server, int status) {
  netserver *srv = (netserver *)server->data;
  corio_State *S = srv->h.S;
  lua_State *L;
  netstream *st;
  acceptctx a;
  int top;
  if (status == UV_EMFILE || status == UV_ENFILE || status == UV_ENOBUFS ||
      status == UV_ENOMEM) {
    pause_accepts(srv, status);
    return;
  }
  if (status < 0) return;  /* that connection's own failure: libuv goes on */
  st = corio__stream_alloc(S, srv->type, srv->limit, srv->hwm);
  if (st == NULL) {  /* the connection libuv accepted goes with the listener */
    pause_accepts(srv, UV_ENOMEM);
    return;
  }
  if (uv_accept(server, &st->stream) != 0) {
    corio__stream_discard(st);
    return;
  }
  if (srv->type == NS_TCP && srv->nodelay) uv_tcp_nodelay(&st->tcp, 1);
  L = corio__callback_thread(S->L, S);
  top = lua_gettop(L);
  a.srv = srv;
  a.st = st;
  a.t = NULL;
  a.boxed = 0;
  if (!lua_checkstack(L, 2)) status = LUA_ERRMEM;
  else {
    lua_pushcfunction(L, accept_lua);
    lua_pushlightuserdata(L, &a);
    status = lua_pcall(L, 1, 0, 0);
  }
  if (status != LUA_OK) {  /* no handler: the connection is closed */
    fprintf(stderr, "corio: serve: cannot start a handler (%s); a "
            "connection is closed\n", lua_gettop(L) > top &&
            lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1)
                                           : "not enough memory");
    lua_settop(L, top);
    if (a.boxed) corio__stream_close_now(st);  /* its userdata frees it */
    else corio__stream_discard(st);
    return;
  }
  st->srv = srv;
  st->handler = a.t;
  corio__list_push(&srv->conns, &st->conn);
  srv->nconns++;
  corio_waiter_init(&st->handler_done, on_handler_done);
  corio_future_wait(&a.t->core.done, &st->handler_done);
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
  corio__net_untrack(&srv->h);
  if (!srv->h.closed && !uv_is_closing(&srv->handle))
    uv_close(&srv->handle, on_listener_closed);  /* a Unix one unlinks its path */
  uv_close((uv_handle_t *)&srv->backoff, on_timer_closed);
  corio__net_anchor(corio__callback_thread(S->L, S), srv, 0);
  server_maybe_done(srv);
}

/* Checks what every serve function takes (the handler at index `handler`,
   the opts table at `opts`, a running loop), reads the options, and pushes
   the Server userdata at index opts + 1 (its handler in uservalue 1). */
void corio__serve_prepare(lua_State *L, const char *fname, int handler,
                          int opts, serveopts *o) {
  corio_State *S = corio__state(L);
  netserver **box;
  size_t backlog;
  luaL_checktype(L, handler, LUA_TFUNCTION);
  corio__opt_table(L, opts);
  if (!S->running)
    luaL_error(L, "%s: no running loop (start one with corio.run)", fname);
  o->limit = corio__opt_size(L, opts, "limit", NET_LIMIT);
  o->hwm = corio__opt_size(L, opts, "high_water", NET_HWM);
  backlog = corio__opt_size(L, opts, "backlog", 511);
  o->backlog = backlog > 65535 ? 65535 : (int)backlog;
  o->nodelay = corio__opt_bool(L, opts, "nodelay", 1);
  o->reuse_port = corio__opt_bool(L, opts, "reuse_port", 0);
  lua_settop(L, opts);
  box = (netserver **)lua_newuserdatauv(L, sizeof *box, 1);
  *box = NULL;
  luaL_setmetatable(L, SERVER_MT);
  lua_pushvalue(L, handler);
  lua_setiuservalue(L, -2, 1);
}

/* A server of `type` listening on sa, or NULL and *err. */
netserver *corio__server_listen(corio_State *S, int type,
                                const struct sockaddr *sa, size_t salen,
                                const serveopts *o, int *err) {
  netserver *srv = (netserver *)calloc(1, sizeof *srv);
  if (srv == NULL) {
    *err = UV_ENOMEM;
    return NULL;
  }
  srv->h.S = S;
  srv->h.kind = NET_SERVER;
  corio__list_init(&srv->h.node);
  srv->type = (uint8_t)type;
  corio__list_init(&srv->conns);
  corio_future_init(&srv->done);
  memcpy(&srv->addr, sa, salen);
  srv->limit = o->limit;
  srv->hwm = o->hwm;
  srv->backlog = o->backlog;
  srv->nodelay = (uint8_t)o->nodelay;
  srv->reuse_port = (uint8_t)(type == NS_TCP && o->reuse_port);
  *err = listen_on(srv);
  if (*err == 0) return srv;
  srv->h.gone = 1;
  srv->h.state = NET_CLOSED;
  srv->timer_closed = 1;
  uv_close(&srv->handle, on_listener_closed);
  return NULL;
}

static int anchor_lua(lua_State *L) {
  corio__net_anchor(L, lua_touserdata(L, 1), 2);
  return 0;
}

/* The listening srv goes into the Server userdata at the top of the
   stack, which is returned. The anchor is the one allocation after the
   listener is open: if it fails (out of memory), the listener is closed
   before the error goes on, so no handle the caller never got is left on
   the loop. */
int corio__server_start(lua_State *L, netserver *srv) {
  corio_State *S = srv->h.S;
  lua_pushcfunction(L, anchor_lua);  /* the serve functions use few of the 20 slots */
  lua_pushlightuserdata(L, srv);
  lua_pushvalue(L, -3);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
    srv->h.gone = 1;
    srv->h.state = NET_CLOSED;
    srv->timer_closed = 1;
    uv_close(&srv->handle, on_listener_closed);
    return lua_error(L);  /* the pcall's error: not enough memory */
  }
  if (srv->type == NS_TCP) {  /* the bound address (port 0: the kernel's) */
    int len = (int)sizeof srv->addr;
    uv_tcp_getsockname(&srv->tcp, (struct sockaddr *)&srv->addr, &len);
  }
  uv_timer_init(S->loop.uv, &srv->backoff);
  srv->backoff.data = srv;
  srv->h.state = NET_OPEN;
  *(netserver **)lua_touserdata(L, -1) = srv;
  corio__net_track(S, &srv->h);
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

/* host, port (TCP), or the path (Unix) */
static int push_addr(lua_State *L, netserver *srv) {
  if (srv->type == NS_UNIX) {
    lua_pushstring(L, ((const struct sockaddr_un *)(const void *)&srv->addr)->sun_path);
    return 1;
  }
  return corio__push_sockaddr(L, (const struct sockaddr *)&srv->addr);
}

/* server:address() -> host, port (TCP), or the path (Unix) */
static int srv_address(lua_State *L) {
  return push_addr(L, check_server(L, "server:address", 1));
}

static int srv_tostring(lua_State *L) {
  netserver *srv = check_server(L, "tostring", 0);
  const char *what = srv != NULL && srv->type == NS_UNIX ? "unix" : "tcp";
  if (srv == NULL || srv->h.state != NET_OPEN) {
    lua_pushfstring(L, "%s server (closed)", what);
    return 1;
  }
  if (srv->type == NS_UNIX) {
    push_addr(L, srv);
    lua_pushfstring(L, "unix server %s (%d connections)", lua_tostring(L, -1),
                    (int)srv->nconns);
    return 1;
  }
  push_addr(L, srv);
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
  forget_conns(srv);
  server_maybe_free(srv);
  return 0;
}

static const luaL_Reg server_methods[] = {
  {"close", srv_close},
  {"wait_closed", srv_wait_closed},
  {"address", srv_address},
  {NULL, NULL}
};

/* stack: state userdata at -1. The Server metatable. */
void corio__open_server(lua_State *L) {
  static const luaL_Reg *const methods[] = {server_methods, NULL};
  corio__net_class(L, SERVER_MT, methods, srv_close, srv_gc, srv_tostring);
  lua_pop(L, 1);
}
