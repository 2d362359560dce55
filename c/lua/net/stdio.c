/*
** stdio.c: corio.stdin(), corio.stdout(), corio.stderr(): a Stream on fd
** 0, 1 or 2, whatever the fd is (libuv's uv_guess_handle): a pipe, a
** terminal, a socket, or a regular file or device. And the reads and
** writes of a stream on a file (NS_FILE), which epoll cannot watch: they
** go through uv_fs_read / uv_fs_write at the fd's current offset, one
** read and one write under way at a time (the write takes what is
** queued, up to FILE_BUFS requests), writes in order.
**
** The fd and its open file description may be shared with the parent
** shell and other processes, so corio does not leave it non-blocking:
** - a terminal: libuv reopens the device (a description of our own);
** - a pipe: reopened through /proc/self/fd (Linux: a description of our
**   own for the same pipe), else, as a socket is, made non-blocking in
**   place while the stream is open;
** and when the stream closes, the fd's flags are put back as they were.
** fds 0-2 themselves are never closed. One stream per fd at a time: the
** same one while it is open; a new one only once the earlier one is done
** with the fd (flushed, its requests ended, its flags put back), which a
** task waits for (l_std).
*/
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "net.h"

#define STDIO_REGKEY "corio.stdio"  /* fd -> its Stream, while open */

typedef struct netfile {
  uv_fs_t rreq, wreq;
  int fd;
  uint8_t rbusy, wbusy;  /* a read, a write under way */
  writereq *whead, *wtail;  /* queued writes (chained by req.data), from
                               the one under way */
  size_t woff;           /* bytes of the head written so far */
  char rbuf[NET_CHUNK];  /* a read lands here, then in the stream's buffer */
} netfile;

/* ------------------------------------------------------------ files */

static void file_maybe_closed(netstream *st) {
  netfile *f = st->file;
  if (st->h.state == NET_CLOSED && !f->rbusy && !f->wbusy &&
      !uv_is_closing(&st->handle))
    uv_close(&st->handle, corio__stream_on_closed);
}

static void on_file_read(uv_fs_t *req) {
  netstream *st = (netstream *)req->data;
  netfile *f = st->file;
  ssize_t n = req->result;
  uv_fs_req_cleanup(req);
  f->rbusy = 0;
  if (st->h.state == NET_CLOSED) {
    file_maybe_closed(st);
    corio__stream_wake_writers(st, 1);  /* a new stream on the fd waits for this */
    return;
  }
  st->reading = 0;
  corio__stream_got(st, f->rbuf, n);
}

int corio__file_read_start(netstream *st) {
  netfile *f = st->file;
  uv_buf_t b = uv_buf_init(f->rbuf, sizeof f->rbuf);
  int err = uv_fs_read(st->h.S->loop.uv, &f->rreq, f->fd, &b, 1, -1, on_file_read);
  if (err) return err;
  f->rreq.data = st;
  f->rbusy = 1;
  return 0;
}

static void on_file_write(uv_fs_t *req);

#define FILE_BUFS 64  /* queued writes one uv_fs_write takes */

/* write what is queued (from the head, less what is written of it) */
static int write_queue(netstream *st) {
  netfile *f = st->file;
  uv_buf_t bufs[FILE_BUFS];
  unsigned int n = 0;
  size_t off = f->woff;
  writereq *w;
  int err;
  for (w = f->whead; w != NULL && n < FILE_BUFS; w = (writereq *)w->req.data) {
    bufs[n++] = uv_buf_init(w->data + off, (unsigned int)(w->len - off));
    off = 0;
  }
  err = uv_fs_write(st->h.S->loop.uv, &f->wreq, f->fd, bufs, n, -1, on_file_write);
  if (err) return err;
  f->wreq.data = st;
  f->wbusy = 1;
  return 0;
}

/* drop the queue: the bytes it held */
static size_t drop_queue(netfile *f) {
  size_t n = 0;
  writereq *w = f->whead;
  while (w != NULL) {
    writereq *next = (writereq *)w->req.data;
    n += w->len;
    free(w);
    w = next;
  }
  f->whead = f->wtail = NULL;
  f->woff = 0;
  return n;
}

static void on_file_write(uv_fs_t *req) {
  netstream *st = (netstream *)req->data;
  netfile *f = st->file;
  ssize_t n = req->result;
  size_t done = 0;
  int status = 0;
  uv_fs_req_cleanup(req);
  f->wbusy = 0;
  if (n <= 0) status = n < 0 ? (int)n : UV_EIO;
  while (n > 0) {  /* the requests written whole go; a part of one stays */
    writereq *w = f->whead;
    size_t rest = w->len - f->woff;
    if ((size_t)n < rest) {
      f->woff += (size_t)n;
      break;
    }
    n -= (ssize_t)rest;
    done += w->len;
    f->whead = (writereq *)w->req.data;
    f->woff = 0;
    free(w);
  }
  if (f->whead == NULL) f->wtail = NULL;
  else if (status != 0 || st->h.state == NET_CLOSED) done += drop_queue(f);
  else if ((status = write_queue(st)) != 0) done += drop_queue(f);
  corio__stream_written(st, done, status);
  file_maybe_closed(st);
}

int corio__file_write(netstream *st, writereq *w) {
  netfile *f = st->file;
  int err;
  w->req.data = NULL;
  if (f->whead != NULL) {  /* it goes with the next uv_fs_write */
    f->wtail->req.data = w;
    f->wtail = w;
    return 0;
  }
  f->whead = f->wtail = w;
  f->woff = 0;
  if ((err = write_queue(st)) == 0) return 0;
  f->whead = f->wtail = NULL;
  return err;
}

size_t corio__file_unwritten(netstream *st) {
  return st->queued - st->file->woff;
}

/* close_now: a read not begun is cancelled; the queued writes are
   dropped when the one under way ends; the handle closes once no request
   is left */
void corio__file_close(netstream *st) {
  netfile *f = st->file;
  if (f->rbusy) uv_cancel((uv_req_t *)&f->rreq);
  file_maybe_closed(st);
}

/* ------------------------------------------------------------ stdio */

/* a stream on fd (0, 1, 2), or NULL and *err */
static netstream *open_fd(corio_State *S, int fd, int *err) {
  uv_handle_type kind = uv_guess_handle(fd);
  int flags = fcntl(fd, F_GETFL), type;
  netstream *st;
  struct stat sb;
  if (flags == -1) {
    *err = UV_EBADF;
    return NULL;
  }
  switch (kind) {
    case UV_FILE: type = NS_FILE; break;
    case UV_TTY: type = NS_TTY; break;
    case UV_TCP: type = NS_TCP; break;
    case UV_NAMED_PIPE:
      type = fstat(fd, &sb) == 0 && S_ISFIFO(sb.st_mode) ? NS_PIPE : NS_UNIX;
      break;
    default:  /* a UDP socket, or unknown */
      *err = UV_ENOTSUP;
      return NULL;
  }
  st = corio__stream_alloc(S, type, NET_LIMIT, NET_HWM);
  if (st == NULL) {
    *err = UV_ENOMEM;
    return NULL;
  }
  st->stdfd = (int8_t)fd;
  *err = 0;
  if (type == NS_FILE) {
    st->file = (netfile *)calloc(1, sizeof *st->file);
    if (st->file == NULL) *err = UV_ENOMEM;
    else st->file->fd = fd;
  }
  else if (type == NS_TTY) {  /* libuv reopens the terminal */
    *err = uv_tty_init(S->loop.uv, &st->tty, fd, 0);
    if (*err) {  /* no handle to close */
      free(st);
      return NULL;
    }
    corio__stream_attach(st);
    st->fdflags = flags;  /* the reopened one is non-blocking */
  }
  else if (type == NS_TCP) {
    *err = uv_tcp_open(&st->tcp, fd);
    if (*err == 0) st->fdflags = flags;
  }
  else {
    int own = -1;
    if (type == NS_PIPE) {  /* a description of our own, if we can */
      char path[32];
      snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
      own = open(path, (flags & O_ACCMODE) | O_NONBLOCK | O_CLOEXEC);
    }
    if (own >= 0) {
      *err = uv_pipe_open(&st->pipe, own);  /* closed with the handle */
      if (*err) close(own);
    }
    else {
      *err = uv_pipe_open(&st->pipe, fd);
      if (*err == 0) st->fdflags = flags;
    }
  }
  if (*err) {
    fcntl(fd, F_SETFL, flags);
    corio__stream_discard(st);
    return NULL;
  }
  return st;
}

static const char *const stdnames[] = { "corio.stdin", "corio.stdout", "corio.stderr" };

/* The earlier stream on a standard fd, once closed, still uses it while
   a file request of its own is under way, or until its close callback
   has put the shared description's flags back. */
static int done_with_fd(netstream *st) {
  if (st->h.state != NET_CLOSED) return 0;
  if (st->h.closed) return 1;
  if (st->type == NS_FILE) return !st->file->rbusy && !st->file->wbusy;
  return st->fdflags < 0;  /* a description of its own: closed already */
}

static int l_std(lua_State *L, int fd);

static int std_k(lua_State *L, int status, lua_KContext ctx) {
  corio_State *S = (corio_State *)ctx;
  netstream *old = *(netstream **)lua_touserdata(L, 2);
  (void)status;
  if (lua_toboolean(L, 3)) corio__stream_wait_end(old);
  corio__wake_check(L, S, S->current);
  return l_std(L, old->stdfd);
}

/* Until the earlier stream on the fd (at index 3, open no more) is done
   with it, a task waits: what the new stream writes then follows every
   byte of the old one, and finds the fd as the old one found it. A
   closing stream wakes its waiters (empty) once flushed and closed, a
   closed file once its last request ended; after a close that only waits
   for its callback, the next batch is late enough (libuv runs close
   callbacks before it). */
static int wait_done(lua_State *L, corio_State *S, netstream *old, int fd) {
  luatask *t = S->current;
  int on_empty = old->h.state != NET_CLOSED || old->type == NS_FILE;
  if (t == NULL || !lua_isyieldable(L))  /* cannot wait here */
    return corio__net_error(L, UV_EBUSY);
  t = corio__checkpoint(L, S, stdnames[fd]);
  lua_replace(L, 2);                                   /* 2: the old Stream */
  lua_pushboolean(L, on_empty);                        /* 3 */
  if (on_empty) {
    corio__stream_wait_begin(old, t);
    corio_task_await(&S->loop, &t->core, &old->empty);
  }
  else {
    t->core.wake = CORIO_WAKE_NORMAL;
    if (corio_task_schedule(&S->loop, &t->core) != 0)
      return luaL_error(L, "%s: out of memory", stdnames[fd]);
  }
  t->what = W_STREAM;
  return corio__suspend(L, S, std_k);
}

static int l_std(lua_State *L, int fd) {
  corio_State *S = corio__state(L);
  netstream *st = NULL;
  size_t limit, hwm;
  int err;
  if (!lua_isnoneornil(L, 1)) luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lua_getfield(L, LUA_REGISTRYINDEX, STDIO_REGKEY);   /* 2: fd -> Stream */
  if (lua_rawgeti(L, 2, fd) == LUA_TUSERDATA) {        /* 3 */
    st = *(netstream **)lua_touserdata(L, 3);
    if (st != NULL && st->h.state != NET_OPEN) {
      if (!done_with_fd(st)) return wait_done(L, S, st, fd);
      st = NULL;
    }
  }
  limit = corio__opt_size(L, 1, "limit", st != NULL ? st->limit : NET_LIMIT);
  hwm = corio__opt_size(L, 1, "high_water", st != NULL ? st->hwm : NET_HWM);
  if (st == NULL) {
    lua_pop(L, 1);
    if (!S->running)
      return luaL_error(L, "%s: no running loop (start one with corio.run)", stdnames[fd]);
    if (fd == 1) fflush(stdout);  /* what print wrote comes first */
    else if (fd == 2) fflush(stderr);
    st = open_fd(S, fd, &err);
    if (st == NULL) return corio__net_error(L, err);
    corio__stream_push(L, st);                         /* 3 */
    lua_pushvalue(L, 3);
    lua_rawseti(L, 2, fd);
  }
  st->limit = limit;
  st->hwm = hwm;
  return 1;
}

/* corio.stdin([opts]) -> Stream on fd 0 (the same one while it is open),
   or nil, msg, code; corio.stdout(), corio.stderr() likewise. opts:
   limit, high_water (also changed on a stream already open). While the
   earlier stream on the fd is closing, waits until it is done with the
   fd (nil, "EBUSY..." where it cannot wait). */
int corio__l_stdin(lua_State *L) {
  return l_std(L, 0);
}

int corio__l_stdout(lua_State *L) {
  return l_std(L, 1);
}

int corio__l_stderr(lua_State *L) {
  return l_std(L, 2);
}

/* the fd -> Stream table, in the registry (at module open) */
void corio__open_stdio(lua_State *L) {
  lua_newtable(L);
  lua_setfield(L, LUA_REGISTRYINDEX, STDIO_REGKEY);
}
