/*
** procpipe.c: the network side of processes (c/lua/os/): a Stream on a
** pipe that uv_spawn creates for a child's standard fd, and the fd of a
** Stream given to a child as one of its own.
*/
#include "net.h"

/* A pipe stream not yet open: uv_spawn opens it (UV_CREATE_PIPE). NULL
   when out of memory. */
uv_pipe_t *corio__pipe_alloc(corio_State *S) {
  netstream *st = corio__stream_alloc(S, NS_PIPE, NET_LIMIT, NET_HWM);
  return st != NULL ? &st->pipe : NULL;
}

/* the spawn opened it: push it as a Stream */
void corio__pipe_push(lua_State *L, uv_pipe_t *p) {
  corio__stream_push(L, corio__container_of(p, netstream, pipe));
}

/* the spawn failed: close and free it */
void corio__pipe_discard(uv_pipe_t *p) {
  corio__stream_discard(corio__container_of(p, netstream, pipe));
}

/* the fd of the open Stream at idx; -1 when idx is no Stream, -2 when
   it is closed */
int corio__stream_fileno(lua_State *L, int idx) {
  netstream **box = (netstream **)luaL_testudata(L, idx, STREAM_MT);
  netstream *st;
  uv_os_fd_t fd;
  if (box == NULL) return -1;
  st = *box;
  if (st == NULL || st->h.state != NET_OPEN) return -2;
  if (st->type == NS_FILE) return st->stdfd;  /* a standard stream on a file */
  if (uv_fileno(&st->handle, &fd) != 0) return -2;
  return fd;
}

/* close the Stream at idx, if it is one and open: what is queued is
   written first, as stream:close() does, without waiting for it */
void corio__stream_close_at(lua_State *L, int idx) {
  netstream **box = (netstream **)luaL_testudata(L, idx, STREAM_MT);
  if (box != NULL && *box != NULL && (*box)->h.state == NET_OPEN)
    corio__stream_close_soon(*box);
}
