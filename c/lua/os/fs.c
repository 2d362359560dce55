/*
** fs.c: corio.fs's requests (fs.h tells their life) and its functions
** on paths: stat, lstat, mkdir, rmdir, unlink, rename, copyfile,
** scandir, mkdtemp, realpath, readlink, symlink, chmod, utime, access.
** Each is one uv_fs request (mkdir with parents, a chain of them); each
** suspends, and is a checkpoint. Errors are nil, "ENOENT: no such file
** or directory: path", "ENOENT"; misuse raises, naming corio.fs.<name>.
**
** Every function of corio.fs and every method of its types has the
** corio state as upvalue 1 and the fs state (fsstate) as upvalue 2.
*/
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "fs.h"

#define fs_up(L) ((fsstate *)lua_touserdata(L, lua_upvalueindex(2)))

fsstate *corio__fs_state(lua_State *L) {
  fsstate *fs;
  lua_getfield(L, LUA_REGISTRYINDEX, FS_REGKEY);
  fs = (fsstate *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  return fs;
}

/* ------------------------------------------------------------ errors */

/* nil, "ENOENT: no such file or directory: path", "ENOENT"; with two
   paths (rename, copyfile, symlink) "...: from -> to" */
int corio__fs_error(lua_State *L, int err, const char *path, const char *path2) {
  lua_pushnil(L);
  if (path != NULL && path2 != NULL)
    lua_pushfstring(L, "%s: %s: %s -> %s", uv_err_name(err), uv_strerror(err),
                    path, path2);
  else if (path != NULL)
    lua_pushfstring(L, "%s: %s: %s", uv_err_name(err), uv_strerror(err), path);
  else
    lua_pushfstring(L, "%s: %s", uv_err_name(err), uv_strerror(err));
  lua_pushstring(L, uv_err_name(err));
  return 3;
}

static const char *type_name(uint64_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return "file";
    case S_IFDIR: return "directory";
    case S_IFLNK: return "link";
    case S_IFIFO: return "fifo";
    case S_IFSOCK: return "socket";
    case S_IFCHR: return "char";
    case S_IFBLK: return "block";
    default: return "unknown";
  }
}

static double ts(uv_timespec_t t) {
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* a stat table: type, size, perm, mode, nlink, uid, gid, dev, ino,
   rdev, blksize, blocks, atime, mtime, ctime, birthtime (seconds) */
int corio__fs_push_stat(lua_State *L, const uv_stat_t *s) {
  lua_createtable(L, 0, 16);
  lua_pushstring(L, type_name(s->st_mode));
  lua_setfield(L, -2, "type");
#define SETI(name, v) (lua_pushinteger(L, (lua_Integer)(v)), lua_setfield(L, -2, name))
#define SETN(name, v) (lua_pushnumber(L, (v)), lua_setfield(L, -2, name))
  SETI("size", s->st_size);
  SETI("perm", s->st_mode & 07777);
  SETI("mode", s->st_mode);
  SETI("nlink", s->st_nlink);
  SETI("uid", s->st_uid);
  SETI("gid", s->st_gid);
  SETI("dev", s->st_dev);
  SETI("ino", s->st_ino);
  SETI("rdev", s->st_rdev);
  SETI("blksize", s->st_blksize);
  SETI("blocks", s->st_blocks);
  SETN("atime", ts(s->st_atim));
  SETN("mtime", ts(s->st_mtim));
  SETN("ctime", ts(s->st_ctim));
  SETN("birthtime", ts(s->st_birthtim));
#undef SETI
#undef SETN
  return 1;
}

/* permission bits at idx (nil: dflt) */
int corio__fs_check_perm(lua_State *L, int idx, int dflt, const char *fname) {
  lua_Integer m;
  if (lua_isnoneornil(L, idx)) return dflt;
  if (!lua_isinteger(L, idx))
    return luaL_error(L, "%s: permission bits must be an integer (such as "
                      "tonumber(\"644\", 8)), got %s", fname, luaL_typename(L, idx));
  m = lua_tointeger(L, idx);
  if (m < 0 || m > 07777)
    return luaL_error(L, "%s: permission bits out of range (0 to 0o7777)", fname);
  return (int)m;
}

static const char *check_path(lua_State *L, int idx, const char *fname) {
  size_t len;
  const char *p = lua_tolstring(L, idx, &len);
  if (p == NULL || lua_type(L, idx) != LUA_TSTRING)
    luaL_error(L, "%s: bad argument #%d (a path string expected, got %s)",
               fname, idx, luaL_typename(L, idx));
  if (strlen(p) != len)
    luaL_error(L, "%s: bad argument #%d (the path contains a zero byte)", fname, idx);
  return p;
}

/* ------------------------------------------------------------ requests */

fsreq *corio__fsreq_new(lua_State *L, corio_State *S, int op, size_t extra) {
  fsreq *r = (fsreq *)malloc(sizeof *r + extra);
  if (r == NULL) {
    luaL_error(L, "corio.fs: out of memory");
    return NULL;
  }
  memset(r, 0, sizeof *r);
  corio__list_init(&r->node);
  r->S = S;
  r->op = (uint8_t)op;
  r->fd = -1;
  if (extra) r->data = (char *)(r + 1);
  return r;
}

void corio__fsreq_free(fsreq *r) {
  uv_fs_req_cleanup(&r->req);
  free(r->path);
  free(r->tmp);
  free(r);
}

void corio__fs_closed_fd(uv_fs_t *req) {
  uv_fs_req_cleanup(req);
  free(req);
}

/* close fd without waiting (nobody wants the answer) */
void corio__fs_close_fd(corio_State *S, int fd) {
  uv_fs_t *req = (uv_fs_t *)malloc(sizeof *req);
  if (req == NULL || uv_fs_close(S->loop.uv, req, fd, corio__fs_closed_fd) != 0) {
    free(req);
    close(fd);
  }
}

/* the request is done and nobody takes its result: undo what it made */
static void orphan(fsreq *r) {
  switch (r->op) {
    case OP_OPEN:
      if (r->req.result >= 0) corio__fs_close_fd(r->S, (int)r->req.result);
      break;
    case OP_MKDTEMP:
      if (r->req.result == 0) {  /* reuse the request to remove the directory */
        char *p = strdup(r->req.path);
        uv_fs_req_cleanup(&r->req);
        if (p != NULL && uv_fs_rmdir(r->S->loop.uv, &r->req, p, corio__fs_closed_fd) == 0) {
          free(p);
          return;  /* corio__fs_closed_fd frees r: req is its first field */
        }
        free(p);
      }
      break;
    case OP_WHOLE:
      corio__whole_orphan(r);
      return;
    case OP_FILE:
      corio__file_orphan(r);
      return;
    default: break;
  }
  corio__fsreq_free(r);
}

void corio__fsreq_finish(fsreq *r) {
  r->done = 1;
  if (r->task != NULL) {
    corio__list_remove(&r->node);
    corio_task_wake(&r->S->loop, &r->task->core, CORIO_WAKE_NORMAL);
  }
  else orphan(r);
}

void corio__fs_on_done(uv_fs_t *req) {
  corio__fsreq_finish(corio__container_of(req, fsreq, req));
}

static int scandir_push(lua_State *L, fsreq *r);

/* the answer of a finished request, which it frees (unless it is kept) */
static int result(lua_State *L, corio_State *S, luatask *t, fsreq *r) {
  int n = 1;
  ssize_t res = r->req.result;
  switch (r->op) {
    case OP_WHOLE:
      n = corio__whole_result(L, r);
      break;
    case OP_FILE:
      return corio__file_resume(L, S, t, r);
    case OP_MKDIRS:
      if (r->err < 0) n = corio__fs_error(L, r->err, r->path, NULL);
      else lua_pushboolean(L, 1);
      break;
    default:
      if (res < 0) n = corio__fs_error(L, (int)res, r->req.path, r->req.new_path);
      else switch (r->op) {
        case OP_STAT: corio__fs_push_stat(L, &r->req.statbuf); break;
        case OP_OPEN:  /* the File made before the request is at the top */
          corio__file_opened(L, lua_gettop(L), (int)res);
          break;
        case OP_PATH: lua_pushstring(L, (const char *)r->req.ptr); break;
        case OP_MKDTEMP: lua_pushstring(L, r->req.path); break;
        case OP_SCANDIR: return scandir_push(L, r);  /* keeps r */
        default: lua_pushboolean(L, 1);
      }
  }
  corio__fsreq_free(r);
  return n;
}

static int fsreq_k(lua_State *L, int status, lua_KContext ctx) {
  corio_State *S = (corio_State *)ctx;
  luatask *t = S->current;
  fsreq *r = (fsreq *)lua_touserdata(L, -1);
  (void)status;
  lua_pop(L, 1);
  if (t->core.wake != CORIO_WAKE_NORMAL) {
    corio__list_remove(&r->node);
    r->task = NULL;
    if (r->done) orphan(r);
    else if (r->req.fs_type != UV_FS_CLOSE)  /* a close must happen */
      uv_cancel((uv_req_t *)&r->req);  /* fails once started */
    corio__wake_check(L, S, t);  /* raises */
  }
  return result(L, S, t, r);
}

int corio__fsreq_wait(lua_State *L, corio_State *S, luatask *t, fsreq *r) {
  fsstate *fs = fs_up(L);
  r->task = t;
  corio__list_push(&fs->waiting, &r->node);
  corio_task_park(&S->loop, &t->core);
  t->what = W_OTHER;
  lua_pushlightuserdata(L, r);
  return corio__suspend(L, S, fsreq_k);
}

/* issued (err 0): wait; else the error at once */
static int issued(lua_State *L, corio_State *S, luatask *t, fsreq *r, int err,
                  const char *path, const char *path2) {
  if (err < 0) {
    corio__fsreq_free(r);
    return corio__fs_error(L, err, path, path2);
  }
  return corio__fsreq_wait(L, S, t, r);
}

#define LOOP(S) ((S)->loop.uv)

/* ------------------------------------------------------------ functions */

/* fs.stat(path) (suspends) -> stat table */
static int l_stat(lua_State *L) {
  corio_State *S = corio__state(L);
  const char *p = check_path(L, 1, "corio.fs.stat");
  luatask *t = corio__checkpoint(L, S, "corio.fs.stat");
  fsreq *r = corio__fsreq_new(L, S, OP_STAT, 0);
  return issued(L, S, t, r, uv_fs_stat(LOOP(S), &r->req, p, corio__fs_on_done), p, NULL);
}

/* fs.lstat(path) (suspends) -> stat table of the link itself */
static int l_lstat(lua_State *L) {
  corio_State *S = corio__state(L);
  const char *p = check_path(L, 1, "corio.fs.lstat");
  luatask *t = corio__checkpoint(L, S, "corio.fs.lstat");
  fsreq *r = corio__fsreq_new(L, S, OP_STAT, 0);
  return issued(L, S, t, r, uv_fs_lstat(LOOP(S), &r->req, p, corio__fs_on_done), p, NULL);
}

/* fs.mkdir(path [, opts]) (suspends) -> true. opts: perm (0o777),
   parents (make missing parents; an existing directory is no error) */
static int l_mkdir(lua_State *L) {
  corio_State *S = corio__state(L);
  const char *p = check_path(L, 1, "corio.fs.mkdir");
  int perm = 0777, parents = 0;
  luatask *t;
  fsreq *r;
  if (!lua_isnoneornil(L, 2)) {
    if (!lua_istable(L, 2))
      return luaL_error(L, "corio.fs.mkdir: bad argument #2 (an options table "
                        "expected, got %s)", luaL_typename(L, 2));
    lua_getfield(L, 2, "perm");
    perm = corio__fs_check_perm(L, -1, 0777, "corio.fs.mkdir");
    lua_getfield(L, 2, "parents");
    parents = lua_toboolean(L, -1);
    lua_pop(L, 2);
  }
  t = corio__checkpoint(L, S, "corio.fs.mkdir");
  if (parents) {
    r = corio__fsreq_new(L, S, OP_MKDIRS, 0);
    r->perm = perm;
    r->path = strdup(p);
    if (r->path == NULL) {
      corio__fsreq_free(r);
      return luaL_error(L, "corio.fs.mkdir: out of memory");
    }
    r->len = strlen(p);
    return issued(L, S, t, r, corio__mkdirs_start(r), p, NULL);
  }
  r = corio__fsreq_new(L, S, OP_PLAIN, 0);
  return issued(L, S, t, r, uv_fs_mkdir(LOOP(S), &r->req, p, perm, corio__fs_on_done), p, NULL);
}

/* fs.rmdir(path) (suspends) -> true */
static int l_rmdir(lua_State *L) {
  corio_State *S = corio__state(L);
  const char *p = check_path(L, 1, "corio.fs.rmdir");
  luatask *t = corio__checkpoint(L, S, "corio.fs.rmdir");
  fsreq *r = corio__fsreq_new(L, S, OP_PLAIN, 0);
  return issued(L, S, t, r, uv_fs_rmdir(LOOP(S), &r->req, p, corio__fs_on_done), p, NULL);
}

/* fs.unlink(path) (suspends) -> true */
static int l_unlink(lua_State *L) {
  corio_State *S = corio__state(L);
  const char *p = check_path(L, 1, "corio.fs.unlink");
  luatask *t = corio__checkpoint(L, S, "corio.fs.unlink");
  fsreq *r = corio__fsreq_new(L, S, OP_PLAIN, 0);
  return issued(L, S, t, r, uv_fs_unlink(LOOP(S), &r->req, p, corio__fs_on_done), p, NULL);
}

/* fs.rename(from, to) (suspends) -> true */
static int l_rename(lua_State *L) {
  corio_State *S = corio__state(L);
  const char *p = check_path(L, 1, "corio.fs.rename");
  const char *q = check_path(L, 2, "corio.fs.rename");
  luatask *t = corio__checkpoint(L, S, "corio.fs.rename");
  fsreq *r = corio__fsreq_new(L, S, OP_PLAIN, 0);
  return issued(L, S, t, r, uv_fs_rename(LOOP(S), &r->req, p, q, corio__fs_on_done), p, q);
}

/* fs.copyfile(from, to [, opts]) (suspends) -> true. opts: excl (fail
   when `to` exists), clone (copy-on-write when the file system can) */
static int l_copyfile(lua_State *L) {
  corio_State *S = corio__state(L);
  const char *p = check_path(L, 1, "corio.fs.copyfile");
  const char *q = check_path(L, 2, "corio.fs.copyfile");
  int flags = 0;
  luatask *t;
  fsreq *r;
  if (!lua_isnoneornil(L, 3)) {
    if (!lua_istable(L, 3))
      return luaL_error(L, "corio.fs.copyfile: bad argument #3 (an options "
                        "table expected, got %s)", luaL_typename(L, 3));
    lua_getfield(L, 3, "excl");
    if (lua_toboolean(L, -1)) flags |= UV_FS_COPYFILE_EXCL;
    lua_getfield(L, 3, "clone");
    if (lua_toboolean(L, -1)) flags |= UV_FS_COPYFILE_FICLONE;
    lua_pop(L, 2);
  }
  t = corio__checkpoint(L, S, "corio.fs.copyfile");
  r = corio__fsreq_new(L, S, OP_PLAIN, 0);
  return issued(L, S, t, r, uv_fs_copyfile(LOOP(S), &r->req, p, q, flags,
                                           corio__fs_on_done), p, q);
}

/* fs.mkdtemp(template) (suspends) -> the new directory's path; the
   template ends in XXXXXX, which is replaced */
static int l_mkdtemp(lua_State *L) {
  corio_State *S = corio__state(L);
  const char *p = check_path(L, 1, "corio.fs.mkdtemp");
  size_t n = strlen(p);
  luatask *t;
  fsreq *r;
  if (n < 6 || strcmp(p + n - 6, "XXXXXX") != 0)
    return luaL_error(L, "corio.fs.mkdtemp: the template must end in XXXXXX");
  t = corio__checkpoint(L, S, "corio.fs.mkdtemp");
  r = corio__fsreq_new(L, S, OP_MKDTEMP, 0);
  return issued(L, S, t, r, uv_fs_mkdtemp(LOOP(S), &r->req, p, corio__fs_on_done), p, NULL);
}

/* fs.realpath(path) (suspends) -> the canonical absolute path */
static int l_realpath(lua_State *L) {
  corio_State *S = corio__state(L);
  const char *p = check_path(L, 1, "corio.fs.realpath");
  luatask *t = corio__checkpoint(L, S, "corio.fs.realpath");
  fsreq *r = corio__fsreq_new(L, S, OP_PATH, 0);
  return issued(L, S, t, r, uv_fs_realpath(LOOP(S), &r->req, p, corio__fs_on_done), p, NULL);
}

/* fs.readlink(path) (suspends) -> the link's target */
static int l_readlink(lua_State *L) {
  corio_State *S = corio__state(L);
  const char *p = check_path(L, 1, "corio.fs.readlink");
  luatask *t = corio__checkpoint(L, S, "corio.fs.readlink");
  fsreq *r = corio__fsreq_new(L, S, OP_PATH, 0);
  return issued(L, S, t, r, uv_fs_readlink(LOOP(S), &r->req, p, corio__fs_on_done), p, NULL);
}

/* fs.symlink(target, path) (suspends) -> true: path becomes a link to target */
static int l_symlink(lua_State *L) {
  corio_State *S = corio__state(L);
  const char *p = check_path(L, 1, "corio.fs.symlink");
  const char *q = check_path(L, 2, "corio.fs.symlink");
  luatask *t = corio__checkpoint(L, S, "corio.fs.symlink");
  fsreq *r = corio__fsreq_new(L, S, OP_PLAIN, 0);
  return issued(L, S, t, r, uv_fs_symlink(LOOP(S), &r->req, p, q, 0, corio__fs_on_done), p, q);
}

/* fs.chmod(path, perm) (suspends) -> true */
static int l_chmod(lua_State *L) {
  corio_State *S = corio__state(L);
  const char *p = check_path(L, 1, "corio.fs.chmod");
  int perm;
  luatask *t;
  fsreq *r;
  if (lua_isnoneornil(L, 2))
    return luaL_error(L, "corio.fs.chmod: bad argument #2 (permission bits expected)");
  perm = corio__fs_check_perm(L, 2, 0, "corio.fs.chmod");
  t = corio__checkpoint(L, S, "corio.fs.chmod");
  r = corio__fsreq_new(L, S, OP_PLAIN, 0);
  return issued(L, S, t, r, uv_fs_chmod(LOOP(S), &r->req, p, perm, corio__fs_on_done), p, NULL);
}

static double check_time(lua_State *L, int idx, const char *fname) {
  if (lua_isnoneornil(L, idx)) {
    uv_timeval64_t tv;
    uv_gettimeofday(&tv);
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
  }
  if (!lua_isnumber(L, idx) || lua_type(L, idx) != LUA_TNUMBER)
    luaL_error(L, "%s: bad argument #%d (seconds expected, got %s)", fname, idx,
               luaL_typename(L, idx));
  return lua_tonumber(L, idx);
}

/* fs.utime(path [, atime [, mtime]]) (suspends) -> true; times in
   seconds since the epoch, now when left out (mtime: atime's) */
static int l_utime(lua_State *L) {
  corio_State *S = corio__state(L);
  const char *p = check_path(L, 1, "corio.fs.utime");
  double at = check_time(L, 2, "corio.fs.utime");
  double mt = lua_isnoneornil(L, 3) ? at : check_time(L, 3, "corio.fs.utime");
  luatask *t = corio__checkpoint(L, S, "corio.fs.utime");
  fsreq *r = corio__fsreq_new(L, S, OP_PLAIN, 0);
  return issued(L, S, t, r, uv_fs_utime(LOOP(S), &r->req, p, at, mt, corio__fs_on_done), p, NULL);
}

/* fs.access(path [, mode]) (suspends) -> true, or nil, msg, code. mode:
   letters of "rwx" (default: the path exists) */
static int l_access(lua_State *L) {
  corio_State *S = corio__state(L);
  const char *p = check_path(L, 1, "corio.fs.access");
  const char *m = luaL_optstring(L, 2, "");
  int mode = F_OK;
  luatask *t;
  fsreq *r;
  for (; *m; m++) {
    if (*m == 'r') mode |= R_OK;
    else if (*m == 'w') mode |= W_OK;
    else if (*m == 'x') mode |= X_OK;
    else return luaL_error(L, "corio.fs.access: bad mode (letters of \"rwx\" expected)");
  }
  t = corio__checkpoint(L, S, "corio.fs.access");
  r = corio__fsreq_new(L, S, OP_PLAIN, 0);
  return issued(L, S, t, r, uv_fs_access(LOOP(S), &r->req, p, mode, corio__fs_on_done), p, NULL);
}

/* ------------------------------------------------------------ scandir */

static const char *dirent_type(uv_dirent_type_t t) {
  switch (t) {
    case UV_DIRENT_FILE: return "file";
    case UV_DIRENT_DIR: return "directory";
    case UV_DIRENT_LINK: return "link";
    case UV_DIRENT_FIFO: return "fifo";
    case UV_DIRENT_SOCKET: return "socket";
    case UV_DIRENT_CHAR: return "char";
    case UV_DIRENT_BLOCK: return "block";
    default: return "unknown";
  }
}

static int scandir_gc(lua_State *L) {
  fsreq **box = (fsreq **)lua_touserdata(L, 1);
  if (*box != NULL) corio__fsreq_free(*box);
  *box = NULL;
  return 0;
}

/* upvalue 1: the box holding the finished request */
static int scandir_iter(lua_State *L) {
  fsreq **box = (fsreq **)lua_touserdata(L, lua_upvalueindex(1));
  uv_dirent_t d;
  if (*box == NULL || uv_fs_scandir_next(&(*box)->req, &d) == UV_EOF) {
    if (*box != NULL) corio__fsreq_free(*box);
    *box = NULL;
    return 0;
  }
  lua_pushstring(L, d.name);
  lua_pushstring(L, dirent_type(d.type));
  return 2;
}

static int scandir_push(lua_State *L, fsreq *r) {
  fsreq **box = (fsreq **)lua_newuserdatauv(L, sizeof *box, 0);
  *box = r;
  luaL_setmetatable(L, SCANDIR_MT);
  lua_pushcclosure(L, scandir_iter, 1);
  return 1;
}

/* fs.scandir(path) (suspends) -> iterator of name, type (the entries are
   read at once; "." and ".." are left out):
   for name, type in assert(fs.scandir(dir)) do ... end */
static int l_scandir(lua_State *L) {
  corio_State *S = corio__state(L);
  const char *p = check_path(L, 1, "corio.fs.scandir");
  luatask *t = corio__checkpoint(L, S, "corio.fs.scandir");
  fsreq *r = corio__fsreq_new(L, S, OP_SCANDIR, 0);
  return issued(L, S, t, r, uv_fs_scandir(LOOP(S), &r->req, p, 0, corio__fs_on_done), p, NULL);
}

/* ------------------------------------------------------------ open */

static int parse_mode(const char *m, int *append) {
  int flags;
  *append = 0;
  switch (*m++) {
    case 'r': flags = O_RDONLY; break;
    case 'w': flags = O_WRONLY | O_CREAT | O_TRUNC; break;
    case 'a': flags = O_WRONLY | O_CREAT | O_APPEND; *append = 1; break;
    case 'x': flags = O_WRONLY | O_CREAT | O_EXCL; break;
    default: return -1;
  }
  for (; *m; m++) {
    if (*m == '+') flags = (flags & ~(O_RDONLY | O_WRONLY)) | O_RDWR;
    else if (*m != 'b') return -1;
  }
  return flags | O_CLOEXEC;
}

/* fs.open(path [, mode [, opts]]) (suspends) -> File. mode: "r"
   (default), "w", "a", "x" (create, failing if it exists), each with "+"
   to read and write, "b" ignored. opts: perm (0o666, less the umask),
   limit (read_line's, 64 KiB) */
static int l_open(lua_State *L) {
  corio_State *S = corio__state(L);
  const char *p = check_path(L, 1, "corio.fs.open");
  const char *m = luaL_optstring(L, 2, "r");
  int append, flags = parse_mode(m, &append), perm = 0666;
  size_t limit = FS_LIMIT;
  luatask *t;
  fsreq *r;
  if (flags < 0)
    return luaL_error(L, "corio.fs.open: bad mode '%s' (\"r\", \"w\", \"a\" or "
                      "\"x\", with \"+\" and \"b\")", m);
  if (!lua_isnoneornil(L, 3)) {
    if (!lua_istable(L, 3))
      return luaL_error(L, "corio.fs.open: bad argument #3 (an options table "
                        "expected, got %s)", luaL_typename(L, 3));
    lua_getfield(L, 3, "perm");
    perm = corio__fs_check_perm(L, -1, 0666, "corio.fs.open");
    if (lua_getfield(L, 3, "limit") != LUA_TNIL) {
      if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) <= 0)
        return luaL_error(L, "corio.fs.open: option 'limit': a positive integer expected");
      limit = (size_t)lua_tointeger(L, -1);
    }
    lua_pop(L, 2);
  }
  lua_settop(L, 1);
  t = corio__checkpoint(L, S, "corio.fs.open");
  corio__file_new(L, S, p, append, limit);  /* 2: closed until opened */
  r = corio__fsreq_new(L, S, OP_OPEN, 0);
  return issued(L, S, t, r, uv_fs_open(LOOP(S), &r->req, p, flags, perm,
                                       corio__fs_on_done), p, NULL);
}

/* ------------------------------------------------------------ the module */

/* a task the run's end abandons while it waits: its requests forget it */
static void fs_abandon(corio_State *S, luatask *t) {
  fsstate *fs = corio__fs_state(S->L);
  corio_list_t *n;
  if (fs == NULL) return;
  n = fs->waiting.next;
  while (n != &fs->waiting) {
    fsreq *r = corio__container_of(n, fsreq, node);
    n = n->next;
    if (r->task != t) continue;
    corio__list_remove(&r->node);
    r->task = NULL;
    if (r->done) orphan(r);
  }
  corio__watch_abandon(&fs->watchers, t);
}

/* the run's end, once every task has ended: close what nobody closed */
static void fs_shutdown(lua_State *L, corio_State *S, int phase) {
  fsstate *fs = corio__fs_state(L);
  (void)S;
  if (fs == NULL || phase != 1) return;
  corio__file_shutdown(S, &fs->files);
  corio__watch_shutdown(&fs->watchers);
}

const corio_iomod corio__fs_iomod = { "fs", fs_abandon, fs_shutdown };

static const luaL_Reg fs_funcs[] = {
  {"stat", l_stat},
  {"lstat", l_lstat},
  {"mkdir", l_mkdir},
  {"rmdir", l_rmdir},
  {"unlink", l_unlink},
  {"rename", l_rename},
  {"copyfile", l_copyfile},
  {"mkdtemp", l_mkdtemp},
  {"realpath", l_realpath},
  {"readlink", l_readlink},
  {"symlink", l_symlink},
  {"chmod", l_chmod},
  {"utime", l_utime},
  {"access", l_access},
  {"scandir", l_scandir},
  {"open", l_open},
  {NULL, NULL}
};

static int fsstate_gc(lua_State *L) {
  fsstate *fs = (fsstate *)lua_touserdata(L, 1);
  while (fs->nspare > 0) free(fs->spare[--fs->nspare]);
  return 0;
}

/* the corio.fs table, pushed; st: the index of the state userdata */
void corio__open_fs(lua_State *L, int st) {
  fsstate *fs;
  st = lua_absindex(L, st);
  fs = (fsstate *)lua_newuserdatauv(L, sizeof *fs, 0);
  corio__list_init(&fs->waiting);
  corio__list_init(&fs->files);
  corio__list_init(&fs->watchers);
  fs->nspare = 0;
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, fsstate_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, FS_REGKEY);   /* fs state at -1 */
  luaL_newmetatable(L, SCANDIR_MT);
  lua_pushcfunction(L, scandir_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  lua_pushvalue(L, st);
  lua_insert(L, -2);                               /* state, fs state */
  corio__open_file(L);
  corio__open_watch(L);
  lua_newtable(L);
  lua_pushvalue(L, -3);
  lua_pushvalue(L, -3);
  luaL_setfuncs(L, fs_funcs, 2);
  lua_pushvalue(L, -3);
  lua_pushvalue(L, -3);
  luaL_setfuncs(L, corio__fs_whole_funcs, 2);
  lua_pushvalue(L, -3);
  lua_pushvalue(L, -3);
  luaL_setfuncs(L, corio__fs_file_funcs, 2);
  lua_pushvalue(L, -3);
  lua_pushvalue(L, -3);
  luaL_setfuncs(L, corio__fs_watch_funcs, 2);
  lua_replace(L, -3);
  lua_pop(L, 1);
}
