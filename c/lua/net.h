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
** is left (corio__net_shutdown).
*/
#ifndef CORIO_NET_H
#define CORIO_NET_H

#include "binding.h"

#define corio__container_of(ptr, type, field) \
  ((type *)((char *)(ptr) - offsetof(type, field)))

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

struct netserver;

typedef struct netstream {
  nethandle h;
  uv_tcp_t tcp;
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
  uv_tcp_t tcp;
  uv_timer_t backoff;    /* EMFILE: listen again after a pause */
  struct sockaddr_storage addr;  /* where it listens */
  corio_list_t conns;    /* streams whose handler task runs */
  size_t nconns;
  corio_future_t done;   /* closed and every handler finished */
  size_t limit, hwm;     /* for the accepted streams */
  int backlog;
  uint8_t timer_closed;  /* the backoff timer's close callback ran */
  uint8_t paused;        /* the listener is closed until the backoff fires */
  uint8_t logged;        /* EMFILE was reported once */
} netserver;

/* stream.c */
netstream *corio__stream_alloc(corio_State *S, size_t limit, size_t hwm);
void corio__stream_push(lua_State *L, netstream *st);  /* box it, register */
void corio__stream_discard(netstream *st);  /* close one never boxed */
void corio__stream_close_soon(netstream *st);  /* flush, then close */
void corio__stream_grace(netstream *st, int force);  /* the run's shutdown (net.c) */
void corio__net_track(corio_State *S, nethandle *h);
int corio__net_error(lua_State *L, int err);  /* nil, "ENAME: msg", "ENAME" */
int corio__push_sockaddr(lua_State *L, const struct sockaddr *sa);
void corio__net_anchor(lua_State *L, void *key, int idx);  /* idx: value, or 0 to drop */
void corio__net_push_anchor(lua_State *L, void *key);
size_t corio__opt_size(lua_State *L, int opts, const char *name, size_t dflt);

/* tcp.c */
void corio__server_close(netserver *srv, int cancel);

/* udp.c */
void corio__udp_close(nethandle *h);  /* the run's shutdown */

/* net.c */
void corio__net_open(lua_State *L);
void corio__net_untrack(nethandle *h);

/* stream.c, for stream_read.c */
netstream *corio__stream_check_open(lua_State *L, const char *fname);
void corio__stream_wait_begin(netstream *st, luatask *t);
void corio__stream_wait_end(netstream *st);
void corio__stream_wake_reader(netstream *st);
extern const luaL_Reg corio__stream_read_methods[];

#endif
