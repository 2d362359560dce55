/*
** stream_read.c: the Stream's reads. libuv reads into the stream's own
** buffer (no allocation while it has room); a read takes its bytes from
** there. libuv keeps reading while the buffer holds less than the limit
** plus one chunk (or what the waiting read needs), and stops until it
** drains past that. One task reads at a time.
*/
#include <stdlib.h>
#include <string.h>
#include "net.h"

enum { R_READ, R_EXACTLY, R_LINE, R_UNTIL, R_ALL };

static const char *const rnames[] = {
  "stream:read", "stream:read_exactly", "stream:read_line",
  "stream:read_until", "stream:read_all"
};

/* ------------------------------------------------------------ reading */

static int make_room(netstream *st, size_t n);

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
  netstream *st = (netstream *)h->data;
  size_t end;
  (void)suggested;
  if (st->layer != NULL) {  /* a layer's bytes go to its own buffer */
    b->base = st->layer->in;
    b->len = st->layer->insize;
    return;
  }
  if (make_room(st, 4096) != 0) {
    b->base = NULL;
    b->len = 0;  /* libuv reports UV_ENOBUFS */
    return;
  }
  end = st->rpos + st->rlen;
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
  if (st->layer != NULL)  /* it appends to the buffer itself */
    nread = st->layer->ops->read(st, b->base, nread);
  else if (nread > 0) st->rlen += (size_t)nread;
  if (nread > 0) {
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
  corio__stream_wake_reader(st);
}

/* start reading if the stream is open, the buffer has room and the
   stream has not ended (a closing stream reads no more: for a file, a
   second request would be sent while the first is still in flight) */
static int read_more(netstream *st) {
  int err;
  if (st->h.state != NET_OPEN || st->reading || st->rerr ||
      st->rlen >= read_room(st)) return 0;
  if (st->type == NS_FILE) err = corio__file_read_start(st);
  else err = uv_read_start(&st->stream, on_alloc, on_read);
  if (err) {
    st->rerr = err;
    return err;
  }
  st->reading = 1;
  return 0;
}

/* room for n more bytes at the end of the buffer */
static int make_room(netstream *st, size_t n) {
  size_t cap;
  char *nb;
  if (st->cap - (st->rpos + st->rlen) >= n) return 0;
  if (st->cap - st->rlen >= n) {  /* compact */
    memmove(st->buf, st->buf + st->rpos, st->rlen);
    st->rpos = 0;
    return 0;
  }
  cap = st->cap ? st->cap * 2 : 16384;
  while (cap - st->rlen < n) cap *= 2;
  nb = (char *)malloc(cap);
  if (nb == NULL) return UV_ENOBUFS;
  if (st->rlen) memcpy(nb, st->buf + st->rpos, st->rlen);
  free(st->buf);
  st->buf = nb;
  st->cap = cap;
  st->rpos = 0;
  return 0;
}

int corio__stream_room(netstream *st, size_t n) {
  return make_room(st, n);
}

int corio__stream_read_more(netstream *st) {
  return read_more(st);
}

void corio__stream_got(netstream *st, const char *p, ssize_t nread) {
  if (st->h.state == NET_CLOSED) return;
  if (nread > 0 && make_room(st, (size_t)nread) != 0) nread = UV_ENOBUFS;
  if (nread > 0) {
    memcpy(st->buf + st->rpos + st->rlen, p, (size_t)nread);
    st->rlen += (size_t)nread;
  }
  else st->rerr = nread == 0 ? UV_EOF : (int)nread;
  corio__stream_wake_reader(st);
  if (st->h.state == NET_OPEN) read_more(st);  /* read ahead, as libuv does */
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

/* the n bytes before a separator of len bytes found at `at`, which is
   consumed too: kept with keep; a line drops a "\r" before its "\n" */
static int push_before(lua_State *L, netstream *st, const char *at, size_t n,
                       size_t len, int line, int keep) {
  if (keep) return push_bytes(L, st, n + len, 0);
  if (line && n > 0 && at[-1] == '\r') return push_bytes(L, st, n - 1, 2);
  return push_bytes(L, st, n, len);
}

/* A reset that a write saw first: the kernel reports it once, and the
   reads after it see a plain end. They report the reset instead. */
static void reset_seen(netstream *st) {
  if (st->rerr == UV_EOF && st->werr == UV_ECONNRESET) st->rerr = UV_ECONNRESET;
}

static int eof_or_error(lua_State *L, netstream *st) {
  if (st->rerr == UV_EOF) {
    lua_pushnil(L);
    return 1;
  }
  return corio__stream_error(L, st, st->rerr);
}

/* find sep in the buffer from where the last search for it stopped (the
   same read, woken by more bytes; a new read starts from 0) */
static const char *find_sep(netstream *st, const char *sep, size_t len) {
  const char *p, *end, *q;
  size_t from = st->scanned >= len ? st->scanned - len + 1 : 0;
  if (st->rlen == 0) return NULL;  /* no buffer yet: buf may be NULL */
  p = st->buf + st->rpos;
  end = p + st->rlen;
  q = p + from;
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
  if (st->h.state != NET_OPEN) return corio__stream_closed(L, st);
  reset_seen(st);
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
      if (st->rerr) return corio__stream_error(L, st, st->rerr);
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
        return push_before(L, st, at, n, len, st->rkind == R_LINE, st->keep);
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
      if (st->rerr) return corio__stream_error(L, st, st->rerr);
      return -1;
    }
    default:  /* R_ALL */
      if (st->rerr == UV_EOF) return push_bytes(L, st, st->rlen, 0);
      if (st->rerr) return corio__stream_error(L, st, st->rerr);
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
  corio__stream_wait_end(st);
  if (t->core.wake != CORIO_WAKE_NORMAL) {
    read_done(st, 0);
    corio__wake_check(L, S, t);  /* raises; the bytes stay buffered */
  }
  t->what = W_NONE;
  n = try_read(L, st);
  if (n >= 0) return read_done(st, n);
  if (read_more(st) != 0 && (n = try_read(L, st)) >= 0)
    return read_done(st, n);  /* libuv refused to read: that is the answer */
  corio__stream_wait_begin(st, t);
  corio_task_park(&S->loop, &t->core);
  return corio__suspend(L, S, read_k);
}

/* st: the stream at 1, checked open by the caller */
static int do_read(lua_State *L, corio_State *S, netstream *st, int kind,
                   size_t want) {
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
  if (read_more(st) != 0 && (n = try_read(L, st)) >= 0) {
    st->want = 0;  /* libuv refused to read: that is the answer */
    return n;
  }
  st->reader = t;
  corio__stream_wait_begin(st, t);
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
  corio_State *S = corio__state(L);
  netstream *st = corio__stream_check_open(L, S, "stream:read");
  size_t n = check_count(L, 2, NET_CHUNK);
  if (st == NULL) return corio__stream_closed(L, corio__stream_at(L));
  lua_settop(L, 1);
  return do_read(L, S, st, R_READ, n);
}

/* stream:read_exactly(n) (suspends) -> n bytes, or nil, "eof", partial */
static int s_read_exactly(lua_State *L) {
  corio_State *S = corio__state(L);
  netstream *st = corio__stream_check_open(L, S, "stream:read_exactly");
  size_t n = check_count(L, 2, 0);
  if (lua_isnoneornil(L, 2)) luaL_checkinteger(L, 2);
  if (st == NULL) return corio__stream_closed(L, corio__stream_at(L));
  lua_settop(L, 1);
  return do_read(L, S, st, R_EXACTLY, n);
}

/* read_line's common case, a whole line buffered and nobody else
   reading, without the general machinery (a server's request loop is
   mostly this). It keeps the checkpoint's rules: inside a task that may
   suspend, and a pending cancellation raises (on the general path).
   -1 when the general path must run. */
static int line_now(lua_State *L, corio_State *S, netstream *st, int keep) {
  luatask *t = S->current;
  const char *p, *nl;
  size_t n;
  if (st->reader != NULL || st->rlen <= st->scanned || t == NULL ||
      !lua_isyieldable(L) || corio_task_cancelled_by(&t->core) != NULL)
    return -1;
  p = st->buf + st->rpos;
  nl = (const char *)memchr(p + st->scanned, '\n', st->rlen - st->scanned);
  if (nl == NULL || (n = (size_t)(nl - p)) > st->limit) return -1;
  push_before(L, st, nl, n, 1, 1, keep);
  if (!st->reading) read_more(st);
  return 1;
}

/* stream:read_line([keep_eol]) (suspends) -> line, or nil at EOF */
static int s_read_line(lua_State *L) {
  corio_State *S = corio__state(L);
  netstream *st = corio__stream_check_open(L, S, "stream:read_line");
  int keep = lua_toboolean(L, 2);
  if (st == NULL) return corio__stream_closed(L, corio__stream_at(L));
  if (st->reader == NULL) st->scanned = 0;  /* see s_read_until */
  if (line_now(L, S, st, keep) > 0) return 1;
  lua_settop(L, 1);
  if (st->reader == NULL) st->keep = (uint8_t)keep;
  return do_read(L, S, st, R_LINE, 0);
}

/* stream:read_until(sep [, keep]) (suspends) -> data before sep */
static int s_read_until(lua_State *L) {
  corio_State *S = corio__state(L);
  netstream *st = corio__stream_check_open(L, S, "stream:read_until");
  size_t len;
  int keep = lua_toboolean(L, 3);
  luaL_checklstring(L, 2, &len);
  luaL_argcheck(L, len > 0, 2, "empty separator");
  if (st == NULL) return corio__stream_closed(L, corio__stream_at(L));
  lua_settop(L, 2);
  if (st->reader == NULL) {
    st->keep = (uint8_t)keep;
    /* what an earlier search looked at (one that ended in "limit
       exceeded", a timeout or a cancellation) was looked at for its own
       separator: a new read searches the buffer again */
    st->scanned = 0;
  }
  return do_read(L, S, st, R_UNTIL, 0);
}

/* stream:read_all() (suspends) -> every byte until EOF */
static int s_read_all(lua_State *L) {
  corio_State *S = corio__state(L);
  netstream *st = corio__stream_check_open(L, S, "stream:read_all");
  if (st == NULL) return corio__stream_closed(L, corio__stream_at(L));
  lua_settop(L, 1);
  return do_read(L, S, st, R_ALL, (size_t)-1);
}

static int lines_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  if (lua_gettop(L) >= 3 && lua_isnil(L, 2) && !lua_isnil(L, 3))
    return luaL_error(L, "stream:lines: %s", lua_tostring(L, 3));
  return 1;
}

/* upvalues: the stream, its read_line (looked up once) */
static int lines_iter(lua_State *L) {
  lua_settop(L, 0);
  lua_pushvalue(L, lua_upvalueindex(1));  /* 1: the stream; results from 2 */
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_pushvalue(L, 1);
  lua_callk(L, 1, LUA_MULTRET, 0, lines_k);
  return lines_k(L, LUA_OK, 0);
}

/* for line in stream:lines() do ... end (each step suspends) */
static int s_lines(lua_State *L) {
  /* on a closed stream, the first step raises "stream:lines: closed" */
  corio__stream_check_open(L, corio__state(L), "stream:lines");
  lua_settop(L, 1);
  lua_getfield(L, 1, "read_line");
  lua_pushcclosure(L, lines_iter, 2);
  return 1;
}

/* registered in the Stream metatable by corio__open_stream */
const luaL_Reg corio__stream_read_methods[] = {
  {"read", s_read},
  {"read_exactly", s_read_exactly},
  {"read_line", s_read_line},
  {"read_until", s_read_until},
  {"read_all", s_read_all},
  {"lines", s_lines},
  {NULL, NULL}
};
