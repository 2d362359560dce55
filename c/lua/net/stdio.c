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
**
** What a stream read ahead and nobody read is not lost when it closes:
** a file's offset is moved back over it, other bytes are kept for the
** next stream on the fd. And what is queued on a standard stream when
** the process exits (os.exit in a task) is written at exit, blocking, as
** C's stdio flushes its buffers.
*/
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
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
  unsigned int wn;       /* the queued writes the one under way takes */
  writereq *whead, *wtail;  /* queued writes (chained by req.data), from
                               the one under way */
  size_t woff;           /* bytes of the head written so far */
  char rbuf[NET_CHUNK];  /* a read lands here, then in the stream's buffer */
} netfile;

/* ------------------------------------------------------------ the fds */

/* fds 0-2 are the process's, so this state is too: the standard stream
   open on each (for the exit flush), and the bytes read ahead from each
   by a stream that closed, for the next one */
static netstream *std_open[3];
static struct { char *p; size_t n; } std_left[3];
static int exit_hooked;

/* bytes st read from its fd and nobody took: a file's offset goes back
   over them (so whatever reads the fd next finds them), others wait for
   the next stream on the fd */
static void give_back(netstream *st, const char *p, size_t n) {
  int fd = st->stdfd;
  char *nb;
  if (st->type == NS_FILE && lseek(fd, -(off_t)n, SEEK_CUR) != (off_t)-1) return;
  nb = (char *)realloc(std_left[fd].p, std_left[fd].n + n);
  if (nb == NULL) return;
  memcpy(nb + std_left[fd].n, p, n);
  std_left[fd].p = nb;
  std_left[fd].n += n;
}

void corio__stdio_closed(netstream *st) {
  if (std_open[st->stdfd] == st) std_open[st->stdfd] = NULL;
  if (st->rlen > 0 && st->buf != NULL) {
    give_back(st, st->buf + st->rpos, st->rlen);
    st->rpos = st->rlen = 0;
  }
}

/* a new stream on fd starts with what the last one read ahead */
static void take_left(netstream *st, int fd) {
  if (std_left[fd].n == 0) return;
  st->buf = std_left[fd].p;
  st->cap = st->rlen = std_left[fd].n;
  st->rpos = 0;
  std_left[fd].p = NULL;
  std_left[fd].n = 0;
}

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      struct pollfd pfd;
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
      pfd.fd = fd;  /* a shared description left non-blocking: wait */
      pfd.events = POLLOUT;
      pfd.revents = 0;
      if (poll(&pfd, 1, -1) < 0 && errno != EINTR) return -1;
      continue;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* A libuv stream: libuv has not written the last write_queue_size bytes
   of the requests (it writes them in order, and one leaves the list in
   its callback, after all its bytes went), then what was gathered. */
static void flush_stream(netstream *st) {
  uv_os_fd_t fd;
  corio_list_t *n;
  size_t total = 0, skip, q;
  int fl;
  if (st->fdflags >= 0) fcntl(st->stdfd, F_SETFL, st->fdflags);  /* as it was */
  if (uv_fileno(&st->handle, &fd) != 0) return;
  fl = fcntl(fd, F_GETFL);
  if (fd != st->stdfd && fl != -1) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
  for (n = st->wpending.next; n != &st->wpending; n = n->next)
    total += corio__container_of(n, writereq, node)->len;
  q = uv_stream_get_write_queue_size(&st->stream);
  skip = total > q ? total - q : 0;
  for (n = st->wpending.next; n != &st->wpending; n = n->next) {
    writereq *w = corio__container_of(n, writereq, node);
    if (skip >= w->len) {
      skip -= w->len;
      continue;
    }
    if (write_all(fd, w->data + skip, w->len - skip) != 0) return;
    skip = 0;
  }
  if (st->olen > 0) write_all(fd, st->obuf, st->olen);
}

/* A file: the queued writes but those of the write under way, which
   the thread pool finishes. */
static void flush_file(netstream *st) {
  netfile *f = st->file;
  writereq *w;
  size_t off = f->woff;
  unsigned int skip = f->wbusy ? f->wn : 0;
  for (w = f->whead; w != NULL; w = (writereq *)w->req.data) {
    if (skip > 0) skip--;
    else if (write_all(f->fd, w->data + off, w->len - off) != 0) return;
    off = 0;
  }
}

/* at exit (os.exit in a task): what is queued on the standard streams */
static void flush_at_exit(void) {
  int fd;
  for (fd = 0; fd <= 2; fd++) {
    netstream *st = std_open[fd];
    if (st == NULL || st->h.state == NET_CLOSED) continue;
    if (st->type == NS_FILE) flush_file(st);
    else flush_stream(st);
  }
}

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
    if (n > 0) give_back(st, f->rbuf, (size_t)n);  /* read after the close */
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
  f->wn = n;
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
  /* a cancellation that came once the wait was over (the task ready to
     resume): the wait was handed nothing, so it raises here, as sleep does */
  corio__checkpoint(L, S, stdnames[old->stdfd]);
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
    take_left(st, fd);
    if (std_open[fd] == NULL) std_open[fd] = st;
    if (!exit_hooked) {
      exit_hooked = 1;
      atexit(flush_at_exit);
    }
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
