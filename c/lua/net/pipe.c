/*
** pipe.c: Unix domain sockets: corio.connect_unix and corio.serve_unix.
** They make the same Stream and Server types as TCP (stream.c, server.c);
** the connect is tcp.c's op with one connect and no lookup.
**
** An existing file at a server's path is an error (EADDRINUSE): a stale
** socket file is the caller's to remove. The server removes its socket
** file when it closes (libuv unlinks the path it bound).
*/
#include <string.h>
#include <sys/un.h>
#include "net.h"

#define SUN_PATH_MAX sizeof(((struct sockaddr_un *)0)->sun_path)

static const char *check_path(lua_State *L, int idx, size_t *len) {
  const char *path = luaL_checklstring(L, idx, len);
  luaL_argcheck(L, *len > 0, idx, "empty path");
  luaL_argcheck(L, strlen(path) == *len, idx, "path contains a zero byte");
  return path;
}

/* corio.connect_unix(path [, opts]) (suspends) -> Stream, or nil, msg,
   code. opts: timeout, limit, high_water (as corio.connect). */
static int l_connect_unix(lua_State *L) {
  corio_State *S = corio__state(L);
  size_t len;
  const char *path = check_path(L, 1, &len);
  connop *op = corio__connect_begin(L, S, "corio.connect_unix", 2);
  op->nodelay = 0;
  if (len >= SUN_PATH_MAX) return corio__net_error(L, UV_ENAMETOOLONG);
  op->st = corio__stream_alloc(S, NS_UNIX, op->limit, op->hwm);
  if (op->st == NULL) return corio__net_error(L, UV_ENOMEM);
  uv_pipe_connect(&op->req, &op->st->pipe, path, corio__connect_cb);
  /* even a failure comes through the callback */
  op->r.busy = 2;
  return corio__connect_wait(L, S, op);
}

/* corio.serve_unix(path, handler [, opts]) -> Server, or nil, msg, code:
   handler(stream) runs in a task of its own for each connection. opts:
   backlog, limit, high_water (as corio.serve). */
static int l_serve_unix(lua_State *L) {
  corio_State *S = corio__state(L);
  size_t len;
  const char *path = check_path(L, 1, &len);
  struct sockaddr_un sun;
  serveopts o;
  netserver *srv;
  int err;
  corio__serve_prepare(L, "corio.serve_unix", 2, 3, &o);       /* 4 */
  if (len >= SUN_PATH_MAX) return corio__net_error(L, UV_ENAMETOOLONG);
  memset(&sun, 0, sizeof sun);
  sun.sun_family = AF_UNIX;
  memcpy(sun.sun_path, path, len);
  srv = corio__server_listen(S, NS_UNIX, (const struct sockaddr *)&sun,
                             sizeof sun, &o, &err);
  if (srv == NULL) return corio__net_error(L, err);
  return corio__server_start(L, srv);
}

const luaL_Reg corio__pipe_funcs[] = {
  {"connect_unix", l_connect_unix},
  {"serve_unix", l_serve_unix},
  {"stdin", corio__l_stdin},
  {"stdout", corio__l_stdout},
  {"stderr", corio__l_stderr},
  {NULL, NULL}
};

/* stack: state userdata at -1 */
void corio__open_pipe(lua_State *L) {
  corio__open_stdio(L);
}
