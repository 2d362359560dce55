/*
** fs_file_read.c: a File's read-ahead buffer and the reads done from it,
** with a Stream's rules (stream_read.c): read(n) takes what is buffered,
** up to n; read_line ends a line at "\n" and drops a "\r" before it
** unless keep_eol, answers the last line without an end, and past the
** limit gives nil, "limit exceeded" with the bytes left buffered;
** read_all takes everything to the end. buf[rpos .. rpos+rlen) holds the
** file's bytes from the File's position (pos) on.
*/
#include <stdlib.h>
#include <string.h>
#include "fs.h"

void corio__file_drop_buffer(fsfile *f) {
  f->rpos = f->rlen = f->scanned = 0;
}

static void consume(fsfile *f, size_t n) {
  f->rpos += n;
  f->rlen -= n;
  f->pos += (int64_t)n;
  if (f->rlen == 0) f->rpos = 0;
  f->scanned = 0;
}

/* room for n more bytes at the end of the buffer: 0 or UV_ENOMEM */
int corio__file_make_room(fsfile *f, size_t n) {
  size_t cap;
  char *nb;
  if (f->cap - (f->rpos + f->rlen) >= n) return 0;
  if (f->cap - f->rlen >= n) {
    memmove(f->buf, f->buf + f->rpos, f->rlen);
    f->rpos = 0;
    return 0;
  }
  if (f->buf == NULL && n <= FS_SPARE) {  /* the common first read */
    fsstate *fs = f->fs;
    f->buf = fs->nspare > 0 ? fs->spare[--fs->nspare] : (char *)malloc(FS_SPARE);
    if (f->buf == NULL) return UV_ENOMEM;
    f->cap = FS_SPARE;
    f->rpos = 0;
    return 0;
  }
  cap = f->cap ? f->cap * 2 : n;
  while (cap - f->rlen < n) cap *= 2;
  nb = (char *)malloc(cap);
  if (nb == NULL) return UV_ENOMEM;
  if (f->rlen) memcpy(nb, f->buf + f->rpos, f->rlen);
  free(f->buf);
  f->buf = nb;
  f->cap = cap;
  f->rpos = 0;
  return 0;
}

static int push_bytes(lua_State *L, fsfile *f, size_t n, size_t skip) {
  lua_pushlstring(L, f->buf + f->rpos, n);
  consume(f, n + skip);
  return 1;
}

/* the n bytes of a line before its "\n" at `at`, which is consumed too
   (kept with keep; a "\r" before it is dropped) */
static int push_line(lua_State *L, fsfile *f, const char *at, size_t n, int keep) {
  if (keep) return push_bytes(L, f, n + 1, 0);
  if (n > 0 && at[-1] == '\r') return push_bytes(L, f, n - 1, 2);
  return push_bytes(L, f, n, 1);
}

static int eof_or_error(lua_State *L, fsfile *f) {
  if (f->rerr == UV_EOF) {
    lua_pushnil(L);
    return 1;
  }
  return corio__fs_error(L, f->rerr, f->path, NULL);
}

/* the read f->op asks for, if it can be done now: pushes its results
   and returns how many; -1 to read more first */
int corio__file_try_read(lua_State *L, fsfile *f) {
  switch (f->op) {
    case FO_READ:
      if (f->rlen > 0) return push_bytes(L, f, f->rlen < f->want ? f->rlen : f->want, 0);
      if (f->rerr) return eof_or_error(L, f);
      return -1;
    case FO_LINE: {
      const char *p = f->buf + f->rpos;
      const char *at = f->rlen > f->scanned ?
        (const char *)memchr(p + f->scanned, '\n', f->rlen - f->scanned) : NULL;
      if (at != NULL) {
        size_t n = (size_t)(at - p);
        if (n > f->limit) break;
        return push_line(L, f, at, n, f->keep);
      }
      f->scanned = f->rlen;
      if (f->rlen > f->limit) break;
      if (f->rerr == UV_EOF) {
        if (f->rlen == 0) {
          lua_pushnil(L);
          return 1;
        }
        return push_bytes(L, f, f->rlen, 0);
      }
      if (f->rerr) return eof_or_error(L, f);
      return -1;
    }
    default:  /* FO_ALL */
      if (f->rerr == UV_EOF) return push_bytes(L, f, f->rlen, 0);
      if (f->rerr) return eof_or_error(L, f);
      return -1;
  }
  lua_pushnil(L);
  lua_pushliteral(L, "limit exceeded");
  return 2;
}

/* the File moves to pos: what was read ahead is kept when pos is in it */
void corio__file_set_pos(fsfile *f, int64_t pos) {
  if (pos >= f->pos && pos <= f->pos + (int64_t)f->rlen) consume(f, (size_t)(pos - f->pos));
  else {
    corio__file_drop_buffer(f);
    f->pos = pos;
  }
}
