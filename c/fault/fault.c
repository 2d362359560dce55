/*
** libuv fault injection for the CORIO_FAULT build (make test-fault).
**
** The build links corio's objects with -Wl,--wrap=uv_... (CMakeLists.txt,
** CORIO_FAULT): each call corio makes to one of those libuv functions comes
** here as __wrap_uv_..., and __real_uv_... is libuv's own. libuv is a shared
** library, so every call site in corio is an undefined reference at link time
** and is redirected; calls libuv makes inside itself are not.
**
** Each wrapper counts the calls of its kind; when the count reaches the k
** armed in the environment, that request fails:
**
**   CORIO_FAULT="kind:k:CODE:mode"   e.g. "write:3:ECONNRESET:async"
**   CORIO_FAULT_LOG=path             lines appended as things happen:
**                                     "fired kind mode k CODE" when the fault is
**                                     injected, "delivered ..." when corio sees
**                                     it, "loop_close ok" or "loop_close EBUSY
**                                     tcp timer ..." (the handles left), and at
**                                     exit "count kind mode n" for every kind
**
** kinds and modes (each (kind, mode) pair counts on its own):
**   connect sync   uv_tcp_connect returns CODE (nothing started)
**   connect async  uv_tcp_connect, uv_pipe_connect: the connect runs, its
**                  callback gets CODE instead of its status
**   write   sync   uv_write, uv_try_write return CODE (nothing written)
**   write   async  uv_write: the write runs, its callback gets CODE
**   read    sync   uv_read_start returns CODE
**   read    async  the k-th read callback (data or end) gets CODE instead
**   fs      sync   every uv_fs_* request returns CODE (nothing started)
**   fs      async  every uv_fs_* request with a callback: nothing starts,
**                  the callback gets CODE on the next loop iteration
**   spawn   sync   uv_spawn fails with CODE (after libuv's own failure
**                  path has run, so the handle is in the state a real
**                  failure leaves it: initialized, to be closed)
**   getaddrinfo sync   uv_getaddrinfo returns CODE (nothing started)
**   getaddrinfo async  the lookup runs, its callback gets CODE, no result
**   accept  sync   uv_accept takes the connection, then returns CODE (the
**                  caller closes the stream it gave, as after any failure)
**   accept  async  the k-th connection callback of a listening stream gets
**                  CODE instead of 0, as when accept(2) fails: the
**                  connection libuv took waits on the server (accepted_fd)
**                  as one still queued in the kernel would. If the callback
**                  closed the listener, libuv's close drops it with the rest
**                  of the queue; if not, the callback runs again with 0, as
**                  libuv's accept loop tries again at once and takes it
**   listen  sync   uv_listen returns CODE (the handle is bound, not
**                  listening: the caller closes it, as after any failure)
**   shutdown sync  uv_shutdown returns CODE (nothing started)
**   shutdown async uv_shutdown: the shutdown runs, its callback gets CODE
**   udp_send sync  uv_udp_send, uv_udp_try_send return CODE (nothing sent)
**   udp_send async uv_udp_send: the datagram goes, its callback gets CODE
**   udp_recv sync  uv_udp_recv_start returns CODE
**   udp_recv async the k-th receive callback with a datagram gets CODE
**                  instead (the datagram is lost)
** A close (uv_fs_close) always closes the fd first, as the kernel does when
** close(2) reports an error.
**
** One request fails per run, so one slot remembers the callback it replaced.
*/
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <uv.h>

#define FAULT_PROTO(ret, name, args) \
  ret __real_##name args; \
  ret __wrap_##name args;

FAULT_PROTO(int, uv_tcp_connect, (uv_connect_t *req, uv_tcp_t *h,
            const struct sockaddr *addr, uv_connect_cb cb))
FAULT_PROTO(void, uv_pipe_connect, (uv_connect_t *req, uv_pipe_t *h,
            const char *name, uv_connect_cb cb))
FAULT_PROTO(int, uv_write, (uv_write_t *req, uv_stream_t *h, const uv_buf_t bufs[],
            unsigned int n, uv_write_cb cb))
FAULT_PROTO(int, uv_try_write, (uv_stream_t *h, const uv_buf_t bufs[], unsigned int n))
FAULT_PROTO(int, uv_read_start, (uv_stream_t *h, uv_alloc_cb alloc, uv_read_cb cb))
FAULT_PROTO(int, uv_spawn, (uv_loop_t *loop, uv_process_t *h,
            const uv_process_options_t *o))
FAULT_PROTO(int, uv_getaddrinfo, (uv_loop_t *loop, uv_getaddrinfo_t *req,
            uv_getaddrinfo_cb cb, const char *node, const char *service,
            const struct addrinfo *hints))
FAULT_PROTO(int, uv_accept, (uv_stream_t *server, uv_stream_t *client))
FAULT_PROTO(int, uv_listen, (uv_stream_t *h, int backlog, uv_connection_cb cb))
FAULT_PROTO(int, uv_shutdown, (uv_shutdown_t *req, uv_stream_t *h, uv_shutdown_cb cb))
FAULT_PROTO(int, uv_udp_send, (uv_udp_send_t *req, uv_udp_t *h, const uv_buf_t bufs[],
            unsigned int n, const struct sockaddr *addr, uv_udp_send_cb cb))
FAULT_PROTO(int, uv_udp_try_send, (uv_udp_t *h, const uv_buf_t bufs[], unsigned int n,
            const struct sockaddr *addr))
FAULT_PROTO(int, uv_udp_recv_start, (uv_udp_t *h, uv_alloc_cb alloc, uv_udp_recv_cb cb))
FAULT_PROTO(void, uv_close, (uv_handle_t *h, uv_close_cb cb))
FAULT_PROTO(int, uv_cancel, (uv_req_t *req))
FAULT_PROTO(int, uv_loop_close, (uv_loop_t *loop))

enum { K_CONNECT, K_WRITE, K_READ, K_FS, K_SPAWN, K_GAI, K_ACCEPT, K_LISTEN, K_SHUTDOWN,
       K_UDP_SEND, K_UDP_RECV, K_N };
enum { M_SYNC, M_ASYNC, M_N };
static const char *const kind_names[K_N] = {
  "connect", "write", "read", "fs", "spawn", "getaddrinfo", "accept", "listen",
  "shutdown", "udp_send", "udp_recv"
};
static const char *const mode_names[M_N] = { "sync", "async" };

static struct {
  int init;
  int kind, mode;        /* armed: kind and mode, or kind -1 */
  long k;                /* the armed request's number (from 1) */
  int code;              /* the libuv error it gets */
  const char *code_name;
  const char *log;       /* CORIO_FAULT_LOG, or NULL */
  long count[K_N][M_N];
  int fired;
} F;

static const struct { const char *name; int code; } codes[] = {
  { "EIO", UV_EIO }, { "ECONNRESET", UV_ECONNRESET }, { "EMFILE", UV_EMFILE },
  { "ENOMEM", UV_ENOMEM }, { "EPIPE", UV_EPIPE }, { "ECONNREFUSED", UV_ECONNREFUSED },
  { "ETIMEDOUT", UV_ETIMEDOUT }, { "EACCES", UV_EACCES }, { "ENOSPC", UV_ENOSPC },
  { "EAI_FAIL", UV_EAI_FAIL }, { "EAI_AGAIN", UV_EAI_AGAIN },
  { "EADDRINUSE", UV_EADDRINUSE }, { "ENOTCONN", UV_ENOTCONN }, { "ENOBUFS", UV_ENOBUFS },
  { "ENETUNREACH", UV_ENETUNREACH },
};

static void logf_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_line(const char *fmt, ...) {
  FILE *f;
  va_list ap;
  if (F.log == NULL) return;
  f = fopen(F.log, "a");  /* opened and closed each time: no fd stays open */
  if (f == NULL) return;
  va_start(ap, fmt);
  vfprintf(f, fmt, ap);
  va_end(ap);
  fclose(f);
}

static void at_exit(void) {
  int k, m;
  for (k = 0; k < K_N; k++)
    for (m = 0; m < M_N; m++)
      logf_line("count %s %s %ld\n", kind_names[k], mode_names[m], F.count[k][m]);
}

static void fault_init(void) {
  const char *spec = getenv("CORIO_FAULT");
  char kind[32], code[32], mode[16];
  long k;
  size_t i;
  if (F.init) return;
  F.init = 1;
  F.kind = -1;
  F.log = getenv("CORIO_FAULT_LOG");
  atexit(at_exit);
  if (spec == NULL || spec[0] == '\0') return;
  strcpy(mode, "async");
  if (sscanf(spec, "%31[^:]:%ld:%31[^:]:%15s", kind, &k, code, mode) < 3) {
    fprintf(stderr, "CORIO_FAULT: want kind:k:CODE[:sync|async], got '%s'\n", spec);
    abort();
  }
  for (i = 0; i < K_N; i++)
    if (strcmp(kind, kind_names[i]) == 0) F.kind = (int)i;
  F.mode = strcmp(mode, "sync") == 0 ? M_SYNC : M_ASYNC;
  for (i = 0; i < sizeof codes / sizeof codes[0]; i++)
    if (strcmp(code, codes[i].name) == 0) {
      F.code = codes[i].code;
      F.code_name = codes[i].name;
    }
  if (F.kind < 0 || F.code_name == NULL || k < 1 ||
      (strcmp(mode, "sync") != 0 && strcmp(mode, "async") != 0)) {
    fprintf(stderr, "CORIO_FAULT: unknown kind, code or mode in '%s'\n", spec);
    abort();
  }
  F.k = k;
}

/* counts a request of (kind, mode); 1 when it is the one to fail */
static int hit(int kind, int mode) {
  fault_init();
  F.count[kind][mode]++;
  if (F.fired || kind != F.kind || mode != F.mode || F.count[kind][mode] != F.k)
    return 0;
  F.fired = 1;
  logf_line("fired %s %s %ld %s\n", kind_names[kind], mode_names[mode], F.k, F.code_name);
  return 1;
}

static void delivered(void) {
  logf_line("delivered %s %s %ld %s\n", kind_names[F.kind], mode_names[F.mode], F.k,
            F.code_name);
}

/* a sync request of one kind counts for its kind's both modes only when
   both apply; async-only and sync-only requests count once */
static int hit_sync(int kind) { return hit(kind, M_SYNC); }
static int hit_async(int kind) { return hit(kind, M_ASYNC); }

/* the one replaced callback */
static union {
  uv_connect_cb connect;
  uv_write_cb write;
  uv_getaddrinfo_cb gai;
  uv_shutdown_cb shutdown;
  uv_udp_send_cb udp_send;
} saved;
static void *saved_req;

/* ---------------------------------------------------------------- connect */
static void connect_cb(uv_connect_t *req, int status) {
  uv_connect_cb cb = saved.connect;
  if ((void *)req != saved_req) abort();
  saved_req = NULL;
  if (status == 0) {  /* connected, but the caller hears of a failure */
    status = F.code;
    delivered();
  }
  cb(req, status);
}

int __wrap_uv_tcp_connect(uv_connect_t *req, uv_tcp_t *h, const struct sockaddr *addr,
                          uv_connect_cb cb) {
  if (hit_sync(K_CONNECT)) {
    delivered();
    return F.code;
  }
  if (hit_async(K_CONNECT)) {
    int err;
    saved.connect = cb;
    saved_req = req;
    err = __real_uv_tcp_connect(req, h, addr, connect_cb);
    if (err != 0) saved_req = NULL;
    return err;
  }
  return __real_uv_tcp_connect(req, h, addr, cb);
}

void __wrap_uv_pipe_connect(uv_connect_t *req, uv_pipe_t *h, const char *name,
                            uv_connect_cb cb) {
  if (hit_async(K_CONNECT)) {
    saved.connect = cb;
    saved_req = req;
    __real_uv_pipe_connect(req, h, name, connect_cb);
    return;
  }
  __real_uv_pipe_connect(req, h, name, cb);
}

/* ---------------------------------------------------------------- write */
/* A stream whose write or read fails is broken as the kernel breaks a
   connection that failed: its socket is shut down both ways, so this end
   reads its end and the peer sees the end too (a failure that left the
   connection working would leave both ends waiting for bytes that never
   come, which no kernel does). A pipe is left as it is. */
static void break_stream(uv_stream_t *h) {
  uv_os_fd_t fd;
  if (uv_fileno((const uv_handle_t *)h, &fd) == 0) shutdown(fd, SHUT_RDWR);
}

static uv_stream_t *write_stream;  /* the stream of the failed write */

static void write_cb(uv_write_t *req, int status) {
  uv_write_cb cb = saved.write;
  if ((void *)req != saved_req) abort();
  saved_req = NULL;
  if (status == 0) {
    status = F.code;
    break_stream(write_stream);
    delivered();
  }
  cb(req, status);
}

int __wrap_uv_write(uv_write_t *req, uv_stream_t *h, const uv_buf_t bufs[],
                    unsigned int n, uv_write_cb cb) {
  if (hit_sync(K_WRITE)) {
    break_stream(h);
    delivered();
    return F.code;
  }
  if (cb != NULL && hit_async(K_WRITE)) {
    int err;
    saved.write = cb;
    saved_req = req;
    write_stream = h;
    err = __real_uv_write(req, h, bufs, n, write_cb);
    if (err != 0) saved_req = NULL;
    return err;
  }
  return __real_uv_write(req, h, bufs, n, cb);
}

int __wrap_uv_try_write(uv_stream_t *h, const uv_buf_t bufs[], unsigned int n) {
  if (hit_sync(K_WRITE)) {
    break_stream(h);
    delivered();
    return F.code;
  }
  return __real_uv_try_write(h, bufs, n);
}

/* ---------------------------------------------------------------- read */
/* The callback a handle gave libuv, kept so that every call of it passes
   here: one table for reading streams, receiving UDP handles, listeners.
   A slot is the handle's until it closes (uv_close below). The callback is
   kept as void (*)(void) and called through its own type. */
#define SLOTS 1024
typedef void (*any_cb)(void);
typedef struct { void *h; any_cb cb; } slot_t;
static slot_t readers[SLOTS], udp_readers[SLOTS], listeners[SLOTS];

static int slot_of(slot_t *tab, void *h, int add) {
  int i, free_slot = -1;
  for (i = 0; i < SLOTS; i++) {
    if (tab[i].h == h) return i;
    if (tab[i].h == NULL && free_slot < 0) free_slot = i;
  }
  if (add && free_slot >= 0) {
    tab[free_slot].h = h;
    return free_slot;
  }
  return -1;
}

/* the callback kept for h (one passes here only for a handle kept) */
static any_cb slot_cb(slot_t *tab, void *h) {
  int i = slot_of(tab, h, 0);
  if (i < 0) abort();
  return tab[i].cb;
}

/* keeps h's callback; 0 when the table is full (h is then not counted) */
static int slot_keep(slot_t *tab, void *h, any_cb cb, const char *what) {
  int i = slot_of(tab, h, 1);
  if (i < 0) {
    fprintf(stderr, "CORIO_FAULT: more than %d %s; not counted\n", SLOTS, what);
    return 0;
  }
  tab[i].cb = cb;
  return 1;
}

static void slot_drop(slot_t *tab, void *h) {
  int i = slot_of(tab, h, 0);
  if (i >= 0) tab[i].h = NULL;
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  uv_read_cb cb = (uv_read_cb)slot_cb(readers, s);
  if (nread != 0 && hit_async(K_READ)) {
    nread = F.code;
    break_stream(s);
    delivered();
  }
  cb(s, nread, buf);
}

int __wrap_uv_read_start(uv_stream_t *h, uv_alloc_cb alloc, uv_read_cb cb) {
  if (hit_sync(K_READ)) {
    break_stream(h);
    delivered();
    return F.code;
  }
  if (!slot_keep(readers, h, (any_cb)cb, "reading streams"))
    return __real_uv_read_start(h, alloc, cb);
  return __real_uv_read_start(h, alloc, read_cb);
}

/* ---------------------------------------------------------------- shutdown */
static void shutdown_cb(uv_shutdown_t *req, int status) {
  uv_shutdown_cb cb = saved.shutdown;
  if ((void *)req != saved_req) abort();
  saved_req = NULL;
  if (status == 0) {  /* the write side is shut, but the caller hears of a failure */
    status = F.code;
    delivered();
  }
  cb(req, status);
}

int __wrap_uv_shutdown(uv_shutdown_t *req, uv_stream_t *h, uv_shutdown_cb cb) {
  if (hit_sync(K_SHUTDOWN)) {
    delivered();
    return F.code;
  }
  if (cb != NULL && hit_async(K_SHUTDOWN)) {
    int err;
    saved.shutdown = cb;
    saved_req = req;
    err = __real_uv_shutdown(req, h, shutdown_cb);
    if (err != 0) saved_req = NULL;
    return err;
  }
  return __real_uv_shutdown(req, h, cb);
}

/* ---------------------------------------------------------------- udp */
static void udp_send_cb(uv_udp_send_t *req, int status) {
  uv_udp_send_cb cb = saved.udp_send;
  if ((void *)req != saved_req) abort();
  saved_req = NULL;
  if (status == 0) {  /* sent, but the caller hears of a failure */
    status = F.code;
    delivered();
  }
  cb(req, status);
}

int __wrap_uv_udp_send(uv_udp_send_t *req, uv_udp_t *h, const uv_buf_t bufs[],
                       unsigned int n, const struct sockaddr *addr, uv_udp_send_cb cb) {
  if (hit_sync(K_UDP_SEND)) {
    delivered();
    return F.code;
  }
  if (cb != NULL && hit_async(K_UDP_SEND)) {
    int err;
    saved.udp_send = cb;
    saved_req = req;
    err = __real_uv_udp_send(req, h, bufs, n, addr, udp_send_cb);
    if (err != 0) saved_req = NULL;
    return err;
  }
  return __real_uv_udp_send(req, h, bufs, n, addr, cb);
}

int __wrap_uv_udp_try_send(uv_udp_t *h, const uv_buf_t bufs[], unsigned int n,
                           const struct sockaddr *addr) {
  if (hit_sync(K_UDP_SEND)) {
    delivered();
    return F.code;
  }
  return __real_uv_udp_try_send(h, bufs, n, addr);
}

static void udp_recv_cb(uv_udp_t *u, ssize_t nread, const uv_buf_t *buf,
                        const struct sockaddr *addr, unsigned flags) {
  uv_udp_recv_cb cb = (uv_udp_recv_cb)slot_cb(udp_readers, u);
  if (addr != NULL && nread >= 0 && hit_async(K_UDP_RECV)) {
    nread = F.code;
    addr = NULL;
    flags = 0;
    delivered();
  }
  cb(u, nread, buf, addr, flags);
}

int __wrap_uv_udp_recv_start(uv_udp_t *h, uv_alloc_cb alloc, uv_udp_recv_cb cb) {
  if (hit_sync(K_UDP_RECV)) {
    delivered();
    return F.code;
  }
  if (!slot_keep(udp_readers, h, (any_cb)cb, "receiving UDP handles"))
    return __real_uv_udp_recv_start(h, alloc, cb);
  return __real_uv_udp_recv_start(h, alloc, udp_recv_cb);
}

void __wrap_uv_close(uv_handle_t *h, uv_close_cb cb) {
  slot_drop(readers, h);
  slot_drop(udp_readers, h);
  slot_drop(listeners, h);
  __real_uv_close(h, cb);
}

/* ---------------------------------------------------------------- fs */
/* A failed fs request with a callback: nothing started, the callback runs
   from a timer of its own on the next iteration. */
typedef struct {
  uv_timer_t timer;
  uv_fs_t *req;
  uv_fs_cb cb;
} fspend;

static fspend *pending_fs;  /* the one failed request, until it is delivered */

static void fs_closed(uv_handle_t *h) { free(h->data); }

static void fs_fire(uv_timer_t *t) {
  fspend *p = (fspend *)t->data;
  pending_fs = NULL;
  p->req->result = F.code;
  delivered();
  p->cb(p->req);
  __real_uv_close((uv_handle_t *)t, fs_closed);
}

/* the fields uv_fs_req_cleanup and the callback read, as libuv sets them */
static void fs_fake(uv_loop_t *loop, uv_fs_t *req, uv_fs_type type, uv_fs_cb cb) {
  req->type = UV_FS;
  req->fs_type = type;
  req->loop = loop;
  req->cb = cb;
  req->result = 0;
  req->ptr = NULL;
  req->path = NULL;
  req->new_path = NULL;
  req->bufs = NULL;
}

static int fs_fail(uv_loop_t *loop, uv_fs_t *req, uv_fs_type type, uv_fs_cb cb) {
  fspend *p;
  fs_fake(loop, req, type, cb);
  if (cb == NULL || F.mode == M_SYNC) {
    req->result = F.code;
    delivered();
    return F.code;
  }
  p = (fspend *)malloc(sizeof *p);
  if (p == NULL) abort();
  p->req = req;
  p->cb = cb;
  uv_timer_init(loop, &p->timer);
  p->timer.data = p;
  uv_timer_start(&p->timer, fs_fire, 0, 0);
  pending_fs = p;
  return 0;
}

int __wrap_uv_cancel(uv_req_t *req) {
  /* a failed request waits for its timer: too late to cancel, as a request
     the thread pool has started */
  if (pending_fs != NULL && (void *)req == (void *)pending_fs->req) return UV_EBUSY;
  return __real_uv_cancel(req);
}

/* fs_hit(cb): this request is the one to fail (sync mode counts every
   request, async mode those with a callback) */
static int fs_hit(uv_fs_cb cb) {
  int sync = hit_sync(K_FS);
  return sync || (cb != NULL && hit_async(K_FS));
}

#define FS_WRAP(name, type, params, args)                                   \
  int __real_uv_fs_##name params;                                         \
  int __wrap_uv_fs_##name params;                                         \
  int __wrap_uv_fs_##name params {                                        \
    if (fs_hit(cb)) return fs_fail(loop, req, type, cb);                  \
    return __real_uv_fs_##name args;                                      \
  }

FS_WRAP(open, UV_FS_OPEN, (uv_loop_t *loop, uv_fs_t *req, const char *path, int flags,
        int mode, uv_fs_cb cb), (loop, req, path, flags, mode, cb))
FS_WRAP(read, UV_FS_READ, (uv_loop_t *loop, uv_fs_t *req, uv_file file,
        const uv_buf_t bufs[], unsigned int nbufs, int64_t off, uv_fs_cb cb),
        (loop, req, file, bufs, nbufs, off, cb))
FS_WRAP(write, UV_FS_WRITE, (uv_loop_t *loop, uv_fs_t *req, uv_file file,
        const uv_buf_t bufs[], unsigned int nbufs, int64_t off, uv_fs_cb cb),
        (loop, req, file, bufs, nbufs, off, cb))
FS_WRAP(stat, UV_FS_STAT, (uv_loop_t *loop, uv_fs_t *req, const char *path,
        uv_fs_cb cb), (loop, req, path, cb))
FS_WRAP(lstat, UV_FS_LSTAT, (uv_loop_t *loop, uv_fs_t *req, const char *path,
        uv_fs_cb cb), (loop, req, path, cb))
FS_WRAP(fstat, UV_FS_FSTAT, (uv_loop_t *loop, uv_fs_t *req, uv_file file,
        uv_fs_cb cb), (loop, req, file, cb))
FS_WRAP(fsync, UV_FS_FSYNC, (uv_loop_t *loop, uv_fs_t *req, uv_file file,
        uv_fs_cb cb), (loop, req, file, cb))
FS_WRAP(ftruncate, UV_FS_FTRUNCATE, (uv_loop_t *loop, uv_fs_t *req, uv_file file,
        int64_t off, uv_fs_cb cb), (loop, req, file, off, cb))
FS_WRAP(mkdir, UV_FS_MKDIR, (uv_loop_t *loop, uv_fs_t *req, const char *path, int mode,
        uv_fs_cb cb), (loop, req, path, mode, cb))
FS_WRAP(rmdir, UV_FS_RMDIR, (uv_loop_t *loop, uv_fs_t *req, const char *path,
        uv_fs_cb cb), (loop, req, path, cb))
FS_WRAP(unlink, UV_FS_UNLINK, (uv_loop_t *loop, uv_fs_t *req, const char *path,
        uv_fs_cb cb), (loop, req, path, cb))
FS_WRAP(rename, UV_FS_RENAME, (uv_loop_t *loop, uv_fs_t *req, const char *path,
        const char *new_path, uv_fs_cb cb), (loop, req, path, new_path, cb))
FS_WRAP(scandir, UV_FS_SCANDIR, (uv_loop_t *loop, uv_fs_t *req, const char *path,
        int flags, uv_fs_cb cb), (loop, req, path, flags, cb))
FS_WRAP(mkdtemp, UV_FS_MKDTEMP, (uv_loop_t *loop, uv_fs_t *req, const char *tpl,
        uv_fs_cb cb), (loop, req, tpl, cb))
FS_WRAP(realpath, UV_FS_REALPATH, (uv_loop_t *loop, uv_fs_t *req, const char *path,
        uv_fs_cb cb), (loop, req, path, cb))
FS_WRAP(readlink, UV_FS_READLINK, (uv_loop_t *loop, uv_fs_t *req, const char *path,
        uv_fs_cb cb), (loop, req, path, cb))
FS_WRAP(symlink, UV_FS_SYMLINK, (uv_loop_t *loop, uv_fs_t *req, const char *path,
        const char *new_path, int flags, uv_fs_cb cb), (loop, req, path, new_path, flags, cb))
FS_WRAP(chmod, UV_FS_CHMOD, (uv_loop_t *loop, uv_fs_t *req, const char *path, int mode,
        uv_fs_cb cb), (loop, req, path, mode, cb))
FS_WRAP(utime, UV_FS_UTIME, (uv_loop_t *loop, uv_fs_t *req, const char *path,
        double atime, double mtime, uv_fs_cb cb), (loop, req, path, atime, mtime, cb))
FS_WRAP(access, UV_FS_ACCESS, (uv_loop_t *loop, uv_fs_t *req, const char *path, int mode,
        uv_fs_cb cb), (loop, req, path, mode, cb))
FS_WRAP(copyfile, UV_FS_COPYFILE, (uv_loop_t *loop, uv_fs_t *req, const char *path,
        const char *new_path, int flags, uv_fs_cb cb), (loop, req, path, new_path, flags, cb))

int __real_uv_fs_close(uv_loop_t *loop, uv_fs_t *req, uv_file file, uv_fs_cb cb);
int __wrap_uv_fs_close(uv_loop_t *loop, uv_fs_t *req, uv_file file, uv_fs_cb cb);
int __wrap_uv_fs_close(uv_loop_t *loop, uv_fs_t *req, uv_file file, uv_fs_cb cb) {
  if (fs_hit(cb)) {  /* the fd is closed all the same, as close(2) does */
    __real_uv_fs_close(loop, req, file, NULL);
    uv_fs_req_cleanup(req);
    return fs_fail(loop, req, UV_FS_CLOSE, cb);
  }
  return __real_uv_fs_close(loop, req, file, cb);
}

/* ---------------------------------------------------------------- spawn */
int __wrap_uv_spawn(uv_loop_t *loop, uv_process_t *h, const uv_process_options_t *o) {
  if (hit_sync(K_SPAWN)) {
    /* libuv's own failure path (a program that cannot be found) leaves the
       handle and the pipes as any failure does; the caller hears CODE */
    uv_process_options_t bad = *o;
    char *argv[2];
    argv[0] = (char *)"";
    argv[1] = NULL;
    bad.file = "";
    bad.args = argv;
    bad.flags &= ~(unsigned int)UV_PROCESS_DETACHED;
    if (__real_uv_spawn(loop, h, &bad) == 0) abort();  /* "" cannot run */
    delivered();
    return F.code;
  }
  return __real_uv_spawn(loop, h, o);
}

/* ---------------------------------------------------------------- getaddrinfo */
static void gai_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  uv_getaddrinfo_cb cb = saved.gai;
  if ((void *)req != saved_req) abort();
  saved_req = NULL;
  if (status == 0) {
    uv_freeaddrinfo(res);
    res = NULL;
    status = F.code;
    delivered();
  }
  cb(req, status, res);
}

int __wrap_uv_getaddrinfo(uv_loop_t *loop, uv_getaddrinfo_t *req, uv_getaddrinfo_cb cb,
                          const char *node, const char *service,
                          const struct addrinfo *hints) {
  if (hit_sync(K_GAI)) {
    delivered();
    return F.code;
  }
  if (cb != NULL && hit_async(K_GAI)) {
    int err;
    saved.gai = cb;
    saved_req = req;
    err = __real_uv_getaddrinfo(loop, req, gai_cb, node, service, hints);
    if (err != 0) saved_req = NULL;
    return err;
  }
  return __real_uv_getaddrinfo(loop, req, cb, node, service, hints);
}

/* ---------------------------------------------------------------- accept */
int __wrap_uv_accept(uv_stream_t *server, uv_stream_t *client) {
  int err = __real_uv_accept(server, client);
  if (err == 0 && hit_sync(K_ACCEPT)) {
    delivered();
    return F.code;
  }
  return err;
}

/* ---------------------------------------------------------------- listen */
static void connection_cb(uv_stream_t *s, int status) {
  uv_connection_cb cb = (uv_connection_cb)slot_cb(listeners, s);
  if (status == 0 && hit_async(K_ACCEPT)) {
    delivered();
    cb(s, F.code);
    /* a listener closed in the callback: its close drops the connection
       (uv_close closes the accepted fd, as close(2) resets the queue) */
    if (uv_is_closing((uv_handle_t *)s)) return;
    /* if not, libuv's accept loop tries again and takes it */
  }
  cb(s, status);
}

int __wrap_uv_listen(uv_stream_t *h, int backlog, uv_connection_cb cb) {
  int err;
  if (hit_sync(K_LISTEN)) {
    delivered();
    return F.code;
  }
  if (!slot_keep(listeners, h, (any_cb)cb, "listening streams"))
    return __real_uv_listen(h, backlog, cb);
  err = __real_uv_listen(h, backlog, connection_cb);
  if (err != 0) slot_drop(listeners, h);
  return err;
}

/* ---------------------------------------------------------------- loop close */
static void name_handle(uv_handle_t *h, void *arg) {
  char *names = (char *)arg;
  size_t n = strlen(names);
  snprintf(names + n, 512 - n, " %s%s", uv_handle_type_name(uv_handle_get_type(h)),
           uv_is_closing(h) ? "(closing)" : "");
}

int __wrap_uv_loop_close(uv_loop_t *loop) {
  int err = __real_uv_loop_close(loop);
  fault_init();
  if (err == 0) logf_line("loop_close ok\n");
  else {
    char names[512];
    names[0] = '\0';
    uv_walk(loop, name_handle, names);
    logf_line("loop_close %s%s\n", uv_err_name(err), names);
  }
  return err;
}
