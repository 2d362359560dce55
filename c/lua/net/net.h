/*
** net.h: what stream.c and tcp.c share (not a header for the rest of
** the binding: those see only the functions in binding.h).
**
** A Stream or Server userdata holds a pointer to a malloc'd struct that
** embeds the libuv handle. libuv may call back after the userdata is
** garbage (a close under way, a write finishing), so the struct lives
** until both the handle's close callback has run and the userdata is
** gone: whichever comes second frees it.
**
** Handles do not keep the loop alive by themselves: a stream is ref'd
** only while a task waits on it (so deadlock detection still works when
** nobody reads), a listening server always (it can spawn tasks). Every
** open handle is in the state's list, and the run's shutdown closes what
** is left (its shutdown hook, corio__net_iomod).
*/
#ifndef CORIO_NET_H
#define CORIO_NET_H

#include "binding.h"
#include "corio-internal.h"  /* container_of, the list helpers */


#define STREAM_MT "corio.Stream"
#define SERVER_MT "corio.Server"
#define NET_REGKEY "corio.net"

#define NET_CHUNK  65536   /* one read; and the default read() size */
#define NET_LIMIT  65536   /* default read_line/read_until limit */
#define NET_HWM    65536   /* default write high-water mark */

enum { NET_OPEN, NET_CLOSING, NET_CLOSED };  /* CLOSING: flushing, then close */
enum { NET_STREAM, NET_SERVER, NET_UDP };

/* the head of every stream and server */
typedef struct nethandle {
  corio_list_t node;     /* in the state's list of open handles */
  corio_State *S;
  uint8_t kind;          /* NET_STREAM, NET_SERVER */
  uint8_t state;         /* NET_OPEN... */
  uint8_t gone;          /* the userdata was collected */
  uint8_t closed;        /* the close callback has run */
} nethandle;

/* what a stream or server is on (the libuv handle in its union) */
enum {
  NS_TCP,    /* uv_tcp_t: corio.connect, corio.serve, a TCP standard stream */
  NS_UNIX,   /* uv_pipe_t: a Unix domain socket */
  NS_PIPE,   /* uv_pipe_t: a pipe (FIFO), standard streams only */
  NS_TTY,    /* uv_tty_t: a terminal, standard streams only */
  NS_FILE    /* a regular file or device: uv_fs_read/uv_fs_write (stdio.c) */
};

struct netserver;
struct netfile;
struct netlayer;

typedef struct netstream {
  nethandle h;
  union {                /* by type: */
    uv_handle_t handle;
    uv_stream_t stream;  /* every type but NS_FILE */
    uv_tcp_t tcp;        /* NS_TCP */
    uv_pipe_t pipe;      /* NS_UNIX, NS_PIPE */
    uv_tty_t tty;        /* NS_TTY */
    uv_timer_t timer;    /* NS_FILE: never started; closing it gives the
                            close callback */
  };
  uint8_t type;          /* NS_TCP... */
  int8_t stdfd;          /* 0, 1, 2 for a standard stream; else -1 */
  int fdflags;           /* a shared standard fd: its flags to restore, or -1 */
  struct netfile *file;  /* NS_FILE: its requests and queue (stdio.c) */
  struct netlayer *layer;  /* a transform under the bytes (TLS), or NULL */
  /* reading: buffered bytes are buf[rpos .. rpos+rlen) */
  char *buf;
  size_t cap, rpos, rlen;
  size_t want;           /* what the waiting read needs buffered (backpressure) */
  size_t scanned;        /* bytes a line/separator search has looked at */
  size_t limit;
  luatask *reader;       /* the task reading, or NULL */
  int rerr;              /* UV_EOF or the read error, once reading ended */
  uint8_t reading;       /* uv_read_start is on */
  uint8_t rkind;         /* what the reader does (stream.c) */
  uint8_t keep;          /* read_line/read_until: keep the separator */
  uint8_t shut;          /* shutdown() was called */
  uint8_t dropped;       /* closed with bytes still queued (abort) */
  uint16_t nwait;        /* tasks waiting on it: ref'd while > 0 */
  /* writing */
  size_t queued, hwm;    /* bytes in uv_write requests; high-water mark */
  size_t lastq;          /* the run's shutdown: libuv's write queue at the last look */
  int werr;              /* the first write error */
  char *obuf;            /* small writes gathered in this batch (stream.c) */
  size_t olen, ocap;
  corio_list_t corked;   /* in S->corked while olen > 0 */
  corio_list_t wpending; /* a standard stream's uv_write requests, in
                            order (the exit flush, stdio.c) */
  corio_future_t low;    /* wakes writers when queued <= hwm / 2 */
  corio_future_t empty;  /* wakes drain and close when queued == 0 */
  uv_shutdown_t shutreq;
  /* a server's connection: the handler task runs with it */
  struct netserver *srv;
  luatask *handler;
  corio_waiter_t handler_done;
  corio_list_t conn;     /* in srv->conns */
} netstream;

typedef struct netserver {
  nethandle h;
  union {                /* the listener, by type: */
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;        /* NS_TCP */
    uv_pipe_t pipe;      /* NS_UNIX */
  };
  uint8_t type;          /* NS_TCP, NS_UNIX */
  uv_timer_t backoff;    /* EMFILE: listen again after a pause */
  struct sockaddr_storage addr;  /* where it listens (NS_UNIX: a sockaddr_un) */
  corio_list_t conns;    /* streams whose handler task runs */
  size_t nconns;
  corio_future_t done;   /* closed and every handler finished */
  size_t limit, hwm;     /* for the accepted streams */
  int backlog;
  uint8_t nodelay;       /* TCP_NODELAY on the accepted streams */
  uint8_t reuse_port;    /* SO_REUSEPORT on the listener */
  uint8_t timer_closed;  /* the backoff timer's close callback ran */
  uint8_t paused;        /* the listener is closed until the backoff fires */
  uint8_t logged;        /* EMFILE was reported once */
} netserver;

/* stream.c */
netstream *corio__stream_alloc(corio_State *S, int type, size_t limit, size_t hwm);
void corio__stream_attach(netstream *st);  /* NS_TTY: once the handle is set up */
void corio__stream_push(lua_State *L, netstream *st);  /* box it, register */
void corio__stream_discard(netstream *st);  /* close one never boxed */
void corio__stream_close_soon(netstream *st);  /* flush, then close */
void corio__stream_grace(netstream *st, int force);  /* the run's shutdown (net.c) */
void corio__net_track(corio_State *S, nethandle *h);
int corio__net_error(lua_State *L, int err);  /* nil, "ENAME: msg", "ENAME" */
int corio__push_sockaddr(lua_State *L, const struct sockaddr *sa);
int corio__net_resolve(uv_loop_t *loop, const char *host, int port,
                       int family, int socktype, struct sockaddr_storage *out);
void corio__net_anchor(lua_State *L, void *key, int idx);  /* idx: value, or 0 to drop */
void corio__net_push_anchor(lua_State *L, void *key);
size_t corio__opt_size(lua_State *L, int opts, const char *name, size_t dflt);
/* the option `name` as a duration in seconds, dflt when absent: raises
   for a non-number, NaN, a negative one (zero too unless zero_ok); past
   NET_FOREVER (infinity) -1, never. A value it returns times 1e9 fits
   the loop's clock, so no float-to-integer cast overflows. */
#define NET_FOREVER 1e9
lua_Number corio__opt_seconds(lua_State *L, int opts, const char *name,
                              lua_Number dflt, int zero_ok);
const char *corio__check_host(lua_State *L, int idx);  /* no zero byte */

/* A libuv request owned by a Lua userdata (a connect, a lookup, a UDP
   send). libuv may call back after the userdata is garbage (the waiting
   task left), so the request lives until both its callback has run and
   the userdata is gone: whichever comes second frees it. Every such
   request's struct begins with a netreq. */
typedef struct netreq netreq;
struct netreq {
  void (*release)(netreq *r);  /* frees it and what it holds */
  uint8_t busy;          /* libuv holds it: a callback is to come (its
                            owner may say in it which request) */
  uint8_t gone;          /* no userdata holds it any more */
};

/* tcp.c: a connect under way (corio.connect, corio.connect_unix). For
   connect_unix r.busy says which request libuv holds: 2 the connect, 0
   none. corio.connect races its addresses (Happy Eyeballs, tcp.c): r.busy
   is set while any callback is to come (`pending` counts them). */
struct attempt;
typedef struct connop {
  netreq r;
  uv_getaddrinfo_t gai;
  uv_connect_t req;      /* connect_unix's */
  corio_State *S;
  netstream *st;         /* the stream being connected (connect_unix), or
                            the one connected */
  luatask *task;         /* the waiting task; NULL once it left */
  size_t limit, hwm;
  lua_Number timeout;    /* seconds, or 0 */
  int err;
  uint8_t done;
  uint8_t nodelay;
  /* corio.connect */
  uint8_t tcp;           /* this is one */
  uint8_t looking;       /* the lookup is under way */
  uint8_t timer_on;      /* the timer is initialised and not closing */
  struct attempt *att;   /* one per address, in the order they are tried */
  int natt, next;        /* how many; the next to start */
  int active;            /* attempts under way */
  int pending;           /* callbacks to come: lookup, connects, timer close */
  lua_Number delay;      /* seconds before the next address starts while
                            the last has not connected; < 0: only when it
                            fails */
  uv_timer_t timer;
} connop;
connop *corio__connect_begin(lua_State *L, corio_State *S, const char *fname,
                             int opts);
void corio__connect_cb(uv_connect_t *req, int status);
int corio__connect_wait(lua_State *L, corio_State *S, connop *op);

/* A transform layer under a stream (TLS: c/lua/tls/). With one, libuv
   reads into the layer's buffer (in, insize) and the layer appends what
   it makes of those bytes to the read buffer itself; writes and what was
   gathered go through its write, which sends its output with
   corio__stream_send; close runs before the stream flushes for its end
   (and on shutdown); the stream frees the layer with itself. */
#define NET_ELAYER (-30000)  /* rerr/werr: the layer's error (its push) */
typedef struct netlayer netlayer;
typedef struct netlayer_ops {
  /* n > 0 bytes at p from the socket, or its end (n < 0): the count of
     bytes appended to the read buffer (0: none yet), or a code < 0 that
     ends the reading (UV_EOF, NET_ELAYER...) */
  ssize_t (*read)(netstream *st, const char *p, ssize_t n);
  int (*write)(netstream *st, const uv_buf_t *bufs, int n);  /* 0 or a code */
  void (*close)(netstream *st);
  int (*error)(lua_State *L, netstream *st);  /* pushes nil, msg, code */
  void (*free)(netlayer *ly);
} netlayer_ops;
struct netlayer {
  const netlayer_ops *ops;
  char *in;              /* where libuv reads */
  size_t insize;
};

/* nil, msg, code for a stream's rerr or werr (the layer's own errors) */
static inline int corio__stream_error(lua_State *L, netstream *st, int err) {
  if (err == NET_ELAYER && st->layer != NULL) return st->layer->ops->error(L, st);
  return corio__net_error(L, err);
}

/* for a layer: stream_read.c: room for n more bytes at the end of the
   read buffer (0 or UV_ENOBUFS), and reading on if it should be;
   stream_write.c: bytes to the socket as they are (uv_try_write, the
   rest queued): 0 or the error, which is also the stream's werr */
int corio__stream_room(netstream *st, size_t n);
int corio__stream_read_more(netstream *st);
int corio__stream_send(netstream *st, const uv_buf_t *bufs, int n, size_t total);

/* server.c */
typedef struct serveopts {
  size_t limit, hwm;     /* for the accepted streams */
  int backlog;
  int nodelay;           /* TCP_NODELAY on the accepted streams (default) */
  int reuse_port;        /* SO_REUSEPORT on the listener (TCP) */
} serveopts;
void corio__open_server(lua_State *L);
void corio__serve_prepare(lua_State *L, const char *fname, int handler,
                          int opts, serveopts *o);
netserver *corio__server_listen(corio_State *S, int type,
                                const struct sockaddr *sa, size_t salen,
                                const serveopts *o, int *err);
int corio__server_start(lua_State *L, netserver *srv);
void corio__server_close(netserver *srv, int cancel);

/* udp.c */
void corio__udp_close(nethandle *h);  /* the run's shutdown */

/* net.c */
void corio__net_open(lua_State *L);
void corio__net_class(lua_State *L, const char *name,
                      const luaL_Reg *const *methods, lua_CFunction close,
                      lua_CFunction gc, lua_CFunction tostring);
void corio__net_untrack(nethandle *h);

/* a queued write: one copy of the bytes the kernel did not take at once
   (stream.c; stdio.c chains a file's in req.data) */
typedef struct writereq {
  uv_write_t req;
  corio_list_t node;     /* in st->wpending (a standard stream's) */
  netstream *st;
  size_t len;
  char data[1];
} writereq;

/* stream.c, for stdio.c */
void corio__stream_written(netstream *st, size_t len, int status);
void corio__stream_on_closed(uv_handle_t *h);

/* stdio.c: corio.stdin, corio.stdout, corio.stderr (in pipe.c's table) */
int corio__l_stdin(lua_State *L);
int corio__l_stdout(lua_State *L);
int corio__l_stderr(lua_State *L);
void corio__open_stdio(lua_State *L);
/* a standard stream is closed or freed: the exit flush and the
   read-ahead hand-over let go of it (stream.c calls this) */
void corio__stdio_closed(netstream *st);

/* stdio.c: a file's reads and writes (NS_FILE) */
int corio__file_read_start(netstream *st);  /* one uv_fs_read into the buffer */
int corio__file_write(netstream *st, writereq *w);  /* queued, in order */
size_t corio__file_unwritten(netstream *st);
void corio__file_close(netstream *st);  /* once no request is under way */

/* stream_read.c, for stdio.c: bytes read from a file (nread > 0), its
   end (0) or an error (< 0), as libuv's read callback would see them */
void corio__stream_got(netstream *st, const char *p, ssize_t nread);

/* stream.c, for stream_read.c and stream_write.c */
netstream **corio__stream_box(lua_State *L, corio_State *S,
                             const char *fname);  /* raises: a bad self */
/* what an operation on a closed stream returns: nil, "closed", or the
   error that ended the stream (a reset); st may be NULL */
int corio__stream_closed(lua_State *L, netstream *st);

/* where a Stream userdata is remembered once type-tested: a slot of
   S->stream_box picked by its address (cleared by its __gc) */
static inline void **corio__box_slot(corio_State *S, const void *box) {
  return &S->stream_box[((uintptr_t)box >> 4) & (CORIO_BOXES - 1)];
}

/* the stream at index 1 of a method call, raising (bad self to
   'stream:read' ...) if it is not a stream; NULL if it is closed or
   closing (the caller returns corio__stream_closed). The type test is
   one compare for a stream tested before, unless another took its slot
   since; the message is built only when it fails. */
static inline netstream *corio__stream_check_open(lua_State *L, corio_State *S,
                                                  const char *fname) {
  netstream **box = (netstream **)lua_touserdata(L, 1);
  netstream *st;
  if (box == NULL || *corio__box_slot(S, box) != box)
    box = corio__stream_box(L, S, fname);
  st = *box;
  if (st == NULL || st->h.state != NET_OPEN) return NULL;
  return st;
}

/* the stream behind the Stream at index 1 (checked), NULL once collected */
static inline netstream *corio__stream_at(lua_State *L) {
  return *(netstream **)lua_touserdata(L, 1);
}
void corio__stream_wait_begin(netstream *st, luatask *t);
void corio__stream_wait_end(netstream *st);
int corio__stream_await(lua_State *L, corio_State *S, netstream *st,
                        luatask *t, corio_future_t *f, lua_KFunction k);
void corio__stream_wake_reader(netstream *st);
extern const luaL_Reg corio__stream_read_methods[];

/* stream.c, for stream_write.c; stream_write.c, for stream.c */
void corio__stream_wake_writers(netstream *st, int all);  /* all: on a close */
void corio__stream_close_now(netstream *st);  /* pending writes are dropped */
void corio__stream_uncork(netstream *st);  /* drop what was gathered */
int corio__stream_flush(netstream *st);    /* write it: 0 or the error */
extern const luaL_Reg corio__stream_write_methods[];


/* net.c: a new request of `size` bytes (the first `clear` zeroed, and
   the head) behind a userdata pushed on the stack; NULL when out of
   memory (the userdata then holds nothing) */
void *corio__netreq_push(lua_State *L, size_t size, size_t clear,
                         void (*release)(netreq *r));
/* the userdata at idx lets go of its request: freed now if no callback
   is to come, else by the callback (the userdata's __gc does this) */
void corio__netreq_drop(lua_State *L, int idx);

/* the request the userdata at idx holds (NULL once dropped) */
static inline void *corio__netreq_at(lua_State *L, int idx) {
  return *(netreq **)lua_touserdata(L, idx);
}

/* the request's callback has run: freed if no userdata holds it */
static inline void corio__netreq_done(netreq *r) {
  r->busy = 0;
  if (r->gone) r->release(r);
}

/* net.c: host, port -> each of its socket addresses to each(ctx, sa,
   len) until that answers 1 (stop): a numeric address at once, a name's
   with a blocking getaddrinfo, in its order (of `family`; AF_UNSPEC:
   any). 0 (maybe with no address at all) or the lookup's error code. */
typedef int (*netaddr_fn)(void *ctx, const struct sockaddr *sa, size_t len);
int corio__net_resolve_each(uv_loop_t *loop, const char *host, int port,
                            int family, int socktype, netaddr_fn each,
                            void *ctx);

/* the host of a bind: "" and "*" are any IPv4 address */
static inline const char *corio__net_bind_host(const char *host) {
  if (host[0] == '\0' || (host[0] == '*' && host[1] == '\0')) return "0.0.0.0";
  return host;
}

/* net.c: options (next to corio__opt_size) and ports */
int corio__opt_table(lua_State *L, int opts);
int corio__opt_bool(lua_State *L, int opts, const char *name, int dflt);
int corio__check_port(lua_State *L, int idx, int min);

/* flag when the option `name` is true, else 0 */
static inline int corio__opt_flag(lua_State *L, int opts, const char *name,
                                  int flag) {
  return corio__opt_bool(L, opts, name, 0) ? flag : 0;
}

#endif
