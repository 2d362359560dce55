/*
** fs_whole.c: the operations of several steps, whose task wakes once:
** read_file (open, read until the end, close), write_file and
** append_file (open, write, close; atomic: a new temporary file beside
** the target, write, fsync, close, rename) are each one job of libuv's
** thread pool (uv_queue_work), which makes every system call of it
** itself; mkdir with parents chains its requests in their callbacks
** (make each missing directory from the top).
**
** When the waiting task leaves (cancelled, timed out, abandoned), a job
** the pool has not started is cancelled (uv_cancel) and never runs; one
** that has started runs to its end and closes its fd (an atomic write
** that sees the task gone before its rename removes its temporary file
** instead); the request is freed in its callback. A mkdir chain
** unwinds from its next callback.
*/
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "fs.h"

#define W_READING 0x01   /* read_file */
#define W_APPEND  0x02   /* append_file */
#define W_ATOMIC  0x04   /* write_file with atomic */

#define TMP_EXTRA 32     /* a temporary name: the path and this much more */

#define LOOP(r) ((r)->S->loop.uv)

/* ------------------------------------------------------------ the job */

/* In the thread pool: no Lua, no loop; r->err is the answer. */

static int sys_err(void) {
  return uv_translate_sys_error(errno);
}

static int open_retry(const char *path, int flags, int perm) {
  int fd;
  do fd = open(path, flags | O_CLOEXEC, perm); while (fd < 0 && errno == EINTR);
  return fd;
}

/* close fd; its error, if nothing went wrong before (err) */
static int close_fd(int fd, int err) {
  if (close(fd) != 0 && err == 0 && errno != EINTR) err = sys_err();
  return err;
}

/* fd's content into r->data (malloc'd). A regular file's size, from
   fstat, sizes the buffer with one byte more: a read that fills less
   than it asked is the end, so no read is made to find it (one that
   fills all of it means the file grew, and reading goes on). Other
   files (a FIFO, /proc) read until a read gives nothing. */
static int read_fd(fsreq *r, int fd) {
  struct stat st;
  int regular;
  if (fstat(fd, &st) != 0) return sys_err();
  regular = S_ISREG(st.st_mode);
  r->cap = regular && st.st_size > 0 && (uint64_t)st.st_size < FS_MAXIO
           ? (size_t)st.st_size + 1 : FS_CHUNK;
  r->data = (char *)malloc(r->cap);
  if (r->data == NULL) return UV_ENOMEM;
  for (;;) {
    size_t ask;
    ssize_t n;
    if (r->len == r->cap) {
      char *nb = (char *)realloc(r->data, r->cap * 2);
      if (nb == NULL) return UV_ENOMEM;
      r->data = nb;
      r->cap *= 2;
    }
    ask = r->cap - r->len > FS_MAXIO ? FS_MAXIO : r->cap - r->len;
    n = read(fd, r->data + r->len, ask);
    if (n < 0) {
      if (errno == EINTR) continue;
      return sys_err();
    }
    if (n == 0) return 0;
    r->len += (size_t)n;
    if (regular && (size_t)n < ask) return 0;
  }
}

static int write_fd(fsreq *r, int fd) {
  while (r->off < r->len) {
    size_t left = r->len - r->off;
    ssize_t n = write(fd, r->data + r->off, left > FS_MAXIO ? FS_MAXIO : left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return sys_err();
    }
    if (n == 0) return UV_EIO;
    r->off += (size_t)n;
  }
  return 0;
}

static int job_read(fsreq *r) {
  int fd = open_retry(r->path, O_RDONLY, 0);
  if (fd < 0) return sys_err();
  return close_fd(fd, read_fd(r, fd));
}

static int job_write(fsreq *r) {
  int flags = O_WRONLY | O_CREAT | (r->flags & W_APPEND ? O_APPEND : O_TRUNC);
  int fd = open_retry(r->path, flags, r->perm);
  if (fd < 0) return sys_err();
  return close_fd(fd, write_fd(r, fd));
}

/* a new temporary file beside r->path (r->tmp), written, fsync'd,
   closed, renamed over r->path; undone on any error, or when the task
   left before the rename */
static int job_atomic(fsreq *r) {
  size_t cap = strlen(r->path) + TMP_EXTRA;
  unsigned salt = (unsigned)(uintptr_t)r ^ (unsigned)uv_hrtime();
  int fd = -1, tries, err;
  for (tries = 0; tries < 8; tries++) {
    snprintf(r->tmp, cap, "%s.tmp-%x%04x", r->path, (unsigned)getpid(),
             (salt + 0x9e37u * (unsigned)tries) & 0xffff);
    fd = open_retry(r->tmp, O_WRONLY | O_CREAT | O_EXCL, r->perm);
    if (fd >= 0 || errno != EEXIST) break;  /* else that name is taken */
  }
  if (fd < 0) return sys_err();
  err = write_fd(r, fd);
  if (err == 0 && fsync(fd) != 0) err = sys_err();
  err = close_fd(fd, err);
  if (err == 0 && __atomic_load_n(&r->left, __ATOMIC_ACQUIRE)) err = UV_ECANCELED;
  if (err == 0 && rename(r->tmp, r->path) != 0) err = sys_err();
  if (err != 0) unlink(r->tmp);
  return err;
}

static void whole_work(uv_work_t *w) {
  fsreq *r = corio__container_of(w, fsreq, work);
  if (r->flags & W_READING) r->err = job_read(r);
  else if (r->flags & W_ATOMIC) r->err = job_atomic(r);
  else r->err = job_write(r);
}

static void whole_done(uv_work_t *w, int status) {
  fsreq *r = corio__container_of(w, fsreq, work);
  if (status == UV_ECANCELED) r->err = UV_ECANCELED;  /* it never ran */
  corio__fsreq_finish(r);
}

void corio__whole_start(fsreq *r) {
  int err = uv_queue_work(LOOP(r), &r->work, whole_work, whole_done);
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
  if (flags & W_ATOMIC) {
    r->tmp = (char *)malloc(plen + TMP_EXTRA);
    if (r->tmp == NULL) {
      corio__fsreq_free(r);
      return luaL_error(L, "%s: out of memory", fname);
    }
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
