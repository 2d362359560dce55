/*
** stream.c: the Stream type, whatever it is on (TCP, a Unix socket, a
** pipe, a terminal, a file: net.h's NS_*): its lifetime, closing and
** addresses. Reading is in stream_read.c, writing in stream_write.c,
** what every network handle shares in net.c. A file has no libuv stream:
** stdio.c does its reads and writes, and the few branches on NS_FILE
** hand them over.
**
** One task reads at a time; any number may write. A wait parks the task
** (the reader) or makes it await one of two futures of the stream (low,
** empty), so waiting allocates nothing.
*/
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "net.h"

/* ------------------------------------------------------------ lifetime */

static netstream **box_of(lua_State *L, const char *fname) {
  return (netstream **)corio__check_self(L, 1, STREAM_MT, fname, "Stream");
}

static void stream_free(netstream *st) {
  if (st->stdfd >= 0) corio__stdio_closed(st);
  if (st->layer != NULL) st->layer->ops->free(st->layer);
  free(st->obuf);
  free(st->buf);
  free(st->file);
  free(st);
}

void corio__stream_wake_reader(netstream *st) {
  if (st->reader != NULL)
    corio_task_wake(&st->h.S->loop, &st->reader->core, CORIO_WAKE_NORMAL);
}

/* wake the writers (low) and drainers (empty); the futures are reused */
void corio__stream_wake_writers(netstream *st, int all) {
  corio_loop_t *loop = &st->h.S->loop;
  if (all || st->queued <= st->hwm / 2) {
    corio_future_finish(loop, &st->low, CORIO_DONE);
    corio_future_init(&st->low);
  }
  if (all || st->queued == 0) {
    corio_future_finish(loop, &st->empty, CORIO_DONE);
    corio_future_init(&st->empty);
  }
}

void corio__stream_on_closed(uv_handle_t *h) {
  netstream *st = (netstream *)h->data;
  st->h.closed = 1;
  if (st->fdflags >= 0)  /* a shared standard fd: as it was before */
    fcntl(st->stdfd, F_SETFL, st->fdflags);
  if (st->h.gone) stream_free(st);
}

#define on_stream_closed corio__stream_on_closed

/* uv_close now: pending writes fail with ECANCELED (dropped), waiters
   wake and see the stream closed */
static void close_now(netstream *st, int reset) {
  if (st->h.state == NET_CLOSED) return;
  st->h.state = NET_CLOSED;
  st->dropped = st->queued > 0 || st->olen > 0;
  if (st->stdfd >= 0) corio__stdio_closed(st);
  corio__stream_uncork(st);
  corio__net_untrack(&st->h);
  st->reading = 0;
  if (st->type == NS_FILE) corio__file_close(st);
  else if (!reset || uv_tcp_close_reset(&st->tcp, on_stream_closed) != 0)
    uv_close(&st->handle, on_stream_closed);
  corio__stream_wake_reader(st);
  corio__stream_wake_writers(st, 1);
}

void corio__stream_close_now(netstream *st) {
  close_now(st, 0);
}

void corio__stream_close_soon(netstream *st) {
  if (st->h.state == NET_CLOSED) return;
  if (st->olen > 0 && st->werr == 0) corio__stream_flush(st);
  if (st->layer != NULL && st->werr == 0 && st->h.state == NET_OPEN)
    st->layer->ops->close(st);  /* TLS: close_notify after the flush */
  if (st->queued > 0 && st->werr == 0) {
    if (st->h.state == NET_OPEN) {
      st->h.state = NET_CLOSING;
      if (st->reading) {
        if (st->type != NS_FILE) uv_read_stop(&st->stream);
        st->reading = 0;
      }
      corio__stream_wake_reader(st);
    }
  }
  else corio__stream_close_now(st);
}

/* The run's shutdown, once a second (net.c): a stream with bytes queued
   whose peer took none since the last look is closed, dropping them, so
   a peer that never reads cannot hold the process. force 0: a stream a
   task waits on is left alone (the task decides); 1: no task is left,
   waiters do not count; 2: the grace period is over, every stream still
   flushing is dropped. */
void corio__stream_grace(netstream *st, int force) {
  size_t q;
  if (st->h.state == NET_CLOSED || st->queued == 0) return;
  if (force == 0 && st->nwait > 0) return;
  if (st->stdfd >= 0) return;  /* a standard stream waits, as a blocking write would */
  q = st->type == NS_FILE ? corio__file_unwritten(st)
                          : uv_stream_get_write_queue_size(&st->stream);
  if (q == 0) return;  /* all written: the callbacks are due */
  if (force < 2 && q != st->lastq) {  /* moved: look again next time */
    st->lastq = q;
    return;
  }
  corio__stream_close_now(st);
}

/* A stream of `type`, its handle initialised (not yet open on an fd),
   but for NS_TTY: the caller initialises it on its fd, then calls
   corio__stream_attach. */
netstream *corio__stream_alloc(corio_State *S, int type, size_t limit,
                               size_t hwm) {
  netstream *st = (netstream *)calloc(1, sizeof *st);
  if (st == NULL) return NULL;
  st->type = (uint8_t)type;
  st->stdfd = -1;
  st->fdflags = -1;
  st->h.S = S;
  st->h.kind = NET_STREAM;
  st->h.state = NET_OPEN;
  corio__list_init(&st->h.node);
  st->limit = limit;
  st->hwm = hwm;
  corio_future_init(&st->low);
  corio_future_init(&st->empty);
  corio__list_init(&st->conn);
  corio__list_init(&st->corked);
  corio__list_init(&st->wpending);
  if (type == NS_TCP) uv_tcp_init(S->loop.uv, &st->tcp);
  else if (type == NS_UNIX || type == NS_PIPE) uv_pipe_init(S->loop.uv, &st->pipe, 0);
  else if (type == NS_FILE) uv_timer_init(S->loop.uv, &st->timer);
  else return st;
  corio__stream_attach(st);
  return st;
}

void corio__stream_attach(netstream *st) {
  st->handle.data = st;
  uv_unref(&st->handle);
}

/* a stream that never got a userdata (a failed connect or accept) */
void corio__stream_discard(netstream *st) {
  st->h.gone = 1;
  st->h.state = NET_CLOSED;
  uv_close(&st->handle, on_stream_closed);
}

void corio__stream_push(lua_State *L, netstream *st) {
  netstream **box = (netstream **)lua_newuserdatauv(L, sizeof *box, 0);
  *box = st;
  luaL_setmetatable(L, STREAM_MT);
  corio__net_track(st->h.S, &st->h);
}

static int s_gc(lua_State *L) {
  netstream **box = (netstream **)lua_touserdata(L, 1);
  netstream *st = *box;
  if (st == NULL) return 0;
  {
    void **slot = corio__box_slot(st->h.S, box);
    if (*slot == box) *slot = NULL;
  }
  *box = NULL;
  st->h.gone = 1;
  if (st->h.state != NET_CLOSED)  /* forgotten: flush, then close */
    corio__stream_close_soon(st);
  else if (st->h.closed) stream_free(st);
  return 0;
}

/* an open stream; misuse (closed, collected, not a stream) raises. The
   type test compares metatable pointers (luaL_checkudata looks the
   metatable up by name, which costs more than the rest of a read), and
   is skipped for a userdata that passed it lately (its address is kept
   in a slot of S->stream_box): a connection's task calls one stream's
   methods over and over. That userdata's __gc forgets it, so its address
   cannot come back as another type's. The look at the slot is inline
   (net.h); this is the rest. */
netstream **corio__stream_box(lua_State *L, corio_State *S,
                             const char *fname) {
  netstream **box = (netstream **)lua_touserdata(L, 1);
  int ok = box != NULL && lua_getmetatable(L, 1);
  if (ok) {
    ok = lua_topointer(L, -1) == S->stream_mt;
    lua_pop(L, 1);
  }
  if (!ok) corio__bad_self(L, 1, fname, "Stream");  /* raises */
  *corio__box_slot(S, box) = box;
  return box;
}

/* An operation on a stream that is closed (by this task, another, or the
   run's end) is an operational failure, not misuse: nil, "closed", or
   the error that ended the stream (a reset seen by a read or a write). */
int corio__stream_closed(lua_State *L, netstream *st) {
  if (st != NULL) {
    if (st->werr != 0 && st->werr != UV_ECANCELED) return corio__net_error(L, st->werr);
    if (st->rerr != 0 && st->rerr != UV_EOF && st->rerr != UV_ECANCELED)
      return corio__net_error(L, st->rerr);
  }
  lua_pushnil(L);
  lua_pushliteral(L, "closed");
  return 2;
}

/* ------------------------------------------------------------ waiting */

void corio__stream_wait_begin(netstream *st, luatask *t) {
  if (st->nwait++ == 0) uv_ref(&st->handle);
  t->what = W_STREAM;
}

/* t waits on f, one of st's futures (low, empty); k runs when it wakes */
int corio__stream_await(lua_State *L, corio_State *S, netstream *st,
                        luatask *t, corio_future_t *f, lua_KFunction k) {
  corio__stream_wait_begin(st, t);
  corio_task_await(&S->loop, &t->core, f);
  return corio__suspend(L, S, k);
}

void corio__stream_wait_end(netstream *st) {
  if (--st->nwait == 0) uv_unref(&st->handle);
}

static int close_k(lua_State *L, int status, lua_KContext ctx) {
  corio_State *S = (corio_State *)ctx;
  luatask *t = S->current;
  netstream *st = *(netstream **)lua_touserdata(L, 1);
  (void)status;
  corio__stream_wait_end(st);
  corio__wake_check(L, S, t);  /* the flush and close go on without us */
  if (st->h.state != NET_CLOSED)
    return corio__stream_await(L, S, st, t, &st->empty, close_k);
  if (st->werr) return corio__stream_error(L, st, st->werr);
  if (st->dropped) {  /* aborted meanwhile: what was queued is gone */
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* stream:close() (suspends while queued bytes flush) -> true; also the
   stream's __close. Waiting readers wake with nil, "closed". A second
   close does nothing. Cancelled during the flush, the close still
   completes. */
static int s_close(lua_State *L) {
  corio_State *S = corio__state(L);
  netstream *st = *box_of(L, "stream:close");
  luatask *t;
  lua_settop(L, 1);
  if (st == NULL || st->h.state != NET_OPEN) {
    lua_pushboolean(L, 1);
    return 1;
  }
  corio__stream_close_soon(st);
  if (st->werr != 0 && st->werr != UV_ECANCELED && st->h.state == NET_CLOSED)
    return corio__stream_error(L, st, st->werr);  /* a failed write ended it (as close_k) */
  t = S->current;
  if (st->h.state == NET_CLOSED || t == NULL || !lua_isyieldable(L) ||
      corio_task_cancelled_by(&t->core) != NULL) {
    lua_pushboolean(L, 1);
    return 1;
  }
  return corio__stream_await(L, S, st, t, &st->empty, close_k);
}

/* stream:abort() -> true: queued bytes are dropped, the connection reset
   (TCP; other streams are just closed) */
static int s_abort(lua_State *L) {
  netstream *st = *box_of(L, "stream:abort");
  if (st != NULL)  /* a TCP connection is reset (libuv refuses after a shutdown) */
    close_now(st, st->type == NS_TCP && st->h.state == NET_OPEN && !st->shut);
  lua_pushboolean(L, 1);
  return 1;
}

static const char *const typenames[] = { "tcp", "unix", "pipe", "tty", "file" };

/* this end's (peer 0) or the other end's address: host, port (TCP), the
   path (Unix: "" for an unnamed socket), or nil, "ENOTSOCK..." */
static int push_name(lua_State *L, netstream *st, int peer) {
  if (st->type == NS_TCP) {
    struct sockaddr_storage ss;
    int len = (int)sizeof ss, err;
    err = peer ? uv_tcp_getpeername(&st->tcp, (struct sockaddr *)&ss, &len)
               : uv_tcp_getsockname(&st->tcp, (struct sockaddr *)&ss, &len);
    if (err) return corio__net_error(L, err);
    return corio__push_sockaddr(L, (struct sockaddr *)&ss);
  }
  if (st->type == NS_UNIX) {
    char path[256];
    size_t len = sizeof path;
    int err = peer ? uv_pipe_getpeername(&st->pipe, path, &len)
                   : uv_pipe_getsockname(&st->pipe, path, &len);
    if (err) return corio__net_error(L, err);
    lua_pushlstring(L, path, len);
    return 1;
  }
  return corio__net_error(L, UV_ENOTSOCK);
}

/* stream:address() -> host, port (this end); stream:peer() (the other) */
static int s_address(lua_State *L) {
  netstream *st = corio__stream_check_open(L, corio__state(L), "stream:address");
  if (st == NULL) return corio__stream_closed(L, corio__stream_at(L));
  return push_name(L, st, 0);
}

static int s_peer(lua_State *L) {
  netstream *st = corio__stream_check_open(L, corio__state(L), "stream:peer");
  if (st == NULL) return corio__stream_closed(L, corio__stream_at(L));
  return push_name(L, st, 1);
}

/* stream:is_closed() -> true once the stream is closed or closing (by a
   close or abort of any task, or the run's end) */
static int s_is_closed(lua_State *L) {
  netstream *st = *box_of(L, "stream:is_closed");
  lua_pushboolean(L, st == NULL || st->h.state != NET_OPEN);
  return 1;
}

/* set_nodelay, set_keepalive: TCP only; nil, "ENOTSUP..." on the others */
static int s_set_nodelay(lua_State *L) {
  netstream *st = corio__stream_check_open(L, corio__state(L), "stream:set_nodelay");
  int err;
  if (st == NULL) return corio__stream_closed(L, corio__stream_at(L));
  err = st->type != NS_TCP ? UV_ENOTSUP
            : uv_tcp_nodelay(&st->tcp, lua_isnone(L, 2) || lua_toboolean(L, 2));
  if (err) return corio__net_error(L, err);
  lua_pushboolean(L, 1);
  return 1;
}

static int s_set_keepalive(lua_State *L) {
  netstream *st = corio__stream_check_open(L, corio__state(L), "stream:set_keepalive");
  int on = lua_isnone(L, 2) || lua_toboolean(L, 2);
  lua_Integer secs = luaL_optinteger(L, 3, 60);
  int err;
  luaL_argcheck(L, secs > 0, 3, "a positive number of seconds expected");
  if (st == NULL) return corio__stream_closed(L, corio__stream_at(L));
  err = st->type != NS_TCP ? UV_ENOTSUP
        : uv_tcp_keepalive(&st->tcp, on, (unsigned int)secs);
  if (err) return corio__net_error(L, err);
  lua_pushboolean(L, 1);
  return 1;
}

/* "tcp stream 127.0.0.1:5000 -> 127.0.0.1:40000 (open)", "unix stream
   /tmp/s (open)", "pipe stream fd 0 (open)", "tty stream fd 1 (closing)" */
static int s_tostring(lua_State *L) {
  netstream *st = *box_of(L, "tostring");
  const char *state;
  if (st == NULL) {
    lua_pushliteral(L, "stream (closed)");
    return 1;
  }
  if (st->h.state == NET_CLOSED) {
    lua_pushfstring(L, "%s stream (closed)", typenames[st->type]);
    return 1;
  }
  state = st->h.state == NET_OPEN ? "open" : "closing";
  if (st->stdfd >= 0)
    lua_pushfstring(L, "%s stream fd %d (%s)", typenames[st->type],
                    (int)st->stdfd, state);
  else if (st->type == NS_TCP && push_name(L, st, 0) == 2 && push_name(L, st, 1) == 2)
    lua_pushfstring(L, "tcp stream %s:%d -> %s:%d (%s)", lua_tostring(L, -4),
                    (int)lua_tointeger(L, -3), lua_tostring(L, -2),
                    (int)lua_tointeger(L, -1), state);
  else if (st->type == NS_UNIX && push_name(L, st, 1) == 1 && push_name(L, st, 0) == 1)
    lua_pushfstring(L, "unix stream %s (%s)",  /* the path: the peer's or ours */
                    lua_rawlen(L, -2) > 0 ? lua_tostring(L, -2) : lua_tostring(L, -1),
                    state);
  else {
    lua_settop(L, 1);
    lua_pushfstring(L, "%s stream (%s)", typenames[st->type], state);
  }
  return 1;
}

static const luaL_Reg stream_methods[] = {
  {"close", s_close},
  {"abort", s_abort},
  {"address", s_address},
  {"peer", s_peer},
  {"is_closed", s_is_closed},
  {"set_nodelay", s_set_nodelay},
  {"set_keepalive", s_set_keepalive},
  {NULL, NULL}
};

/* stack: state userdata at -1. The Stream metatable and the net state. */
void corio__open_stream(lua_State *L) {
  static const luaL_Reg *const methods[] = {
    stream_methods, corio__stream_read_methods, corio__stream_write_methods, NULL
  };
  corio_State *S = corio__state_of(lua_touserdata(L, -1));
  corio__list_init(&S->corked);
  corio__net_class(L, STREAM_MT, methods, s_close, s_gc, s_tostring);
  S->stream_mt = lua_topointer(L, -1);
  lua_pop(L, 1);
  corio__net_open(L);
}
