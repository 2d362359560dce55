/*
** process_spawn.c: corio.exec(argv [, opts]) -> Process: reading the
** arguments and options, building argv and the environment, the child's
** standard fds (a pipe becomes a Stream, net/procpipe.c), and the spawn
** (uv_spawn; a detached child through process_detach.c).
**
** Everything that can raise (a bad option) is read before anything is
** allocated outside Lua's memory; argv and environment strings are
** anchored in a scratch table while the spawn uses them.
*/
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include "process.h"

extern char **environ;

enum { IO_INHERIT, IO_NULL, IO_PIPE, IO_FD };

typedef struct stdio_opt {
  int kind;              /* IO_* */
  int fd;                /* IO_INHERIT, IO_FD: the fd given to the child */
  uv_pipe_t *pipe;       /* IO_PIPE: the Stream to be */
} stdio_opt;

/* the options table at 2: 2, or 0 when none (raises for a non-table) */
static int opt_table(lua_State *L) {
  if (lua_isnoneornil(L, 2)) return 0;
  luaL_checktype(L, 2, LUA_TTABLE);
  return 2;
}

static int opt_bool(lua_State *L, int opts, const char *name) {
  int on;
  lua_getfield(L, opts, name);
  on = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return on;
}

static const char *const stdio_names[] = { "stdin", "stdout", "stderr" };

/* the option stdin, stdout or stderr (i = 0, 1, 2) */
static void read_stdio(lua_State *L, int opts, int i, stdio_opt *o) {
  int t = opts ? lua_getfield(L, opts, stdio_names[i]) : (lua_pushnil(L), LUA_TNIL);
  o->kind = IO_INHERIT;
  o->fd = i;
  o->pipe = NULL;
  if (t == LUA_TNIL) { /* inherit */ }
  else if (t == LUA_TSTRING) {
    const char *s = lua_tostring(L, -1);
    if (strcmp(s, "pipe") == 0) o->kind = IO_PIPE;
    else if (strcmp(s, "null") == 0) o->kind = IO_NULL;
    else if (strcmp(s, "inherit") != 0)
      luaL_error(L, "corio.exec: option '%s': \"pipe\", \"inherit\", \"null\", "
                 "a Stream or a file expected, got '%s'", stdio_names[i], s);
  }
  else if (t == LUA_TNUMBER && lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 0 &&
           lua_tointeger(L, -1) <= 0x7fffffff) {
    o->kind = IO_FD;
    o->fd = (int)lua_tointeger(L, -1);
  }
  else {
    int fd = corio__stream_fileno(L, -1);
    if (fd == -2)
      luaL_error(L, "corio.exec: option '%s': the stream is closed", stdio_names[i]);
    if (fd == -1) {  /* an object with a fileno() method (a File) */
      int ok = t == LUA_TTABLE;
      if (t == LUA_TUSERDATA && luaL_getmetafield(L, -1, "__index") != LUA_TNIL) {
        lua_pop(L, 1);
        ok = 1;
      }
      if (ok) lua_getfield(L, -1, "fileno");
      else lua_pushnil(L);
      if (!lua_isfunction(L, -1))
        luaL_error(L, "corio.exec: option '%s': \"pipe\", \"inherit\", \"null\", "
                   "a Stream or a file expected, got %s", stdio_names[i],
                   luaL_typename(L, -2));
      lua_pushvalue(L, -2);
      lua_call(L, 1, 2);
      if (!lua_isinteger(L, -2) || lua_tointeger(L, -2) < 0)
        luaL_error(L, "corio.exec: option '%s': its fileno() gave no fd (%s)",
                   stdio_names[i], lua_isstring(L, -1) ? lua_tostring(L, -1) : "closed?");
      fd = (int)lua_tointeger(L, -2);
      lua_pop(L, 2);
    }
    o->kind = IO_FD;
    o->fd = fd;
  }
  lua_pop(L, 1);
}

/* argv at index 1 -> a NULL-ended array of its strings, anchored in the
   scratch table at idx; the array lives in a userdata left on the stack */
static char **read_argv(lua_State *L, int scratch) {
  lua_Integer n, i;
  char **argv;
  luaL_checktype(L, 1, LUA_TTABLE);
  n = luaL_len(L, 1);
  luaL_argcheck(L, n >= 1, 1, "a non-empty list of strings expected");
  luaL_argcheck(L, n < 65536, 1, "too many arguments");
  argv = (char **)lua_newuserdatauv(L, (size_t)(n + 1) * sizeof *argv, 0);
  for (i = 1; i <= n; i++) {
    size_t len;
    const char *s;
    int t = lua_geti(L, 1, i);
    if (t != LUA_TSTRING && t != LUA_TNUMBER)
      luaL_error(L, "bad argument #1 to 'corio.exec' (item %d: a string expected, got %s)",
                 (int)i, luaL_typename(L, -1));
    s = lua_tolstring(L, -1, &len);
    if (strlen(s) != len)
      luaL_error(L, "bad argument #1 to 'corio.exec' (item %d contains a zero byte)", (int)i);
    argv[i - 1] = (char *)s;
    lua_rawseti(L, scratch, i);  /* anchored */
  }
  argv[n] = NULL;
  return argv;
}

/* opts.env merged over ours (opts.clear_env: over nothing): a NULL-ended
   array of "NAME=value" strings, anchored in the scratch table; NULL when
   neither option is given (the child inherits ours) */
static char **read_env(lua_State *L, int opts, int scratch) {
  int env, clear, n = 0, i;
  char **out;
  size_t cap = 1;
  clear = opts && opt_bool(L, opts, "clear_env");
  if (!opts || lua_getfield(L, opts, "env") == LUA_TNIL) {
    if (opts) lua_pop(L, 1);
    if (!clear) return NULL;
    lua_newtable(L);
  }
  else if (!lua_istable(L, -1))
    luaL_error(L, "corio.exec: option 'env': a table expected, got %s", luaL_typename(L, -1));
  env = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, env)) {
    int vt = lua_type(L, -1);
    if (lua_type(L, -2) != LUA_TSTRING || strchr(lua_tostring(L, -2), '=') != NULL ||
        (vt != LUA_TSTRING && vt != LUA_TNUMBER && !(vt == LUA_TBOOLEAN && !lua_toboolean(L, -1))))
      luaL_error(L, "corio.exec: option 'env': names (without '=') to strings or false expected");
    lua_pop(L, 1);
    cap++;
  }
  if (!clear)
    for (i = 0; environ[i] != NULL; i++) cap++;
  out = (char **)lua_newuserdatauv(L, cap * sizeof *out, 0);
  lua_setfield(L, scratch, "envp");  /* anchored */
  if (!clear)
    for (i = 0; environ[i] != NULL; i++) {  /* ours, but what env names */
      const char *eq = strchr(environ[i], '=');
      if (eq == NULL) continue;
      lua_pushlstring(L, environ[i], (size_t)(eq - environ[i]));
      if (lua_rawget(L, env) == LUA_TNIL) out[n++] = environ[i];
      lua_pop(L, 1);
    }
  lua_pushnil(L);
  while (lua_next(L, env)) {
    if (lua_toboolean(L, -1)) {
      lua_pushfstring(L, "%s=%s", lua_tostring(L, -2), lua_tostring(L, -1));
      out[n++] = (char *)lua_tostring(L, -1);
      lua_rawseti(L, scratch, -n);  /* anchored */
    }
    lua_pop(L, 1);
  }
  out[n] = NULL;
  lua_pop(L, 1);
  return out;
}

/* kill_after, in ns (default 2 s) */
static uint64_t read_kill_after(lua_State *L, int opts) {
  lua_Number secs;
  if (!opts || lua_getfield(L, opts, "kill_after") == LUA_TNIL) {
    if (opts) lua_pop(L, 1);
    return KILL_AFTER_NS;
  }
  secs = lua_tonumber(L, -1);
  if (!lua_isnumber(L, -1) || !(secs >= 0) || secs > 1e9)
    luaL_error(L, "corio.exec: option 'kill_after': a number of seconds (>= 0) expected");
  lua_pop(L, 1);
  return (uint64_t)(secs * 1e9);
}

static void discard_pipes(stdio_opt io[3]) {
  int i;
  for (i = 0; i < 3; i++)
    if (io[i].pipe != NULL) corio__pipe_discard(io[i].pipe);
}

/* (protected) the open pipes of io (light userdata at 1) as Streams, in
   the Process at 2; a pipe a Stream took leaves io */
static int push_pipes(lua_State *L) {
  stdio_opt *io = (stdio_opt *)lua_touserdata(L, 1);
  int i;
  for (i = 0; i < 3; i++) {
    if (io[i].pipe == NULL) continue;
    corio__pipe_push(L, io[i].pipe);
    io[i].pipe = NULL;
    lua_setiuservalue(L, 2, i + 1);
  }
  return 0;
}

static int spawn_error(lua_State *L, int err) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", uv_err_name(err), uv_strerror(err));
  lua_pushstring(L, uv_err_name(err));
  return 3;
}

/* corio.exec(argv [, opts]) -> Process, or nil, msg, code ("ENOENT" for
   a missing program). argv: {program, args...} (program looked up in
   PATH unless it holds a '/'). opts: cwd, env (merged over ours; false
   removes a name), clear_env, stdin/stdout/stderr ("inherit" by default,
   "pipe", "null", a Stream, a File or an fd), kill_after (seconds, 2),
   detach (a new session; not waited for, not terminated at the run's
   end; no pipes). */
static int l_exec(lua_State *L) {
  corio_State *S = corio__state(L);
  int opts = opt_table(L), scratch, i, err, detach;
  stdio_opt io[3];
  uv_stdio_container_t cont[3];
  uv_process_options_t po;
  const char *cwd = NULL;
  uint64_t kill_after;
  char **argv, **env;
  proc **box;
  proc *p;
  if (!S->running)
    return luaL_error(L, "corio.exec: no running loop (start one with corio.run)");
  lua_settop(L, 2);
  lua_newtable(L);                                     /* 3: scratch */
  scratch = 3;
  argv = read_argv(L, scratch);                        /* 4 */
  env = read_env(L, opts, scratch);
  if (opts && lua_getfield(L, opts, "cwd") != LUA_TNIL) {
    if (lua_type(L, -1) != LUA_TSTRING)
      return luaL_error(L, "corio.exec: option 'cwd': a string expected, got %s",
                        luaL_typename(L, -1));
    cwd = lua_tostring(L, -1);
    lua_setfield(L, scratch, "cwd");                   /* anchored */
  }
  else if (opts) lua_pop(L, 1);
  detach = opts && opt_bool(L, opts, "detach");
  for (i = 0; i < 3; i++) {
    read_stdio(L, opts, i, &io[i]);
    if (detach && io[i].kind == IO_PIPE)
      return luaL_error(L, "corio.exec: option '%s': a detached process takes no pipes",
                        stdio_names[i]);
  }
  kill_after = read_kill_after(L, opts);
  box = (proc **)lua_newuserdatauv(L, sizeof *box, 3); /* 5: the Process */
  *box = NULL;
  luaL_setmetatable(L, PROCESS_MT);
  p = corio__proc_new(S, L);
  if (p == NULL) return luaL_error(L, "corio.exec: out of memory");
  *box = p;
  p->kill_after = kill_after;
  if (detach) {
    int fds[3];
    for (i = 0; i < 3; i++) fds[i] = io[i].kind == IO_NULL ? -1 : io[i].fd;
    err = corio__spawn_detached(argv, env, cwd, fds);
    if (err < 0) return spawn_error(L, err);
    p->pid = err;
    p->detached = 1;
    return 1;
  }
  for (i = 0; i < 3; i++) {
    if (io[i].kind == IO_PIPE) {
      io[i].pipe = corio__pipe_alloc(S);
      if (io[i].pipe == NULL) {
        discard_pipes(io);
        return luaL_error(L, "corio.exec: out of memory");
      }
      cont[i].flags = (uv_stdio_flags)(UV_CREATE_PIPE |
                      (i == 0 ? UV_READABLE_PIPE : UV_WRITABLE_PIPE));
      cont[i].data.stream = (uv_stream_t *)io[i].pipe;
    }
    else if (io[i].kind == IO_NULL) cont[i].flags = UV_IGNORE;
    else {
      cont[i].flags = UV_INHERIT_FD;
      cont[i].data.fd = io[i].fd;
    }
  }
  memset(&po, 0, sizeof po);
  po.exit_cb = corio__proc_exit_cb();
  po.file = argv[0];
  po.args = argv;
  po.env = env;
  po.cwd = cwd;
  po.stdio_count = 3;
  po.stdio = cont;
  err = uv_spawn(S->loop.uv, &p->handle, &po);
  if (err) {  /* libuv reaped a child whose exec failed; the handle closes */
    discard_pipes(io);
    *box = NULL;
    p->gone = 1;
    p->closed = 0;
    uv_close((uv_handle_t *)&p->handle, corio__proc_on_closed);
    return spawn_error(L, err);
  }
  corio__proc_started(p);
  /* the pipes become Streams (Lua allocations): refused, the pipes no
     Stream took are closed, the child nobody will get is terminated */
  lua_settop(L, 5);
  if (io[0].pipe == NULL && io[1].pipe == NULL && io[2].pipe == NULL) return 1;
  lua_pushcfunction(L, push_pipes);
  lua_pushlightuserdata(L, io);
  lua_pushvalue(L, 5);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
    discard_pipes(io);
    corio__proc_terminate(p);
    return lua_error(L);
  }
  return 1;
}

const luaL_Reg corio__process_funcs[] = {
  {"exec", l_exec},
  {NULL, NULL}
};
