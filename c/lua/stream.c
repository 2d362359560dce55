/*
** stream.c: the Stream type (a TCP connection, for now) and what every
** network handle shares: the state's list of open handles (closed by the
** run's shutdown), error values.
**
** Reading: libuv reads into the stream's own buffer (no allocation while
** it has room); a read takes its bytes from there. libuv keeps reading
** while the buffer holds less than the limit plus one chunk (or what the
** waiting read needs), and stops until it drains past that.
** Writing: uv_try_write first; what the kernel does not take is copied
** into one uv_write request. write suspends while more than the high-
** water mark is queued, until it drains below half.
** One task reads at a time; any number may write. A wait parks the task
** (the reader) or makes it await one of two futures of the stream (low,
** empty), so waiting allocates nothing.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "net.h"

enum { R_READ, R_EXACTLY, R_LINE, R_UNTIL, R_ALL };

static const char *const rnames[] = {
  "stream:read", "stream:read_exactly", "stream:read_line",
  "stream:read_until", "stream:read_all"
};

/* ------------------------------------------------------------ the state */

typedef struct netstate {
  corio_list_t handles;  /* open streams and servers */
} netstate;

static netstate *get_net(lua_State *L) {
  netstate *ns;
  lua_getfield(L, LUA_REGISTRYINDEX, NET_REGKEY);
  ns = (netstate *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  return ns;
}

void corio__net_track(corio_State *S, nethandle *h) {
  netstate *ns = get_net(S->L);
  h->node.prev = ns->handles.prev;
  h->node.next = &ns->handles;
  ns->handles.prev->next = &h->node;
  ns->handles.prev = &h->node;
}

static void untrack(nethandle *h) {
  h->node.prev->next = h->node.next;
  h->node.next->prev = h->node.prev;
  h->node.next = h->node.prev = &h->node;
}

/* key -> value in the anchors table (values that must outlive every
   Lua reference: a listening server) */
void corio__net_anchor(lua_State *L, void *key, int idx) {
  if (idx < 0) idx = lua_gettop(L) + idx + 1;
  lua_getfield(L, LUA_REGISTRYINDEX, NET_REGKEY);
  lua_getiuservalue(L, -1, 1);
  lua_pushlightuserdata(L, key);
  if (idx) lua_pushvalue(L, idx);
  else lua_pushnil(L);
  lua_rawset(L, -3);
  lua_pop(L, 2);
}

void corio__net_push_anchor(lua_State *L, void *key) {
  lua_getfield(L, LUA_REGISTRYINDEX, NET_REGKEY);
  lua_getiuservalue(L, -1, 1);
  lua_pushlightuserdata(L, key);
  lua_rawget(L, -2);
  lua_replace(L, -3);
  lua_pop(L, 1);
}

/* nil, "ECONNREFUSED: connection refused", "ECONNREFUSED" */
int corio__net_error(lua_State *L, int err) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", uv_err_name(err), uv_strerror(err));
  lua_pushstring(L, uv_err_name(err));
  return 3;
}

int corio__push_sockaddr(lua_State *L, const struct sockaddr *sa) {
  char host[64];
  int port;
  if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)(const void *)sa;
    uv_ip6_name(a, host, sizeof host);
    port = ntohs(a->sin6_port);
  }
  else if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)(const void *)sa;
    uv_ip4_name(a, host, sizeof host);
    port = ntohs(a->sin_port);
  }
  else return corio__net_error(L, UV_EAFNOSUPPORT);
  lua_pushstring(L, host);
  lua_pushinteger(L, port);
  return 2;
}

size_t corio__opt_size(lua_State *L, int opts, const char *name, size_t dflt) {
  lua_Integer v;
  if (lua_isnoneornil(L, opts)) return dflt;
  if (lua_getfield(L, opts, name) == LUA_TNIL) {
    lua_pop(L, 1);
    return dflt;
  }
  v = lua_tointeger(L, -1);
  if (!lua_isinteger(L, -1) && !(lua_isnumber(L, -1) && (v = (lua_Integer)lua_tonumber(L, -1)) > 0))
    luaL_error(L, "option '%s': a positive integer expected", name);
  if (v <= 0) luaL_error(L, "option '%s': a positive integer expected", name);
  lua_pop(L, 1);
  return (size_t)v;
}

/* ------------------------------------------------------------ shutdown */

static void close_all(netstate *ns, int kind) {
  corio_list_t *n = ns->handles.next;
  while (n != &ns->handles) {
    nethandle *h = corio__container_of(n, nethandle, node);
    n = n->next;  /* closing unlinks h */
    if (h->kind != kind) continue;
    if (kind == NET_SERVER) corio__server_close((netserver *)h, 0);
    else corio__stream_close_soon((netstream *)h);
  }
}

/* The run's shutdown (corio__finish_all) calls this twice: before it
   cancels the tasks, to stop every server accepting (no new handler is
   spawned meanwhile), and once every task has finished, to close the
   streams nobody closed (their queued writes are flushed first). */
void corio__net_shutdown(lua_State *L, corio_State *S, int streams) {
  netstate *ns = get_net(L);
  (void)S;
  if (ns == NULL) return;
  close_all(ns, NET_SERVER);
  if (streams) close_all(ns, NET_STREAM);
}

/* ------------------------------------------------------------ lifetime */

static netstream **box_of(lua_State *L, int idx) {
  return (netstream **)luaL_checkudata(L, idx, STREAM_MT);
}

static void stream_free(netstream *st) {
  free(st->buf);
  free(st);
}

static void wake_reader(netstream *st) {
  if (st->reader != NULL)
    corio_task_wake(&st->h.S->loop, &st->reader->core, CORIO_WAKE_NORMAL);
}

/* wake the writers (low) and drainers (empty); the futures are reused */
static void wake_writers(netstream *st, int all) {
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

static void on_stream_closed(uv_handle_t *h) {
  netstream *st = (netstream *)h->data;
  st->h.closed = 1;
  if (st->h.gone) stream_free(st);
}

/* uv_close now: pending writes fail with ECANCELED (dropped), waiters
   wake and see the stream closed */
static void close_now(netstream *st) {
  if (st->h.state == NET_CLOSED) return;
  st->h.state = NET_CLOSED;
  st->dropped = st->queued > 0;
  untrack(&st->h);
  st->reading = 0;
  uv_close((uv_handle_t *)&st->tcp, on_stream_closed);
  wake_reader(st);
  wake_writers(st, 1);
}

void corio__stream_close_soon(netstream *st) {
  if (st->h.state == NET_CLOSED) return;
  if (st->queued > 0 && st->werr == 0) {
    if (st->h.state == NET_OPEN) {
      st->h.state = NET_CLOSING;
      if (st->reading) {
        uv_read_stop((uv_stream_t *)&st->tcp);
        st->reading = 0;
      }
      wake_reader(st);
    }
  }
  else close_now(st);
}

netstream *corio__stream_alloc(corio_State *S, size_t limit, size_t hwm) {
  netstream *st = (netstream *)calloc(1, sizeof *st);
  if (st == NULL) return NULL;
  st->h.S = S;
  st->h.kind = NET_STREAM;
  st->h.state = NET_OPEN;
  st->h.node.next = st->h.node.prev = &st->h.node;
  st->limit = limit;
  st->hwm = hwm;
  corio_future_init(&st->low);
  corio_future_init(&st->empty);
  st->conn.next = st->conn.prev = &st->conn;
  uv_tcp_init(S->loop.uv, &st->tcp);
  st->tcp.data = st;
  uv_unref((uv_handle_t *)&st->tcp);
  return st;
}

/* a stream that never got a userdata (a failed connect or accept) */
void corio__stream_discard(netstream *st) {
  st->h.gone = 1;
  st->h.state = NET_CLOSED;
  uv_close((uv_handle_t *)&st->tcp, on_stream_closed);
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
  *box = NULL;
  st->h.gone = 1;
  if (st->h.state != NET_CLOSED)  /* forgotten: flush, then close */
    corio__stream_close_soon(st);
  else if (st->h.closed) stream_free(st);
  return 0;
}

/* an open stream; misuse (closed, collected) raises */
static netstream *check_open(lua_State *L, const char *fname) {
  netstream *st = *box_of(L, 1);
  if (st == NULL || st->h.state != NET_OPEN)
    luaL_error(L, "%s: the stream is closed", fname);
  return st;
}

/* ------------------------------------------------------------ waiting */

static void wait_begin(netstream *st, luatask *t) {
  if (st->nwait++ == 0) uv_ref((uv_handle_t *)&st->tcp);
  t->what = W_STREAM;
}

static void wait_end(netstream *st) {
  if (--st->nwait == 0) uv_unref((uv_handle_t *)&st->tcp);
}

/* ------------------------------------------------------------ reading */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
  netstream *st = (netstream *)h->data;
  size_t end = st->rpos + st->rlen;
  (void)suggested;
  if (st->cap - end < 4096) {
    if (st->rpos > 0 && st->cap - st->rlen >= 4096) {  /* compact */
      memmove(st->buf, st->buf + st->rpos, st->rlen);
      st->rpos = 0;
    }
    else {  /* grow */
      size_t cap = st->cap ? st->cap * 2 : 16384;
      char *nb;
      while (cap - st->rlen < 4096) cap *= 2;
      nb = (char *)malloc(cap);
      if (nb == NULL) {
        b->base = NULL;
        b->len = 0;  /* libuv reports UV_ENOBUFS */
        return;
      }
      if (st->rlen) memcpy(nb, st->buf + st->rpos, st->rlen);
      free(st->buf);
      st->buf = nb;
      st->cap = cap;
      st->rpos = 0;
    }
    end = st->rlen;
  }
  b->base = st->buf + end;
  b->len = st->cap - end > NET_CHUNK ? NET_CHUNK : st->cap - end;
}

/* libuv keeps reading while less than this is buffered */
static size_t read_room(const netstream *st) {
  size_t max = st->limit + NET_CHUNK;
  return st->want > max ? st->want : max;
}

static void on_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *b) {
  netstream *st = (netstream *)h->data;
  (void)b;
  if (nread > 0) {
    st->rlen += (size_t)nread;
    if (st->rlen >= read_room(st)) {
      uv_read_stop(h);
      st->reading = 0;
    }
  }
  else if (nread < 0) {
    st->rerr = (int)nread;
    uv_read_stop(h);
    st->reading = 0;
  }
  else return;
  wake_reader(st);
}

/* start reading if the buffer has room and the stream has not ended */
static int read_more(netstream *st) {
  int err;
  if (st->reading || st->rerr || st->rlen >= read_room(st)) return 0;
  err = uv_read_start((uv_stream_t *)&st->tcp, on_alloc, on_read);
  if (err) {
    st->rerr = err;
    return err;
  }
  st->reading = 1;
  return 0;
}

static void consume(netstream *st, size_t n) {
  st->rpos += n;
  st->rlen -= n;
  if (st->rlen == 0) st->rpos = 0;
  st->scanned = 0;
}

static int push_bytes(lua_State *L, netstream *st, size_t n, size_t skip) {
  lua_pushlstring(L, st->buf + st->rpos, n);
  consume(st, n + skip);
  return 1;
}

static int eof_or_error(lua_State *L, netstream *st) {
  if (st->rerr == UV_EOF) {
    lua_pushnil(L);
    return 1;
  }
  return corio__net_error(L, st->rerr);
}

/* find sep in the buffer from where the last search stopped */
static const char *find_sep(netstream *st, const char *sep, size_t len) {
  const char *p = st->buf + st->rpos, *end = p + st->rlen;
  size_t from = st->scanned >= len ? st->scanned - len + 1 : 0;
  const char *q = p + from;
  while (q + len <= end) {
    const char *c = (const char *)memchr(q, sep[0], (size_t)(end - q));
    if (c == NULL || c + len > end) break;
    if (memcmp(c, sep, len) == 0) return c;
    q = c + 1;
  }
  st->scanned = st->rlen;
  return NULL;
}

/* The read the stream's reader asked for, if it can be done now: pushes
   its results and returns how many; -1 to wait for more bytes. */
static int try_read(lua_State *L, netstream *st) {
  size_t n;
  if (st->h.state != NET_OPEN) {
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
  }
  switch (st->rkind) {
    case R_READ:
      if (st->rlen > 0)
        return push_bytes(L, st, st->rlen < st->want ? st->rlen : st->want, 0);
      if (st->rerr) return eof_or_error(L, st);
      return -1;
    case R_EXACTLY:
      if (st->rlen >= st->want) return push_bytes(L, st, st->want, 0);
      if (st->rerr == UV_EOF) {
        lua_pushnil(L);
        lua_pushliteral(L, "eof");
        push_bytes(L, st, st->rlen, 0);
        return 3;
      }
      if (st->rerr) return corio__net_error(L, st->rerr);
      return -1;
    case R_LINE:
    case R_UNTIL: {
      size_t len;
      const char *sep = st->rkind == R_LINE ? "\n" : lua_tolstring(L, 2, &len);
      const char *at;
      if (st->rkind == R_LINE) len = 1;
      at = find_sep(st, sep, len);
      if (at != NULL) {
        n = (size_t)(at - (st->buf + st->rpos));
        if (n > st->limit) break;
        if (st->keep) return push_bytes(L, st, n + len, 0);
        if (st->rkind == R_LINE && n > 0 && at[-1] == '\r')
          return push_bytes(L, st, n - 1, 2);
        return push_bytes(L, st, n, len);
      }
      if (st->rlen > st->limit) break;
      if (st->rerr == UV_EOF) {
        if (st->rlen == 0) {
          lua_pushnil(L);
          return 1;
        }
        if (st->rkind == R_LINE) return push_bytes(L, st, st->rlen, 0);
        lua_pushnil(L);
        lua_pushliteral(L, "eof");
        push_bytes(L, st, st->rlen, 0);
        return 3;
      }
      if (st->rerr) return corio__net_error(L, st->rerr);
      return -1;
    }
    default:  /* R_ALL */
      if (st->rerr == UV_EOF) return push_bytes(L, st, st->rlen, 0);
      if (st->rerr) return corio__net_error(L, st->rerr);
      return -1;
  }
  lua_pushnil(L);
  lua_pushliteral(L, "limit exceeded");
  return 2;
}

static int read_done(netstream *st, int n) {
  st->reader = NULL;
  st->want = 0;
  read_more(st);  /* the buffer may have room again */
  return n;
}

static int read_k(lua_State *L, int status, lua_KContext ctx) {
  corio_State *S = (corio_State *)ctx;
  luatask *t = S->current;
  netstream *st = *(netstream **)lua_touserdata(L, 1);
  int n;
  (void)status;
  wait_end(st);
  if (t->core.wake != CORIO_WAKE_NORMAL) {
    read_done(st, 0);
    corio__wake_check(L, S, t);  /* raises; the bytes stay buffered */
  }
  t->what = W_NONE;
  n = try_read(L, st);
  if (n >= 0) return read_done(st, n);
  read_more(st);
  wait_begin(st, t);
  corio_task_park(&S->loop, &t->core);
  return corio__suspend(L, S, read_k);
}

static int do_read(lua_State *L, int kind, size_t want) {
  corio_State *S = corio__state(L);
  netstream *st = check_open(L, rnames[kind]);
  luatask *t;
  int n;
  if (st->reader != NULL)
    return luaL_error(L, "%s: another task is already reading", rnames[kind]);
  t = corio__checkpoint(L, S, rnames[kind]);
  st->rkind = (uint8_t)kind;
  st->want = want;
  n = try_read(L, st);
  if (n >= 0) {
    st->want = 0;
    if (!st->reading) read_more(st);
    return n;
  }
  st->reader = t;
  read_more(st);
  wait_begin(st, t);
  corio_task_park(&S->loop, &t->core);
  return corio__suspend(L, S, read_k);
}

static size_t check_count(lua_State *L, int idx, size_t dflt) {
  lua_Integer n;
  if (lua_isnoneornil(L, idx)) return dflt;
  n = luaL_checkinteger(L, idx);
  luaL_argcheck(L, n > 0, idx, "a positive count expected");
  return (size_t)n;
}

/* stream:read([n]) (suspends) -> up to n bytes (default 64 KiB), nil at EOF */
static int s_read(lua_State *L) {
  size_t n = check_count(L, 2, NET_CHUNK);
  lua_settop(L, 1);
  return do_read(L, R_READ, n);
}

/* stream:read_exactly(n) (suspends) -> n bytes, or nil, "eof", partial */
static int s_read_exactly(lua_State *L) {
  size_t n = check_count(L, 2, 0);
  if (lua_isnoneornil(L, 2)) luaL_checkinteger(L, 2);
  lua_settop(L, 1);
  return do_read(L, R_EXACTLY, n);
}

/* stream:read_line([keep_eol]) (suspends) -> line, or nil at EOF */
static int s_read_line(lua_State *L) {
  netstream *st = check_open(L, "stream:read_line");
  int keep = lua_toboolean(L, 2);
  lua_settop(L, 1);
  if (st->reader == NULL) st->keep = (uint8_t)keep;
  return do_read(L, R_LINE, 0);
}

/* stream:read_until(sep [, keep]) (suspends) -> data before sep */
static int s_read_until(lua_State *L) {
  netstream *st = check_open(L, "stream:read_until");
  size_t len;
  int keep = lua_toboolean(L, 3);
  luaL_checklstring(L, 2, &len);
  luaL_argcheck(L, len > 0, 2, "empty separator");
  lua_settop(L, 2);
  if (st->reader == NULL) st->keep = (uint8_t)keep;
  return do_read(L, R_UNTIL, 0);
}

/* stream:read_all() (suspends) -> every byte until EOF */
static int s_read_all(lua_State *L) {
  lua_settop(L, 1);
  return do_read(L, R_ALL, (size_t)-1);
}

static int lines_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  if (lua_gettop(L) >= 3 && lua_isnil(L, 2) && !lua_isnil(L, 3))
    return luaL_error(L, "stream:lines: %s", lua_tostring(L, 3));
  return 1;
}

static int lines_iter(lua_State *L) {
  lua_settop(L, 0);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_getfield(L, 1, "read_line");
  lua_pushvalue(L, 1);
  lua_callk(L, 1, LUA_MULTRET, 0, lines_k);
  return lines_k(L, LUA_OK, 0);
}

/* for line in stream:lines() do ... end (each step suspends) */
static int s_lines(lua_State *L) {
  check_open(L, "stream:lines");
  lua_settop(L, 1);
  lua_pushcclosure(L, lines_iter, 1);
  return 1;
}

/* ------------------------------------------------------------ writing */

typedef struct writereq {
  uv_write_t req;
  netstream *st;
  size_t len;
  char data[1];
} writereq;

static void on_write(uv_write_t *req, int status) {
  writereq *w = (writereq *)req;
  netstream *st = w->st;
  st->queued -= w->len;
  free(w);
  if (status < 0 && status != UV_ECANCELED && st->werr == 0) st->werr = status;
  if (st->werr) {
    wake_writers(st, 1);
    if (st->h.state == NET_CLOSING) close_now(st);
    return;
  }
  wake_writers(st, 0);
  if (st->queued == 0 && st->h.state == NET_CLOSING) close_now(st);
}

#define MAXBUFS 16

/* queue bufs[0..n) minus the first `sent` bytes in one request */
static int queue_rest(netstream *st, uv_buf_t *bufs, int n, size_t sent,
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
  b = uv_buf_init(w->data, (unsigned int)len);
  err = uv_write(&w->req, (uv_stream_t *)&st->tcp, &b, 1, on_write);
  if (err) {
    free(w);
    return err;
  }
  st->queued += len;
  return 0;
}

static int write_k(lua_State *L, int status, lua_KContext ctx) {
  corio_State *S = (corio_State *)ctx;
  luatask *t = S->current;
  netstream *st = *(netstream **)lua_touserdata(L, 1);
  (void)status;
  wait_end(st);
  corio__wake_check(L, S, t);  /* what was written stays queued */
  if (st->werr) return corio__net_error(L, st->werr);
  if (st->dropped) {  /* aborted: what was queued is gone */
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
  }
  if (st->queued > st->hwm / 2 && st->h.state != NET_CLOSED) {  /* woken early */
    wait_begin(st, t);
    corio_task_await(&S->loop, &t->core, &st->low);
    t->what = W_STREAM;
    return corio__suspend(L, S, write_k);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* stream:write(...) -> true, or nil, msg, code; strings and numbers;
   suspends while more than the high-water mark is queued */
static int s_write(lua_State *L) {
  corio_State *S = corio__state(L);
  netstream *st = check_open(L, "stream:write");
  uv_buf_t bufs[MAXBUFS];
  int n = lua_gettop(L) - 1, i, err;
  size_t total = 0;
  if (st->shut) return luaL_error(L, "stream:write: the stream is shut down");
  if (st->werr) return corio__net_error(L, st->werr);
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
  for (i = 0; i < n; i++) {
    size_t len;
    const char *p = NULL;
    int ty = lua_type(L, i + 2);
    if (ty == LUA_TSTRING || ty == LUA_TNUMBER) p = lua_tolstring(L, i + 2, &len);
    if (p == NULL) return luaL_typeerror(L, i + 2, "string or number");
    bufs[i] = uv_buf_init((char *)p, (unsigned int)len);
    total += len;
  }
  if (total == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  if (st->queued == 0) {
    err = uv_try_write((uv_stream_t *)&st->tcp, bufs, (unsigned int)n);
    if (err == UV_EAGAIN || err == UV_ENOSYS) err = 0;
    else if (err < 0) {
      st->werr = err;
      return corio__net_error(L, err);
    }
    if ((size_t)err == total) {
      lua_pushboolean(L, 1);
      return 1;
    }
    err = queue_rest(st, bufs, n, (size_t)err, total);
  }
  else err = queue_rest(st, bufs, n, 0, total);
  if (err) {
    st->werr = err;
    return corio__net_error(L, err);
  }
  if (st->queued > st->hwm && S->current != NULL && lua_isyieldable(L)) {
    luatask *t = corio__checkpoint(L, S, "stream:write");
    lua_settop(L, 1);
    wait_begin(st, t);
    corio_task_await(&S->loop, &t->core, &st->low);
    t->what = W_STREAM;
    return corio__suspend(L, S, write_k);
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int drain_k(lua_State *L, int status, lua_KContext ctx) {
  corio_State *S = (corio_State *)ctx;
  luatask *t = S->current;
  netstream *st = *(netstream **)lua_touserdata(L, 1);
  (void)status;
  wait_end(st);
  corio__wake_check(L, S, t);
  if (st->werr) return corio__net_error(L, st->werr);
  if (st->queued > 0 && st->h.state != NET_CLOSED) {
    wait_begin(st, t);
    corio_task_await(&S->loop, &t->core, &st->empty);
    return corio__suspend(L, S, drain_k);
  }
  if (st->dropped) {
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* stream:drain() (suspends) -> true once nothing is queued */
static int s_drain(lua_State *L) {
  corio_State *S = corio__state(L);
  netstream *st = check_open(L, "stream:drain");
  luatask *t = corio__checkpoint(L, S, "stream:drain");
  lua_settop(L, 1);
  if (st->werr) return corio__net_error(L, st->werr);
  if (st->queued == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  wait_begin(st, t);
  corio_task_await(&S->loop, &t->core, &st->empty);
  t->what = W_STREAM;
  return corio__suspend(L, S, drain_k);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  (void)req;
  (void)status;  /* a failed shutdown shows in the next write or read */
}

/* stream:shutdown() -> true: no more writes; the peer reads EOF after
   what is queued */
static int s_shutdown(lua_State *L) {
  netstream *st = check_open(L, "stream:shutdown");
  int err;
  if (st->shut) {
    lua_pushboolean(L, 1);
    return 1;
  }
  err = uv_shutdown(&st->shutreq, (uv_stream_t *)&st->tcp, on_shutdown);
  if (err) return corio__net_error(L, err);
  st->shut = 1;
  lua_pushboolean(L, 1);
  return 1;
}

static int close_k(lua_State *L, int status, lua_KContext ctx) {
  corio_State *S = (corio_State *)ctx;
  luatask *t = S->current;
  netstream *st = *(netstream **)lua_touserdata(L, 1);
  (void)status;
  wait_end(st);
  corio__wake_check(L, S, t);  /* the flush and close go on without us */
  if (st->h.state != NET_CLOSED) {
    wait_begin(st, t);
    corio_task_await(&S->loop, &t->core, &st->empty);
    return corio__suspend(L, S, close_k);
  }
  if (st->werr) return corio__net_error(L, st->werr);
  lua_pushboolean(L, 1);
  return 1;
}

/* stream:close() (suspends while queued bytes flush) -> true; also the
   stream's __close. Waiting readers wake with nil, "closed". A second
   close does nothing. Cancelled during the flush, the close still
   completes. */
static int s_close(lua_State *L) {
  corio_State *S = corio__state(L);
  netstream *st = *box_of(L, 1);
  luatask *t;
  lua_settop(L, 1);
  if (st == NULL || st->h.state != NET_OPEN) {
    lua_pushboolean(L, 1);
    return 1;
  }
  corio__stream_close_soon(st);
  t = S->current;
  if (st->h.state == NET_CLOSED || t == NULL || !lua_isyieldable(L) ||
      corio_task_cancelled_by(&t->core) != NULL) {
    lua_pushboolean(L, 1);
    return 1;
  }
  wait_begin(st, t);
  corio_task_await(&S->loop, &t->core, &st->empty);
  t->what = W_STREAM;
  return corio__suspend(L, S, close_k);
}

/* stream:abort() -> true: queued bytes are dropped, the connection reset */
static int s_abort(lua_State *L) {
  netstream *st = *box_of(L, 1);
  if (st != NULL && st->h.state != NET_CLOSED) {
    if (!st->shut && st->h.state == NET_OPEN) {
      st->h.state = NET_CLOSED;
      st->dropped = st->queued > 0;
      untrack(&st->h);
      st->reading = 0;
      if (uv_tcp_close_reset(&st->tcp, on_stream_closed) != 0)
        uv_close((uv_handle_t *)&st->tcp, on_stream_closed);
      wake_reader(st);
      wake_writers(st, 1);
    }
    else close_now(st);
  }
  lua_pushboolean(L, 1);
  return 1;
}

typedef int (*getname_fn)(const uv_tcp_t *, struct sockaddr *, int *);

static int push_name(lua_State *L, const char *fname, getname_fn fn) {
  netstream *st = check_open(L, fname);
  struct sockaddr_storage ss;
  int len = (int)sizeof ss, err;
  err = fn(&st->tcp, (struct sockaddr *)&ss, &len);
  if (err) return corio__net_error(L, err);
  return corio__push_sockaddr(L, (struct sockaddr *)&ss);
}

/* stream:address() -> host, port (this end); stream:peer() (the other) */
static int s_address(lua_State *L) {
  return push_name(L, "stream:address", uv_tcp_getsockname);
}

static int s_peer(lua_State *L) {
  return push_name(L, "stream:peer", uv_tcp_getpeername);
}

static int s_set_nodelay(lua_State *L) {
  netstream *st = check_open(L, "stream:set_nodelay");
  int err = uv_tcp_nodelay(&st->tcp, lua_isnone(L, 2) || lua_toboolean(L, 2));
  if (err) return corio__net_error(L, err);
  lua_pushboolean(L, 1);
  return 1;
}

static int s_set_keepalive(lua_State *L) {
  netstream *st = check_open(L, "stream:set_keepalive");
  int on = lua_isnone(L, 2) || lua_toboolean(L, 2);
  lua_Integer secs = luaL_optinteger(L, 3, 60);
  int err;
  luaL_argcheck(L, secs > 0, 3, "a positive number of seconds expected");
  err = uv_tcp_keepalive(&st->tcp, on, (unsigned int)secs);
  if (err) return corio__net_error(L, err);
  lua_pushboolean(L, 1);
  return 1;
}

static int s_tostring(lua_State *L) {
  netstream *st = *box_of(L, 1);
  struct sockaddr_storage a, b;
  int la = (int)sizeof a, lb = (int)sizeof b;
  if (st == NULL || st->h.state == NET_CLOSED) {
    lua_pushliteral(L, "tcp stream (closed)");
    return 1;
  }
  if (uv_tcp_getsockname(&st->tcp, (struct sockaddr *)&a, &la) == 0 &&
      uv_tcp_getpeername(&st->tcp, (struct sockaddr *)&b, &lb) == 0 &&
      corio__push_sockaddr(L, (struct sockaddr *)&a) == 2 &&
      corio__push_sockaddr(L, (struct sockaddr *)&b) == 2) {
    lua_pushfstring(L, "tcp stream %s:%d -> %s:%d (%s)", lua_tostring(L, -4),
                    (int)lua_tointeger(L, -3), lua_tostring(L, -2),
                    (int)lua_tointeger(L, -1),
                    st->h.state == NET_OPEN ? "open" : "closing");
    return 1;
  }
  lua_settop(L, 1);
  lua_pushfstring(L, "tcp stream (%s)", st->h.state == NET_OPEN ? "open" : "closing");
  return 1;
}

static const luaL_Reg stream_methods[] = {
  {"read", s_read},
  {"read_exactly", s_read_exactly},
  {"read_line", s_read_line},
  {"read_until", s_read_until},
  {"read_all", s_read_all},
  {"lines", s_lines},
  {"write", s_write},
  {"drain", s_drain},
  {"shutdown", s_shutdown},
  {"close", s_close},
  {"abort", s_abort},
  {"address", s_address},
  {"peer", s_peer},
  {"set_nodelay", s_set_nodelay},
  {"set_keepalive", s_set_keepalive},
  {NULL, NULL}
};

/* stack: state userdata at -1. The Stream metatable and the net state. */
void corio__open_stream(lua_State *L) {
  netstate *ns;
  luaL_newmetatable(L, STREAM_MT);
  lua_newtable(L);
  lua_pushvalue(L, -3);
  luaL_setfuncs(L, stream_methods, 1);
  lua_setfield(L, -2, "__index");
  lua_pushvalue(L, -2);
  lua_pushcclosure(L, s_close, 1);
  lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, s_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, s_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  ns = (netstate *)lua_newuserdatauv(L, sizeof *ns, 1);
  ns->handles.next = ns->handles.prev = &ns->handles;
  lua_newtable(L);
  lua_setiuservalue(L, -2, 1);
  lua_setfield(L, LUA_REGISTRYINDEX, NET_REGKEY);
}
