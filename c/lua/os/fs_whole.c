/*
** fs_whole.c: the operations of several steps, chained in libuv's
** callbacks so their task wakes once: read_file (open, read until the
** end, close), write_file and append_file (open, write, close; atomic:
** a new temporary file beside the target, write, fsync, close, rename),
** and mkdir with parents (make each missing directory from the top).
**
** When the waiting task leaves (cancelled, timed out, abandoned), the
** step under way is cancelled if it has not started, and the chain
** unwinds from the next callback: an open fd is closed, a temporary
** file removed, then the request is freed.
*/
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "fs.h"

enum { S_OPEN, S_READ, S_WRITE, S_FSYNC, S_CLOSE, S_RENAME, S_UNLINK };

#define W_READING 0x01   /* read_file */
#define W_APPEND  0x02   /* append_file */
#define W_ATOMIC  0x04   /* write_file with atomic */
#define W_TMP     0x08   /* the temporary file exists */

#define LOOP(r) ((r)->S->loop.uv)

static void whole_cb(uv_fs_t *req);

/* a new name for the temporary file beside r->path */
static int tmp_name(fsreq *r) {
  static unsigned counter;
  size_t n = strlen(r->path) + 32;
  free(r->tmp);
  r->tmp = (char *)malloc(n);
  if (r->tmp == NULL) return UV_ENOMEM;
  snprintf(r->tmp, n, "%s.tmp-%x%04x", r->path, (unsigned)getpid(),
           (unsigned)(++counter ^ (unsigned)uv_hrtime()) & 0xffff);
  return 0;
}

static int issue_open(fsreq *r) {
  int flags;
  const char *p = r->path;
  if (r->flags & W_READING) flags = O_RDONLY;
  else if (r->flags & W_ATOMIC) {
    int err = tmp_name(r);
    if (err) return err;
    p = r->tmp;
    flags = O_WRONLY | O_CREAT | O_EXCL;
  }
  else if (r->flags & W_APPEND) flags = O_WRONLY | O_CREAT | O_APPEND;
  else flags = O_WRONLY | O_CREAT | O_TRUNC;
  r->step = S_OPEN;
  return uv_fs_open(LOOP(r), &r->req, p, flags | O_CLOEXEC, r->perm, whole_cb);
}

static int issue_read(fsreq *r) {
  uv_buf_t b;
  if (r->cap - r->len < 4096) {
    size_t cap = r->cap ? r->cap * 2 : 65536;
    char *nb = (char *)realloc(r->data, cap);
    if (nb == NULL) return UV_ENOMEM;
    r->data = nb;
    r->cap = cap;
  }
  b = uv_buf_init(r->data + r->len, (unsigned int)(r->cap - r->len > FS_MAXIO ?
                                                    FS_MAXIO : r->cap - r->len));
  r->step = S_READ;
  /* at the fd's offset: a pipe or a FIFO (no pread) reads the same */
  return uv_fs_read(LOOP(r), &r->req, r->fd, &b, 1, -1, whole_cb);
}

static int issue_write(fsreq *r) {
  size_t left = r->len - r->off;
  uv_buf_t b = uv_buf_init(r->data + r->off,
                           (unsigned int)(left > FS_MAXIO ? FS_MAXIO : left));
  r->step = S_WRITE;
  return uv_fs_write(LOOP(r), &r->req, r->fd, &b, 1, -1, whole_cb);
}

/* the next step after the one that ended (r->step), or the end */
static void next(fsreq *r) {
  int err = 0;
  for (;;) {
    if (r->err < 0 || err < 0) {  /* unwind */
      if (r->err == 0) r->err = err;
      err = 0;
      if (r->fd >= 0) {
        r->step = S_CLOSE;
        err = uv_fs_close(LOOP(r), &r->req, r->fd, whole_cb);
        r->fd = -1;
        if (err == 0) return;
        continue;
      }
      if (r->flags & W_TMP) {
        r->flags &= ~W_TMP;
        r->step = S_UNLINK;
        err = uv_fs_unlink(LOOP(r), &r->req, r->tmp, whole_cb);
        if (err == 0) return;
        err = 0;
        continue;
      }
      corio__fsreq_finish(r);
      return;
    }
    switch (r->step) {
      case S_OPEN:
        if (r->flags & W_READING) err = issue_read(r);
        else if (r->len > r->off) err = issue_write(r);
        else {
          r->step = S_WRITE;
          continue;
        }
        break;
      case S_READ:
        err = issue_read(r);
        break;
      case S_WRITE:
        if (r->len > r->off) err = issue_write(r);
        else if (r->flags & W_ATOMIC) {
          r->step = S_FSYNC;
          err = uv_fs_fsync(LOOP(r), &r->req, r->fd, whole_cb);
        }
        else {
          r->step = S_CLOSE;
          err = uv_fs_close(LOOP(r), &r->req, r->fd, whole_cb);
          r->fd = -1;
        }
        break;
      case S_FSYNC:
        r->step = S_CLOSE;
        err = uv_fs_close(LOOP(r), &r->req, r->fd, whole_cb);
        r->fd = -1;
        break;
      case S_CLOSE:
        if (r->flags & W_ATOMIC) {
          r->step = S_RENAME;
          err = uv_fs_rename(LOOP(r), &r->req, r->tmp, r->path, whole_cb);
          break;
        }
        corio__fsreq_finish(r);
        return;
      default:  /* S_RENAME, S_UNLINK */
        corio__fsreq_finish(r);
        return;
    }
    if (err == 0) return;
  }
}

static void whole_cb(uv_fs_t *req) {
  fsreq *r = corio__container_of(req, fsreq, req);
  ssize_t res = req->result;
  uv_fs_req_cleanup(req);
  if (r->task == NULL && r->err == 0) r->err = UV_ECANCELED;  /* it left */
  switch (r->step) {
    case S_OPEN:
      if (res == UV_EEXIST && (r->flags & W_ATOMIC) && r->err == 0 &&
          r->mark++ < 8) {  /* that name is taken: another */
        if (issue_open(r) == 0) return;
      }
      if (res >= 0) {
        r->fd = (int)res;
        if (r->flags & W_ATOMIC) r->flags |= W_TMP;
      }
      break;
    case S_READ:
      if (res > 0) r->len += (size_t)res;
      else if (res == 0 && r->err == 0) {  /* the end: close */
        int err;
        r->step = S_CLOSE;
        err = uv_fs_close(LOOP(r), &r->req, r->fd, whole_cb);
        r->fd = -1;
        if (err == 0) return;
        res = err;
      }
      break;
    case S_WRITE:
      if (res > 0) r->off += (size_t)res;
      else if (res == 0) res = UV_EIO;
      break;
    case S_RENAME:
      if (res == 0) r->flags &= ~W_TMP;
      break;
    case S_UNLINK:
      res = 0;  /* an unwind's: the first error stands */
      break;
    default: break;
  }
  if (res < 0 && r->err == 0) r->err = (int)res;
  next(r);
}

void corio__whole_start(fsreq *r) {
  int err = issue_open(r);
  if (err) {
    r->err = err;
    corio__fsreq_finish(r);
  }
}

void corio__whole_orphan(fsreq *r) {
  if (r->flags & W_READING) free(r->data);
  corio__fsreq_free(r);
}

int corio__whole_result(lua_State *L, fsreq *r) {
  int n = 1;
  if (r->err < 0) n = corio__fs_error(L, r->err, r->path, NULL);
  else if (r->flags & W_READING) lua_pushlstring(L, r->data ? r->data : "", r->len);
  else lua_pushboolean(L, 1);
  if (r->flags & W_READING) {
    free(r->data);
    r->data = NULL;
  }
  return n;
}

/* ------------------------------------------------------------ mkdir -p */

static void mkdirs_cb(uv_fs_t *req);

/* mkdir the prefix r->path[0 .. r->mark) */
static int mkdir_prefix(fsreq *r) {
  char c = r->path[r->mark];
  int err;
  r->path[r->mark] = '\0';
  err = uv_fs_mkdir(LOOP(r), &r->req, r->path, r->perm, mkdirs_cb);
  r->path[r->mark] = c;
  return err;
}

static void mkdirs_cb(uv_fs_t *req) {
  fsreq *r = corio__container_of(req, fsreq, req);
  ssize_t res = req->result;
  int err = 0;
  uv_fs_req_cleanup(req);
  if (r->task == NULL) res = UV_ECANCELED;
  if (r->step == 1) {  /* the stat of a path that exists */
    if (res == 0 && !S_ISDIR(r->req.statbuf.st_mode)) res = UV_EEXIST;
    r->err = (int)res;
    corio__fsreq_finish(r);
    return;
  }
  if (res == UV_EEXIST && r->mark == r->len) {  /* is it a directory? */
    r->step = 1;
    err = uv_fs_stat(LOOP(r), &r->req, r->path, mkdirs_cb);
  }
  else if (res == 0 || (res == UV_EEXIST && r->mark < r->len)) {
    if (r->mark == r->len) {
      r->err = 0;
      corio__fsreq_finish(r);
      return;
    }
    while (r->mark < r->len && r->path[r->mark] == '/') r->mark++;
    while (r->mark < r->len && r->path[r->mark] != '/') r->mark++;
    err = mkdir_prefix(r);
  }
  else if (res == UV_ENOENT) {  /* make the parent first */
    size_t m = r->mark;
    while (m > 0 && r->path[m - 1] == '/') m--;
    while (m > 0 && r->path[m - 1] != '/') m--;
    while (m > 1 && r->path[m - 1] == '/') m--;
    if (m == 0 || (m == 1 && r->path[0] == '/')) err = (int)res;
    else {
      r->mark = m;
      err = mkdir_prefix(r);
    }
  }
  else err = (int)res;
  if (err < 0) {
    r->err = err;
    corio__fsreq_finish(r);
  }
}

int corio__mkdirs_start(fsreq *r) {
  while (r->len > 1 && r->path[r->len - 1] == '/') r->path[--r->len] = '\0';
  r->mark = r->len;
  return mkdir_prefix(r);
}

/* ------------------------------------------------------------ functions */

static int whole(lua_State *L, const char *fname, int flags) {
  corio_State *S = corio__state(L);
  size_t plen, dlen = 0;
  const char *p = lua_tolstring(L, 1, &plen), *d = NULL;
  int perm = 0666;
  luatask *t;
  fsreq *r;
  if (p == NULL || lua_type(L, 1) != LUA_TSTRING || strlen(p) != plen)
    return luaL_error(L, "%s: bad argument #1 (a path string expected, got %s)",
                      fname, luaL_typename(L, 1));
  if (!(flags & W_READING)) {
    if (lua_type(L, 2) != LUA_TSTRING && lua_type(L, 2) != LUA_TNUMBER)
      return luaL_error(L, "%s: bad argument #2 (a string expected, got %s)",
                        fname, luaL_typename(L, 2));
    d = lua_tolstring(L, 2, &dlen);
    if (!lua_isnoneornil(L, 3)) {
      if (!lua_istable(L, 3))
        return luaL_error(L, "%s: bad argument #3 (an options table expected, "
                          "got %s)", fname, luaL_typename(L, 3));
      lua_getfield(L, 3, "perm");
      perm = corio__fs_check_perm(L, -1, 0666, fname);
      lua_getfield(L, 3, "atomic");
      if (lua_toboolean(L, -1)) {
        if (flags & W_APPEND)
          return luaL_error(L, "%s: option 'atomic' is for write_file", fname);
        flags |= W_ATOMIC;
      }
      lua_pop(L, 2);
    }
  }
  t = corio__checkpoint(L, S, fname);
  r = corio__fsreq_new(L, S, OP_WHOLE, dlen);
  r->flags = (uint8_t)flags;
  r->perm = perm;
  r->path = strdup(p);
  if (r->path == NULL) {
    corio__fsreq_free(r);
    return luaL_error(L, "%s: out of memory", fname);
  }
  if (dlen) memcpy(r->data, d, dlen);
  r->len = dlen;
  if (flags & W_READING) r->data = NULL;
  r->task = t;  /* a failure at once finishes it before the wait */
  corio__whole_start(r);
  if (r->done) {
    int n = corio__whole_result(L, r);
    corio__fsreq_free(r);
    return n;
  }
  r->task = NULL;
  return corio__fsreq_wait(L, S, t, r);
}

/* fs.read_file(path) (suspends) -> the whole content */
static int l_read_file(lua_State *L) {
  return whole(L, "corio.fs.read_file", W_READING);
}

/* fs.write_file(path, data [, opts]) (suspends) -> true. opts: perm
   (0o666, less the umask, for a new file), atomic (a temporary file
   beside path, written, fsync'd, then renamed over path: readers see
   the old content or the new, never a part) */
static int l_write_file(lua_State *L) {
  return whole(L, "corio.fs.write_file", 0);
}

/* fs.append_file(path, data [, opts]) (suspends) -> true. opts: perm */
static int l_append_file(lua_State *L) {
  return whole(L, "corio.fs.append_file", W_APPEND);
}

const luaL_Reg corio__fs_whole_funcs[] = {
  {"read_file", l_read_file},
  {"write_file", l_write_file},
  {"append_file", l_append_file},
  {NULL, NULL}
};
