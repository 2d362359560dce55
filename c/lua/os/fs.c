/*
** fs.c: corio.fs's requests (fs.h tells their life), its errors, its
** part in a run's end (corio__fs_iomod), and the module's table. The
** functions on paths are in fs_path.c, whole files in fs_whole.c, the
** File in fs_file.c, watchers in fs_watch.c. Errors are nil, "ENOENT: no
** such file or directory: path", "ENOENT"; misuse raises, naming
** corio.fs.<name>.
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

const char *corio__fs_check_path(lua_State *L, int idx, const char *fname) {
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

/* the task left: the request's end is nobody's (a job sees it too) */
static void forget(fsreq *r) {
  r->task = NULL;
  if (r->op == OP_WHOLE) __atomic_store_n(&r->left, 1, __ATOMIC_RELEASE);
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

/* the answer of a plain request (under lua_pcall from result: its pushes may
   run out of memory, and the request must be freed either way) */
static int push_answer(lua_State *L) {
  fsreq *r = (fsreq *)lua_touserdata(L, 1);
  ssize_t res = r->req.result;
  lua_pop(L, 1);
  if (r->op == OP_MKDIRS) {
    if (r->err < 0) return corio__fs_error(L, r->err, r->path, NULL);
    lua_pushboolean(L, 1);
    return 1;
  }
  if (res < 0) return corio__fs_error(L, (int)res, r->req.path, r->req.new_path);
  switch (r->op) {
    case OP_STAT: corio__fs_push_stat(L, &r->req.statbuf); break;
    case OP_PATH: lua_pushstring(L, (const char *)r->req.ptr); break;
    case OP_MKDTEMP: lua_pushstring(L, r->req.path); break;
    default: lua_pushboolean(L, 1);
  }
  return 1;
}

/* the answer of a finished request, which it frees (unless it is kept) */
static int result(lua_State *L, corio_State *S, luatask *t, fsreq *r) {
  int n, top, status;
  ssize_t res = r->req.result;
  switch (r->op) {
    case OP_WHOLE:
      n = corio__whole_result(L, r);
      corio__fsreq_free(r);
      return n;
    case OP_FILE:
      return corio__file_resume(L, S, t, r);
    case OP_SCANDIR:
      if (res >= 0) return corio__fs_scandir_push(L, r);  /* keeps r */
      break;
    case OP_OPEN:
      if (res >= 0) {  /* the File made before the request is at the top */
        corio__file_opened(L, lua_gettop(L), (int)res);
        corio__fsreq_free(r);
        return 1;
      }
      break;
    default: break;
  }
  top = lua_gettop(L);
  lua_pushcfunction(L, push_answer);
  lua_pushlightuserdata(L, r);
  status = lua_pcall(L, 1, LUA_MULTRET, 0);
  corio__fsreq_free(r);
  if (status != LUA_OK) return lua_error(L);  /* "not enough memory" */
  return lua_gettop(L) - top;
}

static int fsreq_k(lua_State *L, int status, lua_KContext ctx) {
  corio_State *S = (corio_State *)ctx;
  luatask *t = S->current;
  fsreq *r = (fsreq *)lua_touserdata(L, -1);
  (void)status;
  lua_pop(L, 1);
  if (t->core.wake != CORIO_WAKE_NORMAL) {
    corio__list_remove(&r->node);
    forget(r);
    if (r->done) orphan(r);
    else if (r->op == OP_WHOLE)
      uv_cancel((uv_req_t *)&r->work);  /* fails once started */
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
int corio__fs_issued(lua_State *L, corio_State *S, luatask *t, fsreq *r, int err,
                  const char *path, const char *path2) {
  if (err < 0) {
    corio__fsreq_free(r);
    return corio__fs_error(L, err, path, path2);
  }
  return corio__fsreq_wait(L, S, t, r);
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
    forget(r);
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
  corio__open_path(L);
  lua_pushvalue(L, st);
  lua_insert(L, -2);                               /* state, fs state */
  corio__open_file(L);
  corio__open_watch(L);
  lua_newtable(L);
  lua_pushvalue(L, -3);
  lua_pushvalue(L, -3);
  luaL_setfuncs(L, corio__fs_path_funcs, 2);
  lua_pushvalue(L, -3);
  lua_pushvalue(L, -3);
  luaL_setfuncs(L, corio__fs_whole_funcs, 2);
  lua_pushvalue(L, -3);
  lua_pushvalue(L, -3);
  luaL_setfuncs(L, corio__fs_watch_funcs, 2);
  lua_replace(L, -3);
  lua_pop(L, 1);
}
