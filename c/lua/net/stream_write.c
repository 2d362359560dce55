/*
** stream_write.c: the Stream's writes. A small write made by a task
** while nothing is queued is gathered in the stream's own buffer (obuf)
** and the stream goes on the state's corked list; when the batch of ready
** tasks ends, the loop calls corio__streams_flush, which writes each
** gathered buffer with one uv_try_write. So a task answering many
** pipelined requests makes one syscall per batch, not one per answer
** (what Nagle's algorithm would do, without its delay: TCP streams are
** NODELAY by default). Any other write goes out at once, after what was
** gathered and in the same call: uv_try_write first; what the kernel
** does not take is copied into one uv_write request. write suspends while more than the high-water mark is queued,
** until it drains below half. A drain, shutdown or close flushes the
** gathered bytes first; an abort drops them.
*/
#include <stdlib.h>
#include <string.h>
#include "net.h"

/* ------------------------------------------------------------ writing */

/* a write request of len bytes has ended (libuv's or stdio.c's) */
void corio__stream_written(netstream *st, size_t len, int status) {
  st->queued -= len;
  if (status < 0 && status != UV_ECANCELED && st->werr == 0) st->werr = status;
  if (st->werr) {
    corio__stream_wake_writers(st, 1);
    if (st->h.state == NET_CLOSING) corio__stream_close_now(st);
    return;
  }
  corio__stream_wake_writers(st, 0);
  if (st->queued == 0 && st->h.state == NET_CLOSING) corio__stream_close_now(st);
}

static void on_write(uv_write_t *req, int status) {
  writereq *w = (writereq *)req;
  netstream *st = w->st;
  size_t len = w->len;
  corio__list_remove(&w->node);
  free(w);
  corio__stream_written(st, len, status);
}

#define MAXBUFS 16

/* queue bufs[0..n) minus the first `sent` bytes in one request */
static int queue_rest(netstream *st, const uv_buf_t *bufs, int n, size_t sent,
                      size_t total) {
  size_t len = total - sent, off = 0;
  writereq *w = (writereq *)malloc(offsetof(writereq, data) + len);
  uv_buf_t b;
  int i, err;
  if (w == NULL) return UV_ENOMEM;
  for (i = 0; i < n; i++) {
    size_t l = bufs[i].len;
    const char *p = bufs[i].base;
    if (sent >= l) {
      sent -= l;
      continue;
    }
    memcpy(w->data + off, p + sent, l - sent);
    off += l - sent;
    sent = 0;
  }
  w->st = st;
  w->len = len;
  corio__list_init(&w->node);
  b = uv_buf_init(w->data, (unsigned int)len);
  if (st->type == NS_FILE) err = corio__file_write(st, w);
  else err = uv_write(&w->req, &st->stream, &b, 1, on_write);
  if (err) {
    free(w);
    return err;
  }
  if (st->stdfd >= 0 && st->type != NS_FILE)  /* what the exit flush writes */
    corio__list_push(&st->wpending, &w->node);
  st->queued += len;
  return 0;
}

/* bytes to the socket as they are: what the kernel does not take at
   once is copied into one request (a file's are all queued) */
int corio__stream_send(netstream *st, const uv_buf_t *bufs, int n,
                       size_t total) {
  int err;
  if (st->queued == 0 && st->type != NS_FILE) {
    err = uv_try_write(&st->stream, bufs, (unsigned int)n);
    if (err == UV_EAGAIN || err == UV_ENOSYS) err = 0;
    if (err >= 0 && (size_t)err < total)
      err = queue_rest(st, bufs, n, (size_t)err, total);  /* copies the rest */
    else if (err > 0) err = 0;
  }
  else err = queue_rest(st, bufs, n, 0, total);
  if (err && st->werr == 0) st->werr = err;
  return err;
}

/* ------------------------------------------------------------ gathering */

#define CORK_MAX 16384   /* small writes gather up to this many bytes */

void corio__stream_uncork(netstream *st) {
  st->olen = 0;
  corio__list_remove(&st->corked);  /* harmless when not on the list */
}

/* gather bufs[0..n) (total bytes) in the stream's buffer; -1 if it
   cannot grow (the caller writes them at once instead) */
static int cork(corio_State *S, netstream *st, const uv_buf_t *bufs, int n,
                size_t total) {
  int i;
  if (st->olen + total > st->ocap) {
    size_t cap = st->ocap ? st->ocap : 512;
    char *nb;
    while (cap < st->olen + total) cap *= 2;
    nb = (char *)realloc(st->obuf, cap);
    if (nb == NULL) return -1;
    st->obuf = nb;
    st->ocap = cap;
  }
  for (i = 0; i < n; i++) {
    memcpy(st->obuf + st->olen, bufs[i].base, bufs[i].len);
    st->olen += bufs[i].len;
  }
  if (corio__list_empty(&st->corked))  /* onto the state's list */
    corio__list_push(&S->corked, &st->corked);
  return 0;
}

/* write what the stream gathered (nothing else is queued then): 0 or the
   error, which is also the stream's werr */
int corio__stream_flush(netstream *st) {
  size_t len = st->olen;
  uv_buf_t b = uv_buf_init(st->obuf, (unsigned int)len);
  int err;
  corio__stream_uncork(st);
  if (len == 0) return 0;
  if (st->layer != NULL) err = st->layer->ops->write(st, &b, 1);  /* TLS */
  else err = corio__stream_send(st, &b, 1, len);
  if (err) st->werr = err;
  return err;
}

/* the loop's after_batch: every stream that gathered writes in the batch
   writes them now, before libuv polls */
void corio__streams_flush(corio_loop_t *loop) {
  corio_State *S = (corio_State *)loop->data;
  while (!corio__list_empty(&S->corked)) {
    netstream *st = corio__container_of(S->corked.next, netstream, corked);
    corio__stream_flush(st);  /* unlinks it */
  }
}

static int write_k(lua_State *L, int status, lua_KContext ctx);

/* the writer waits until the queue drains below half the high-water mark */
static int wait_low(lua_State *L, corio_State *S, netstream *st, luatask *t) {
  return corio__stream_await(L, S, st, t, &st->low, write_k);
}

static int write_k(lua_State *L, int status, lua_KContext ctx) {
  corio_State *S = (corio_State *)ctx;
  luatask *t = S->current;
  netstream *st = *(netstream **)lua_touserdata(L, 1);
  (void)status;
  corio__stream_wait_end(st);
  corio__wake_check(L, S, t);  /* what was written stays queued */
  if (st->werr) return corio__stream_error(L, st, st->werr);
  if (st->dropped) {  /* aborted: what was queued is gone */
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
  }
  if (st->queued > st->hwm / 2 && st->h.state != NET_CLOSED)  /* woken early */
    return wait_low(L, S, st, t);
  lua_pushboolean(L, 1);
  return 1;
}

/* stream:write(...) -> true, or nil, msg, code; strings and numbers;
   suspends while more than the high-water mark is queued */
static int s_write(lua_State *L) {
  corio_State *S = corio__state(L);
  netstream *st = corio__stream_check_open(L, S, "stream:write");
  uv_buf_t all[MAXBUFS + 1], *bufs = all + 1;  /* all[0]: what was gathered */
  int n = lua_gettop(L) - 1, i, err;
  size_t total = 0;
  if (n > MAXBUFS) {  /* many pieces: one string */
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (i = 2; i <= n + 1; i++) {
      lua_pushvalue(L, i);
      luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    lua_replace(L, 2);
    lua_settop(L, 2);
    n = 1;
  }
  for (i = 0; i < n; i++) {  /* lua_tolstring: NULL but for strings, numbers */
    size_t len;
    const char *p = lua_tolstring(L, i + 2, &len);
    if (p == NULL) return luaL_typeerror(L, i + 2, "string or number");
    bufs[i].base = (char *)p;
    bufs[i].len = len;
    total += len;
  }
  if (st == NULL) return corio__stream_closed(L, corio__stream_at(L));
  if (st->shut) return luaL_error(L, "stream:write: the stream is shut down");
  if (st->werr) return corio__stream_error(L, st, st->werr);
  if (total == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  if (S->current != NULL && st->queued == 0 && st->type != NS_FILE &&
      st->olen + total <= CORK_MAX && cork(S, st, bufs, n, total) == 0) {
    lua_pushboolean(L, 1);  /* written when the batch ends */
    return 1;
  }
  if (st->olen > 0) {  /* what was gathered goes first, in the same write */
    all[0].base = st->obuf;
    all[0].len = st->olen;
    bufs = all;
    n++;
    total += st->olen;
  }
  if (st->layer != NULL) err = st->layer->ops->write(st, bufs, n);  /* TLS */
  else err = corio__stream_send(st, bufs, n, total);
  corio__stream_uncork(st);  /* the gathered bytes are written or copied */
  if (err) {
    st->werr = err;
    return corio__stream_error(L, st, err);
  }
  if (st->queued > st->hwm && S->current != NULL && lua_isyieldable(L)) {
    luatask *t = corio__checkpoint(L, S, "stream:write");
    lua_settop(L, 1);
    return wait_low(L, S, st, t);
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int drain_k(lua_State *L, int status, lua_KContext ctx) {
  corio_State *S = (corio_State *)ctx;
  luatask *t = S->current;
  netstream *st = *(netstream **)lua_touserdata(L, 1);
  (void)status;
  corio__stream_wait_end(st);
  corio__wake_check(L, S, t);
  if (st->werr) return corio__stream_error(L, st, st->werr);
  if (st->queued > 0 && st->h.state != NET_CLOSED)
    return corio__stream_await(L, S, st, t, &st->empty, drain_k);
  if (st->dropped) {
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* stream:drain() (suspends) -> true once nothing is queued. While
   another task's close flushes the stream, drain waits for that flush:
   true if it completed, nil, "closed" if the bytes were dropped. */
static int s_drain(lua_State *L) {
  corio_State *S = corio__state(L);
  netstream *st = corio__stream_check_open(L, S, "stream:drain");
  luatask *t;
  if (st == NULL) {
    st = corio__stream_at(L);
    if (st == NULL || st->h.state != NET_CLOSING)
      return corio__stream_closed(L, st);
  }
  t = corio__checkpoint(L, S, "stream:drain");
  lua_settop(L, 1);
  if (st->olen > 0) corio__stream_flush(st);
  if (st->werr) return corio__stream_error(L, st, st->werr);
  if (st->queued == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  return corio__stream_await(L, S, st, t, &st->empty, drain_k);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  (void)req;
  (void)status;  /* a failed shutdown shows in the next write or read */
}

/* stream:shutdown() -> true: no more writes; the peer reads EOF after
   what is queued (a file has no such end: only the writes stop) */
static int s_shutdown(lua_State *L) {
  netstream *st = corio__stream_check_open(L, corio__state(L), "stream:shutdown");
  int err = 0;
  if (st == NULL) return corio__stream_closed(L, corio__stream_at(L));
  if (st->shut) {
    lua_pushboolean(L, 1);
    return 1;
  }
  if (st->olen > 0 && corio__stream_flush(st) != 0) return corio__stream_error(L, st, st->werr);
  if (st->layer != NULL) st->layer->ops->close(st);  /* TLS: close_notify first */
  if (st->type != NS_FILE)
    err = uv_shutdown(&st->shutreq, &st->stream, on_shutdown);
  if (err) return corio__net_error(L, err);
  st->shut = 1;
  lua_pushboolean(L, 1);
  return 1;
}

/* registered in the Stream metatable by corio__open_stream */
const luaL_Reg corio__stream_write_methods[] = {
  {"write", s_write},
  {"drain", s_drain},
  {"shutdown", s_shutdown},
  {NULL, NULL}
};
