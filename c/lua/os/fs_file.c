/*
** fs_file.c: the File of corio.fs.open: read, read_line, lines,
** read_all, write, seek, sync, stat, truncate, close, fileno.
**
** A File userdata holds a pointer to a malloc'd fsfile, which lives until
** both the userdata is collected and no request is under way on it. One
** operation holds the file at a time (fsfile.busy); other tasks wait
** their turn, first come first served (fsfile.idle). Reads and writes
** give libuv an explicit offset, the File's position (none on a pipe or
** a FIFO); reads go ahead into the File's buffer (64 KiB at a time, or
** what read(n) asks, at least 16 KiB), and read_line and lines read from
** it as a Stream's do (fs_file_read.c). A write drops what was read
** ahead (its bytes may be the ones written), and the bytes of a write
** that fits go through that buffer (a copy, but no allocation). In append
** mode every write goes to the end of the file.
*/
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "fs.h"

#define fs_up(L) ((fsstate *)lua_touserdata(L, lua_upvalueindex(2)))

/* the File at 1 (NULL once collected: not possible while it is there) */
static fsfile *check(lua_State *L, const char *method) {
  return *(fsfile **)corio__check_self(L, 1, FILE_MT, method, "File");
}

static int closed(lua_State *L) {
  lua_pushnil(L);
  lua_pushliteral(L, "closed");
  return 2;
}

void corio__file_new(lua_State *L, corio_State *S, const char *path,
                     int append, size_t limit) {
  size_t n = strlen(path);
  fsfile **box = (fsfile **)lua_newuserdatauv(L, sizeof *box, 0);
  fsfile *f;
  *box = NULL;
  luaL_setmetatable(L, FILE_MT);
  f = (fsfile *)malloc(sizeof *f + n);
  if (f == NULL) luaL_error(L, "corio.fs.open: out of memory");
  memset(f, 0, sizeof *f);
  corio__list_init(&f->node);
  corio_future_init(&f->idle);
  f->S = S;
  f->fs = fs_up(L);
  f->fd = -1;
  f->state = F_CLOSED;
  f->append = (uint8_t)append;
  f->limit = limit;
  memcpy(f->path, path, n + 1);
  *box = f;
}

void corio__file_opened(lua_State *L, int idx, int fd) {
  fsfile *f = *(fsfile **)lua_touserdata(L, idx);
  f->fd = fd;
  f->state = F_OPEN;
  corio__list_push(&corio__fs_state(L)->files, &f->node);
}

/* a File's read buffer goes back to the spares (a program that opens
   many files allocates none), or is freed */
static void free_buffer(fsfile *f) {
  fsstate *fs = f->fs;
  if (f->buf != NULL && f->cap == FS_SPARE && fs->nspare < FS_SPARES)
    fs->spare[fs->nspare++] = f->buf;
  else free(f->buf);
  f->buf = NULL;
  f->cap = 0;
}

static void file_free(fsfile *f) {
  free_buffer(f);
  free(f);
}

/* mark f closed (its fd is closed once no request is under way) */
static void set_closed(fsfile *f) {
  f->state = F_CLOSED;
  corio__list_remove(&f->node);
  if (f->busy) return;  /* release() closes it */
  if (f->fd >= 0) {
    corio__fs_close_fd(f->S, f->fd);
    f->fd = -1;
  }
  free_buffer(f);
}

/* the operation holding f ended: the next waiting task may go on */
static void release(fsfile *f) {
  f->busy = 0;
  if (f->state == F_CLOSED) {
    if (f->fd >= 0) corio__fs_close_fd(f->S, f->fd);
    f->fd = -1;
    free_buffer(f);
  }
  if (f->gone) {
    file_free(f);
    return;
  }
  if (!corio__list_empty(&f->idle.waiters)) {
    corio_future_finish(&f->S->loop, &f->idle, CORIO_DONE);
    corio_future_init(&f->idle);
  }
}

/* ------------------------------------------------------------ requests */

/* the offset of a read or write at pos: none on a file without
   offsets; a write in append mode goes to the end */
static int64_t at(const fsfile *f, int64_t pos, int write) {
  return f->stream || (write && f->append) ? -1 : pos;
}

static void file_cb(uv_fs_t *req);

/* read into the buffer's free end (make_room made it), after what it holds */
static int issue_read(fsfile *f, fsreq *r) {
  size_t room = f->cap - f->rpos - f->rlen;
  uv_buf_t b = uv_buf_init(f->buf + f->rpos + f->rlen,
                           (unsigned int)(room > FS_MAXIO ? FS_MAXIO : room));
  return uv_fs_read(f->S->loop.uv, &r->req, f->fd, &b, 1,
                    at(f, f->pos + (int64_t)f->rlen, 0), file_cb);
}

/* write what is left of the request's bytes */
static int issue_write(fsfile *f, fsreq *r) {
  size_t left = r->len - r->off;
  uv_buf_t b = uv_buf_init(r->data + r->off,
                           (unsigned int)(left > FS_MAXIO ? FS_MAXIO : left));
  return uv_fs_write(f->S->loop.uv, &r->req, f->fd, &b, 1,
                     at(f, r->pos + (int64_t)r->off, 1), file_cb);
}

static void file_cb(uv_fs_t *req) {
  fsreq *r = corio__container_of(req, fsreq, req);
  fsfile *f = r->file;
  ssize_t res = req->result;
  if (res == UV_ESPIPE && !f->stream && (f->op <= FO_ALL || f->op == FO_WRITE)) {
    int err;  /* a pipe or a FIFO: no offsets from now on; again without */
    f->stream = 1;
    uv_fs_req_cleanup(req);
    err = f->op == FO_WRITE ? issue_write(f, r) : issue_read(f, r);
    if (err == 0) return;
    res = err;
  }
  switch (f->op) {
    case FO_READ: case FO_LINE: case FO_ALL:
      if (res > 0) f->rlen += (size_t)res;
      else f->rerr = res == 0 ? UV_EOF : (int)res;
      break;
    case FO_WRITE:
      if (res > 0) {
        r->off += (size_t)res;
        if (!f->append) f->pos += (int64_t)res;
        if (r->off < r->len) {  /* the rest */
          int err;
          uv_fs_req_cleanup(req);
          err = issue_write(f, r);
          if (err == 0) return;
          res = err;
        }
      }
      else if (res == 0) res = UV_EIO;
      if (res < 0) r->err = (int)res;
      if (f->append && !f->stream) {
        off_t end = lseek(f->fd, 0, SEEK_CUR);  /* the end: no I/O */
        if (end >= 0) f->pos = (int64_t)end;
      }
      break;
    default: break;
  }
  corio__fsreq_finish(r);
}

void corio__file_orphan(fsreq *r) {
  fsfile *f = r->file;
  corio__fsreq_free(r);
  release(f);
}

static fsreq *new_req(lua_State *L, corio_State *S, fsfile *f, size_t extra) {
  fsreq *r = (fsreq *)malloc(sizeof *r + extra);
  if (r == NULL) {
    release(f);
    luaL_error(L, "corio.fs: out of memory");
    return NULL;
  }
  memset(r, 0, sizeof *r);
  corio__list_init(&r->node);
  r->S = S;
  r->op = OP_FILE;
  r->fd = -1;
  r->file = f;
  if (extra) r->data = (char *)(r + 1);
  return r;
}

/* issued (err 0): wait for it; else release f and answer the error */
static int issued(lua_State *L, corio_State *S, luatask *t, fsreq *r, int err) {
  fsfile *f = r->file;
  if (err < 0) {
    int n = corio__fs_error(L, err, f->path, NULL);
    corio__fsreq_free(r);
    release(f);
    return n;
  }
  return corio__fsreq_wait(L, S, t, r);
}

/* a read: done from the buffer, or one more request to fill it */
static int read_step(lua_State *L, corio_State *S, luatask *t, fsfile *f) {
  /* read(n) asks for n (at least 16 KiB: a little ahead), lines 64 KiB */
  size_t chunk = f->op != FO_READ ? FS_CHUNK : f->want > 16384 ? f->want : 16384;
  fsreq *r;
  int n = corio__file_try_read(L, f);
  if (chunk > FS_MAXIO) chunk = FS_MAXIO;
  if (n >= 0) {
    release(f);
    return n;
  }
  if (corio__file_make_room(f, chunk) != 0) {
    n = corio__fs_error(L, UV_ENOMEM, f->path, NULL);
    release(f);
    return n;
  }
  r = new_req(L, S, f, 0);
  return issued(L, S, t, r, issue_read(f, r));
}

static int seek_to(lua_State *L, fsfile *f, int64_t pos) {
  if (pos < 0) {
    int n = corio__fs_error(L, UV_EINVAL, f->path, NULL);
    release(f);
    return n;
  }
  corio__file_set_pos(f, pos);
  release(f);
  lua_pushinteger(L, (lua_Integer)pos);
  return 1;
}

/* f is held by this task: do f->op. The method's arguments are at 2... */
static int run(lua_State *L, corio_State *S, luatask *t, fsfile *f) {
  fsreq *r;
  uv_loop_t *loop = S->loop.uv;
  switch (f->op) {
    case FO_READ: case FO_LINE: case FO_ALL:
      f->rerr = 0;
      f->want = f->op == FO_READ ? (size_t)lua_tointeger(L, 2) : 0;
      f->keep = (uint8_t)lua_toboolean(L, 2);
      return read_step(L, S, t, f);
    case FO_WRITE: {
      int i, top = lua_gettop(L);
      size_t len = 0, n;
      for (i = 2; i <= top; i++) {
        lua_tolstring(L, i, &n);
        len += n;
      }
      if (len == 0) {  /* nothing to write */
        release(f);
        lua_pushboolean(L, 1);
        return 1;
      }
      corio__file_drop_buffer(f);
      if ((len <= FS_SPARE || len <= f->cap) && corio__file_make_room(f, len) == 0) {
        r = new_req(L, S, f, 0);  /* the bytes go through the read buffer */
        r->data = f->buf;
      }
      else r = new_req(L, S, f, len);
      r->len = len;
      len = 0;
      for (i = 2; i <= top; i++) {
        const char *s = lua_tolstring(L, i, &n);
        memcpy(r->data + len, s, n);
        len += n;
      }
      r->pos = f->pos;
      return issued(L, S, t, r, issue_write(f, r));
    }
    case FO_SEEK: {
      const char *whence = lua_tostring(L, 2);
      int64_t off = (int64_t)lua_tointeger(L, 3);
      if (f->stream) {
        int n = corio__fs_error(L, UV_ESPIPE, f->path, NULL);
        release(f);
        return n;
      }
      if (whence[0] == 's') return seek_to(L, f, off);
      if (whence[0] == 'c') return seek_to(L, f, f->pos + off);
      r = new_req(L, S, f, 0);
      return issued(L, S, t, r, uv_fs_fstat(loop, &r->req, f->fd, file_cb));
    }
    case FO_SYNC:
      r = new_req(L, S, f, 0);
      return issued(L, S, t, r, uv_fs_fsync(loop, &r->req, f->fd, file_cb));
    case FO_STAT:
      r = new_req(L, S, f, 0);
      return issued(L, S, t, r, uv_fs_fstat(loop, &r->req, f->fd, file_cb));
    case FO_TRUNCATE: {
      int64_t size = lua_isnoneornil(L, 2) ? f->pos : (int64_t)lua_tointeger(L, 2);
      corio__file_drop_buffer(f);
      r = new_req(L, S, f, 0);
      return issued(L, S, t, r, uv_fs_ftruncate(loop, &r->req, f->fd, size, file_cb));
    }
    default: {  /* FO_CLOSE */
      int fd = f->fd;
      f->fd = -1;
      f->state = F_CLOSED;
      corio__list_remove(&f->node);
      r = new_req(L, S, f, 0);
      return issued(L, S, t, r, uv_fs_close(loop, &r->req, fd, file_cb));
    }
  }
}

/* after a request of f->op, in the task that made it */
int corio__file_resume(lua_State *L, corio_State *S, luatask *t, fsreq *r) {
  fsfile *f = r->file;
  ssize_t res = r->req.result;
  int n = 1;
  switch (f->op) {
    case FO_READ: case FO_LINE: case FO_ALL:
      corio__fsreq_free(r);
      return read_step(L, S, t, f);
    case FO_WRITE:
      res = r->err;
      break;
    case FO_SEEK:
      if (res >= 0) {
        int64_t pos = (int64_t)r->req.statbuf.st_size + (int64_t)lua_tointeger(L, 3);
        corio__fsreq_free(r);
        return seek_to(L, f, pos);
      }
      break;
    case FO_STAT:
      if (res >= 0) corio__fs_push_stat(L, &r->req.statbuf);
      break;
    default: break;
  }
  corio__fsreq_free(r);
  if (res < 0) n = corio__fs_error(L, (int)res, f->path, NULL);
  else if (f->op != FO_STAT) lua_pushboolean(L, 1);
  release(f);
  return n;
}

static int start(lua_State *L, corio_State *S, luatask *t, fsfile *f, int op);

/* woken in the queue for the file: its turn, or cancelled */
static int lock_k(lua_State *L, int status, lua_KContext ctx) {
  corio_State *S = (corio_State *)ctx;
  luatask *t = S->current;
  int op = (int)lua_tointeger(L, -1);
  (void)status;
  lua_pop(L, 1);
  corio__wake_check(L, S, t);
  return start(L, S, t, *(fsfile **)lua_touserdata(L, 1), op);
}

static int start(lua_State *L, corio_State *S, luatask *t, fsfile *f, int op) {
  if (f->state != F_OPEN) {
    if (op == FO_CLOSE) {
      lua_pushboolean(L, 1);
      return 1;
    }
    return closed(L);
  }
  if (f->busy) {  /* wait for the task using it */
    corio_task_await(&S->loop, &t->core, &f->idle);
    t->what = W_OTHER;
    lua_pushinteger(L, op);
    return corio__suspend(L, S, lock_k);
  }
  f->busy = 1;
  f->op = (uint8_t)op;
  return run(L, S, t, f);
}

/* the method's common start: a closed file answers nil, "closed" */
static int method(lua_State *L, fsfile *f, int op, const char *fname) {
  corio_State *S = corio__state(L);
  luatask *t;
  if (f->state != F_OPEN) return closed(L);
  t = corio__checkpoint(L, S, fname);
  return start(L, S, t, f, op);
}

/* ------------------------------------------------------------ methods */

static size_t check_count(lua_State *L, int idx, size_t dflt, const char *fname) {
  lua_Integer n;
  if (lua_isnoneornil(L, idx)) return dflt;
  if (!lua_isinteger(L, idx) || (n = lua_tointeger(L, idx)) <= 0)
    luaL_error(L, "%s: bad argument #1 (a positive count expected)", fname);
  else return (size_t)n;
  return 0;
}

/* file:read([n]) (suspends) -> up to n bytes (64 KiB), nil at the end */
static int f_read(lua_State *L) {
  fsfile *f = check(L, "file:read");
  size_t n = check_count(L, 2, FS_CHUNK, "file:read");
  lua_settop(L, 1);
  lua_pushinteger(L, (lua_Integer)n);  /* 2: taken when its turn comes */
  return method(L, f, FO_READ, "file:read");
}

/* file:read_line([keep_eol]) (suspends) -> line, or nil at the end */
static int f_read_line(lua_State *L) {
  fsfile *f = check(L, "file:read_line");
  int keep = lua_toboolean(L, 2);
  lua_settop(L, 1);
  lua_pushboolean(L, keep);  /* 2 */
  return method(L, f, FO_LINE, "file:read_line");
}

/* file:read_all() (suspends) -> the rest of the file */
static int f_read_all(lua_State *L) {
  fsfile *f = check(L, "file:read_all");
  lua_settop(L, 1);
  return method(L, f, FO_ALL, "file:read_all");
}

/* file:write(...) (suspends) -> true: strings and numbers, in order */
static int f_write(lua_State *L) {
  fsfile *f = check(L, "file:write");
  int i, top = lua_gettop(L);
  for (i = 2; i <= top; i++) {
    int ty = lua_type(L, i);
    if (ty != LUA_TSTRING && ty != LUA_TNUMBER)
      return luaL_error(L, "file:write: bad argument #%d (a string expected, "
                        "got %s)", i - 1, luaL_typename(L, i));
    if (ty == LUA_TNUMBER) {
      lua_pushvalue(L, i);
      lua_tostring(L, -1);
      lua_replace(L, i);
    }
  }
  return method(L, f, FO_WRITE, "file:write");
}

/* file:seek([whence [, offset]]) (suspends) -> the position. whence:
   "set", "cur" (default), "end" */
static int f_seek(lua_State *L) {
  static const char *const whences[] = {"set", "cur", "end", NULL};
  fsfile *f = check(L, "file:seek");
  const char *w = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : NULL;
  int i = 0;
  if (lua_isnoneornil(L, 2)) w = "cur";
  else if (w == NULL) w = "";
  for (; whences[i] != NULL && strcmp(whences[i], w) != 0; i++) {}
  if (whences[i] == NULL)
    return luaL_error(L, "file:seek: bad argument #1 (\"set\", \"cur\" or \"end\" expected)");
  if (!lua_isnoneornil(L, 3) && !lua_isinteger(L, 3))
    return luaL_error(L, "file:seek: bad argument #2 (an integer offset expected)");
  lua_settop(L, 3);
  lua_pushstring(L, whences[i]);
  lua_replace(L, 2);
  lua_pushinteger(L, lua_tointeger(L, 3));
  lua_replace(L, 3);
  return method(L, f, FO_SEEK, "file:seek");
}

/* file:sync() (suspends) -> true once the data is on the device */
static int f_sync(lua_State *L) {
  fsfile *f = check(L, "file:sync");
  lua_settop(L, 1);
  return method(L, f, FO_SYNC, "file:sync");
}

/* file:stat() (suspends) -> stat table */
static int f_stat(lua_State *L) {
  fsfile *f = check(L, "file:stat");
  lua_settop(L, 1);
  return method(L, f, FO_STAT, "file:stat");
}

/* file:truncate([size]) (suspends) -> true; size: the position */
static int f_truncate(lua_State *L) {
  fsfile *f = check(L, "file:truncate");
  if (!lua_isnoneornil(L, 2) && (!lua_isinteger(L, 2) || lua_tointeger(L, 2) < 0))
    return luaL_error(L, "file:truncate: bad argument #1 (a size expected)");
  lua_settop(L, 2);
  return method(L, f, FO_TRUNCATE, "file:truncate");
}

/* file:close() (suspends) -> true, or nil, msg, code. Closing a closed
   file is true. Outside a task, or in one being cancelled, it does not
   wait: the fd is closed in the background */
static int f_close(lua_State *L) {
  corio_State *S = corio__state(L);
  fsfile *f = check(L, "file:close");
  luatask *t = S->current;
  lua_settop(L, 1);
  if (f->state != F_OPEN) {
    lua_pushboolean(L, 1);
    return 1;
  }
  if (t == NULL || !lua_isyieldable(L) || corio_task_cancelled_by(&t->core) != NULL) {
    set_closed(f);
    lua_pushboolean(L, 1);
    return 1;
  }
  return start(L, S, t, f, FO_CLOSE);
}

/* file:fileno() -> the fd, or nil, "closed" */
static int f_fileno(lua_State *L) {
  fsfile *f = check(L, "file:fileno");
  if (f->state != F_OPEN) return closed(L);
  lua_pushinteger(L, f->fd);
  return 1;
}

/* file:is_closed() -> boolean */
static int f_is_closed(lua_State *L) {
  fsfile *f = check(L, "file:is_closed");
  lua_pushboolean(L, f->state != F_OPEN);
  return 1;
}

static int lines_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  if (lua_gettop(L) >= 3 && lua_isnil(L, 2) && !lua_isnil(L, 3))
    return luaL_error(L, "file:lines: %s", lua_tostring(L, 3));
  return 1;
}

/* upvalues: the file, its read_line, keep_eol */
static int lines_iter(lua_State *L) {
  lua_settop(L, 0);
  lua_pushvalue(L, lua_upvalueindex(1));  /* 1; results from 2 */
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_pushvalue(L, 1);
  lua_pushvalue(L, lua_upvalueindex(3));
  lua_callk(L, 2, LUA_MULTRET, 0, lines_k);
  return lines_k(L, LUA_OK, 0);
}

/* for line in file:lines([keep_eol]) do ... end (each step suspends);
   raises on an error */
static int f_lines(lua_State *L) {
  check(L, "file:lines");
  lua_settop(L, 2);
  lua_pushboolean(L, lua_toboolean(L, 2));
  lua_replace(L, 2);
  lua_getfield(L, 1, "read_line");
  lua_insert(L, 2);
  lua_pushcclosure(L, lines_iter, 3);
  return 1;
}

static int f_gc(lua_State *L) {
  fsfile **box = (fsfile **)lua_touserdata(L, 1);
  fsfile *f = *box;
  if (f == NULL) return 0;
  *box = NULL;
  f->gone = 1;
  if (f->state == F_OPEN) set_closed(f);
  if (!f->busy) file_free(f);
  return 0;
}

static int f_tostring(lua_State *L) {
  fsfile *f = *(fsfile **)lua_touserdata(L, 1);
  if (f == NULL) lua_pushliteral(L, "file (closed)");
  else lua_pushfstring(L, "file %s (%s)", f->path,
                       f->state == F_OPEN ? "open" : "closed");
  return 1;
}

/* the run's end, every task gone: close what nobody closed */
void corio__file_shutdown(corio_State *S, corio_list_t *files) {
  (void)S;
  while (!corio__list_empty(files))
    set_closed(corio__container_of(files->next, fsfile, node));
}

static const luaL_Reg file_methods[] = {
  {"read", f_read},
  {"read_line", f_read_line},
  {"read_all", f_read_all},
  {"lines", f_lines},
  {"write", f_write},
  {"seek", f_seek},
  {"sync", f_sync},
  {"stat", f_stat},
  {"truncate", f_truncate},
  {"close", f_close},
  {"fileno", f_fileno},
  {"is_closed", f_is_closed},
  {NULL, NULL}
};

/* stack: the state, the fs state. The File metatable. */
void corio__open_file(lua_State *L) {
  luaL_newmetatable(L, FILE_MT);
  lua_newtable(L);
  lua_pushvalue(L, -4);
  lua_pushvalue(L, -4);
  luaL_setfuncs(L, file_methods, 2);
  lua_setfield(L, -2, "__index");
  lua_pushvalue(L, -3);
  lua_pushvalue(L, -3);
  lua_pushcclosure(L, f_close, 2);
  lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, f_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, f_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
}
