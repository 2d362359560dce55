/*
** fs_path.c: corio.fs's functions on paths: stat, lstat, mkdir, rmdir,
** unlink, rename, copyfile, scandir, mkdtemp, realpath, readlink,
** symlink, chmod, utime, access, open. Each is one uv_fs request (mkdir
** with parents, a chain of them: fs_whole.c); each suspends, and is a
** checkpoint. Their answers are made by fs.c's result().
*/
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "fs.h"

#define LOOP(S) ((S)->loop.uv)

static const uv_fs_cb done = corio__fs_on_done;  /* a one-step request's */

/* fs.stat(path) (suspends) -> stat table */
static int l_stat(lua_State *L) {
  corio_State *S = corio__state(L);
  const char *p = corio__fs_check_path(L, 1, "corio.fs.stat");
  luatask *t = corio__checkpoint(L, S, "corio.fs.stat");
  fsreq *r = corio__fsreq_new(L, S, OP_STAT, 0);
  return corio__fs_issued(L, S, t, r,
                          uv_fs_stat(LOOP(S), &r->req, p, done), p, NULL);
}

/* fs.lstat(path) (suspends) -> stat table of the link itself */
static int l_lstat(lua_State *L) {
  corio_State *S = corio__state(L);
  const char *p = corio__fs_check_path(L, 1, "corio.fs.lstat");
  luatask *t = corio__checkpoint(L, S, "corio.fs.lstat");
  fsreq *r = corio__fsreq_new(L, S, OP_STAT, 0);
  return corio__fs_issued(L, S, t, r,
                          uv_fs_lstat(LOOP(S), &r->req, p, done), p, NULL);
}

/* fs.mkdir(path [, opts]) (suspends) -> true. opts: perm (0o777),
   parents (make missing parents; an existing directory is no error) */
static int l_mkdir(lua_State *L) {
  corio_State *S = corio__state(L);
  const char *p = corio__fs_check_path(L, 1, "corio.fs.mkdir");
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
    return corio__fs_issued(L, S, t, r, corio__mkdirs_start(r), p, NULL);
  }
  r = corio__fsreq_new(L, S, OP_PLAIN, 0);
  return corio__fs_issued(L, S, t, r,
                          uv_fs_mkdir(LOOP(S), &r->req, p, perm, done), p, NULL);
}

/* fs.rmdir(path) (suspends) -> true */
static int l_rmdir(lua_State *L) {
  corio_State *S = corio__state(L);
  const char *p = corio__fs_check_path(L, 1, "corio.fs.rmdir");
  luatask *t = corio__checkpoint(L, S, "corio.fs.rmdir");
  fsreq *r = corio__fsreq_new(L, S, OP_PLAIN, 0);
  return corio__fs_issued(L, S, t, r,
                          uv_fs_rmdir(LOOP(S), &r->req, p, done), p, NULL);
}

/* fs.unlink(path) (suspends) -> true */
static int l_unlink(lua_State *L) {
  corio_State *S = corio__state(L);
  const char *p = corio__fs_check_path(L, 1, "corio.fs.unlink");
  luatask *t = corio__checkpoint(L, S, "corio.fs.unlink");
  fsreq *r = corio__fsreq_new(L, S, OP_PLAIN, 0);
  return corio__fs_issued(L, S, t, r,
                          uv_fs_unlink(LOOP(S), &r->req, p, done), p, NULL);
}

/* fs.rename(from, to) (suspends) -> true */
static int l_rename(lua_State *L) {
  corio_State *S = corio__state(L);
  const char *p = corio__fs_check_path(L, 1, "corio.fs.rename");
  const char *q = corio__fs_check_path(L, 2, "corio.fs.rename");
  luatask *t = corio__checkpoint(L, S, "corio.fs.rename");
  fsreq *r = corio__fsreq_new(L, S, OP_PLAIN, 0);
  return corio__fs_issued(L, S, t, r,
                          uv_fs_rename(LOOP(S), &r->req, p, q, done), p, q);
}

/* fs.copyfile(from, to [, opts]) (suspends) -> true. opts: excl (fail
   when `to` exists), clone (copy-on-write when the file system can) */
static int l_copyfile(lua_State *L) {
  corio_State *S = corio__state(L);
  const char *p = corio__fs_check_path(L, 1, "corio.fs.copyfile");
  const char *q = corio__fs_check_path(L, 2, "corio.fs.copyfile");
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
  return corio__fs_issued(L, S, t, r, uv_fs_copyfile(LOOP(S), &r->req, p, q, flags,
                                           done), p, q);
}

/* fs.mkdtemp(template) (suspends) -> the new directory's path; the
   template ends in XXXXXX, which is replaced */
static int l_mkdtemp(lua_State *L) {
  corio_State *S = corio__state(L);
  const char *p = corio__fs_check_path(L, 1, "corio.fs.mkdtemp");
  size_t n = strlen(p);
  luatask *t;
  fsreq *r;
  if (n < 6 || strcmp(p + n - 6, "XXXXXX") != 0)
    return luaL_error(L, "corio.fs.mkdtemp: the template must end in XXXXXX");
  t = corio__checkpoint(L, S, "corio.fs.mkdtemp");
  r = corio__fsreq_new(L, S, OP_MKDTEMP, 0);
  return corio__fs_issued(L, S, t, r,
                          uv_fs_mkdtemp(LOOP(S), &r->req, p, done), p, NULL);
}

/* fs.realpath(path) (suspends) -> the canonical absolute path */
static int l_realpath(lua_State *L) {
  corio_State *S = corio__state(L);
  const char *p = corio__fs_check_path(L, 1, "corio.fs.realpath");
  luatask *t = corio__checkpoint(L, S, "corio.fs.realpath");
  fsreq *r = corio__fsreq_new(L, S, OP_PATH, 0);
  return corio__fs_issued(L, S, t, r,
                          uv_fs_realpath(LOOP(S), &r->req, p, done), p, NULL);
}

/* fs.readlink(path) (suspends) -> the link's target */
static int l_readlink(lua_State *L) {
  corio_State *S = corio__state(L);
  const char *p = corio__fs_check_path(L, 1, "corio.fs.readlink");
  luatask *t = corio__checkpoint(L, S, "corio.fs.readlink");
  fsreq *r = corio__fsreq_new(L, S, OP_PATH, 0);
  return corio__fs_issued(L, S, t, r,
                          uv_fs_readlink(LOOP(S), &r->req, p, done), p, NULL);
}

/* fs.symlink(target, path) (suspends) -> true: path becomes a link to target */
static int l_symlink(lua_State *L) {
  corio_State *S = corio__state(L);
  const char *p = corio__fs_check_path(L, 1, "corio.fs.symlink");
  const char *q = corio__fs_check_path(L, 2, "corio.fs.symlink");
  luatask *t = corio__checkpoint(L, S, "corio.fs.symlink");
  fsreq *r = corio__fsreq_new(L, S, OP_PLAIN, 0);
  return corio__fs_issued(L, S, t, r,
                          uv_fs_symlink(LOOP(S), &r->req, p, q, 0, done), p, q);
}

/* fs.chmod(path, perm) (suspends) -> true */
static int l_chmod(lua_State *L) {
  corio_State *S = corio__state(L);
  const char *p = corio__fs_check_path(L, 1, "corio.fs.chmod");
  int perm;
  luatask *t;
  fsreq *r;
  if (lua_isnoneornil(L, 2))
    return luaL_error(L, "corio.fs.chmod: bad argument #2 (permission bits expected)");
  perm = corio__fs_check_perm(L, 2, 0, "corio.fs.chmod");
  t = corio__checkpoint(L, S, "corio.fs.chmod");
  r = corio__fsreq_new(L, S, OP_PLAIN, 0);
  return corio__fs_issued(L, S, t, r,
                          uv_fs_chmod(LOOP(S), &r->req, p, perm, done), p, NULL);
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
  const char *p = corio__fs_check_path(L, 1, "corio.fs.utime");
  double at = check_time(L, 2, "corio.fs.utime");
  double mt = lua_isnoneornil(L, 3) ? at : check_time(L, 3, "corio.fs.utime");
  luatask *t = corio__checkpoint(L, S, "corio.fs.utime");
  fsreq *r = corio__fsreq_new(L, S, OP_PLAIN, 0);
  return corio__fs_issued(L, S, t, r,
                          uv_fs_utime(LOOP(S), &r->req, p, at, mt, done), p, NULL);
}

/* fs.access(path [, mode]) (suspends) -> true, or nil, msg, code. mode:
   letters of "rwx" (default: the path exists) */
static int l_access(lua_State *L) {
  corio_State *S = corio__state(L);
  const char *p = corio__fs_check_path(L, 1, "corio.fs.access");
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
  return corio__fs_issued(L, S, t, r,
                          uv_fs_access(LOOP(S), &r->req, p, mode, done), p, NULL);
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

int corio__fs_scandir_push(lua_State *L, fsreq *r) {
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
  const char *p = corio__fs_check_path(L, 1, "corio.fs.scandir");
  luatask *t = corio__checkpoint(L, S, "corio.fs.scandir");
  fsreq *r = corio__fsreq_new(L, S, OP_SCANDIR, 0);
  return corio__fs_issued(L, S, t, r,
                          uv_fs_scandir(LOOP(S), &r->req, p, 0, done), p, NULL);
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
  const char *p = corio__fs_check_path(L, 1, "corio.fs.open");
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
  return corio__fs_issued(L, S, t, r, uv_fs_open(LOOP(S), &r->req, p, flags, perm,
                                       done), p, NULL);
}

/* the scandir iterator's metatable (at module open) */
void corio__open_path(lua_State *L) {
  luaL_newmetatable(L, SCANDIR_MT);
  lua_pushcfunction(L, scandir_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
}

const luaL_Reg corio__fs_path_funcs[] = {
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
