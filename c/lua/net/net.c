/*
** net.c: what every network handle shares: the state's list of open
** handles (the run's shutdown closes what is left), anchors for values
** that must outlive their Lua references, error values, addresses, and
** the requests owned by a userdata (netreq, net.h).
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "net.h"


struct grace;

typedef struct netstate {
  corio_list_t handles;  /* open streams and servers */
  struct grace *grace;   /* the run's shutdown: the flush's clock */
} netstate;

static netstate *get_net(lua_State *L) {
  netstate *ns;
  lua_getfield(L, LUA_REGISTRYINDEX, NET_REGKEY);
  ns = (netstate *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  return ns;
}

void corio__net_track(corio_State *S, nethandle *h) {
  corio__list_push(&get_net(S->L)->handles, &h->node);
}

void corio__net_untrack(nethandle *h) {
  corio__list_remove(&h->node);
}

/* key -> value in the anchors table (values that must outlive every
   Lua reference: a listening server) */
void corio__net_anchor(lua_State *L, void *key, int idx) {
  if (idx < 0) idx = lua_gettop(L) + idx + 1;
  lua_getfield(L, LUA_REGISTRYINDEX, NET_REGKEY);
  lua_getiuservalue(L, -1, 1);
  lua_pushlightuserdata(L, key);
  if (idx) lua_pushvalue(L, idx);
  else lua_pushnil(L);
  lua_rawset(L, -3);
  lua_pop(L, 2);
}

void corio__net_push_anchor(lua_State *L, void *key) {
  lua_getfield(L, LUA_REGISTRYINDEX, NET_REGKEY);
  lua_getiuservalue(L, -1, 1);
  lua_pushlightuserdata(L, key);
  lua_rawget(L, -2);
  lua_replace(L, -3);
  lua_pop(L, 1);
}

/* nil, "ECONNREFUSED: connection refused", "ECONNREFUSED" */
int corio__net_error(lua_State *L, int err) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", uv_err_name(err), uv_strerror(err));
  lua_pushstring(L, uv_err_name(err));
  return 3;
}

int corio__push_sockaddr(lua_State *L, const struct sockaddr *sa) {
  char host[64];
  int port;
  if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)(const void *)sa;
    uv_ip6_name(a, host, sizeof host);
    port = ntohs(a->sin6_port);
  }
  else if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)(const void *)sa;
    uv_ip4_name(a, host, sizeof host);
    port = ntohs(a->sin_port);
  }
  else return corio__net_error(L, UV_EAFNOSUPPORT);
  lua_pushstring(L, host);
  lua_pushinteger(L, port);
  return 2;
}

/* a numeric address of `family` (AF_UNSPEC: either) into out: 1, else 0 */
static int numeric_address(const char *host, int port, int family,
                           struct sockaddr_storage *out) {
  if (family != AF_INET6 &&
      uv_ip4_addr(host, port, (struct sockaddr_in *)out) == 0)
    return 1;
  if (family != AF_INET &&
      uv_ip6_addr(host, port, (struct sockaddr_in6 *)out) == 0)
    return 1;
  return 0;
}

/* a blocking getaddrinfo: each IPv4 or IPv6 answer of `family`, in its
   order, to each(ctx, ...) until that says 1 (stop). 0 or the lookup's
   error code. */
static int lookup_each(uv_loop_t *loop, const char *host, int port,
                       int family, int socktype, netaddr_fn each,
                       void *ctx) {
  struct addrinfo hints, *ai;
  uv_getaddrinfo_t req;
  char portstr[16];
  int err;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = family;
  hints.ai_socktype = socktype;
  hints.ai_flags = AI_NUMERICSERV;
  snprintf(portstr, sizeof portstr, "%d", port);
  err = uv_getaddrinfo(loop, &req, NULL, host, portstr, &hints);
  if (err) return err;
  for (ai = req.addrinfo; ai != NULL; ai = ai->ai_next) {
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    if (ai->ai_addrlen > sizeof(struct sockaddr_storage)) continue;
    if (each(ctx, ai->ai_addr, ai->ai_addrlen)) break;
  }
  uv_freeaddrinfo(req.addrinfo);
  return 0;
}

static int take_first(void *ctx, const struct sockaddr *sa, size_t len) {
  memcpy(ctx, sa, len);
  return 1;
}

/* host, port -> a socket address: a numeric address at once, a name
   with a blocking getaddrinfo (the first answer of `family`, AF_UNSPEC:
   any). 0 or the error code. */
int corio__net_resolve(uv_loop_t *loop, const char *host, int port,
                       int family, int socktype, struct sockaddr_storage *out) {
  int err;
  memset(out, 0, sizeof *out);
  err = corio__net_resolve_each(loop, host, port, family, socktype, take_first, out);
  if (err == 0 && out->ss_family == AF_UNSPEC) err = UV_EAI_NONAME;
  return err;
}

int corio__net_resolve_each(uv_loop_t *loop, const char *host, int port,
                            int family, int socktype, netaddr_fn each,
                            void *ctx) {
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  if (numeric_address(host, port, family, &ss)) {
    each(ctx, (const struct sockaddr *)&ss, ss.ss_family == AF_INET6 ?
         sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
    return 0;
  }
  return lookup_each(loop, host, port, family, socktype, each, ctx);
}

/* the option `name` as a positive integer (a float with an integral
   value too: 1024.0, not 1.5), or dflt */
size_t corio__opt_size(lua_State *L, int opts, const char *name, size_t dflt) {
  lua_Integer v;
  int isint;
  if (lua_isnoneornil(L, opts)) return dflt;
  if (lua_getfield(L, opts, name) == LUA_TNIL) {
    lua_pop(L, 1);
    return dflt;
  }
  v = lua_tointegerx(L, -1, &isint);
  if (lua_type(L, -1) != LUA_TNUMBER || !isint || v <= 0) {
    lua_pushfstring(L, "option '%s': a positive integer expected", name);
    luaL_argerror(L, opts, lua_tostring(L, -1));
  }
  lua_pop(L, 1);
  return (size_t)v;
}

lua_Number corio__opt_seconds(lua_State *L, int opts, const char *name,
                              lua_Number dflt, int zero_ok) {
  lua_Number v = dflt;
  const char *bad = NULL;
  if (lua_isnoneornil(L, opts)) return dflt;
  if (lua_getfield(L, opts, name) != LUA_TNIL) {
    if (lua_type(L, -1) != LUA_TNUMBER) bad = "a number of seconds expected";
    else {
      v = lua_tonumber(L, -1);
      if (v != v) bad = "a number of seconds expected, got NaN";
      else if (v < 0 || (v == 0 && !zero_ok))
        bad = zero_ok ? "seconds must not be negative" : "seconds must be positive";
      else if (v > NET_FOREVER) v = -1;  /* infinity: never */
    }
    if (bad != NULL) {
      lua_pushfstring(L, "option '%s': %s", name, bad);
      luaL_argerror(L, opts, lua_tostring(L, -1));
    }
  }
  lua_pop(L, 1);
  return v;
}

/* the host at idx: a string without a zero byte (a C string would end
   there and name another host) */
const char *corio__check_host(lua_State *L, int idx) {
  size_t len;
  const char *host = luaL_checklstring(L, idx, &len);
  luaL_argcheck(L, strlen(host) == len, idx, "host contains a zero byte");
  return host;
}

/* the options table at opts: 1 a table, 0 none or nil (raises for any
   other value) */
int corio__opt_table(lua_State *L, int opts) {
  if (lua_isnoneornil(L, opts)) return 0;
  luaL_checktype(L, opts, LUA_TTABLE);
  return 1;
}

/* the option `name` as a boolean (no table, or the field nil: dflt) */
int corio__opt_bool(lua_State *L, int opts, const char *name, int dflt) {
  int on = dflt;
  if (lua_isnoneornil(L, opts)) return dflt;
  if (lua_getfield(L, opts, name) != LUA_TNIL) on = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return on;
}

/* the port at idx: an integer from min (0 or 1) to 65535, or raises */
int corio__check_port(lua_State *L, int idx, int min) {
  lua_Integer p = luaL_checkinteger(L, idx);
  luaL_argcheck(L, p >= min && p <= 65535, idx, "port out of range");
  return (int)p;
}

/* ------------------------------------------------------------ requests */

#define NETREQ_MT "corio.Request"

void *corio__netreq_push(lua_State *L, size_t size, size_t clear,
                         void (*release)(netreq *r)) {
  netreq **box = (netreq **)lua_newuserdatauv(L, sizeof *box, 0);
  netreq *r;
  *box = NULL;
  luaL_setmetatable(L, NETREQ_MT);
  r = (netreq *)malloc(size);
  if (r == NULL) return NULL;
  memset(r, 0, clear);
  r->release = release;
  r->busy = r->gone = 0;
  *box = r;
  return r;
}

void corio__netreq_drop(lua_State *L, int idx) {
  netreq **box = (netreq **)lua_touserdata(L, idx);
  netreq *r = *box;
  if (r == NULL) return;
  *box = NULL;
  r->gone = 1;
  if (!r->busy) r->release(r);
}

static int netreq_gc(lua_State *L) {
  corio__netreq_drop(L, 1);
  return 0;
}

/* ------------------------------------------------------------ shutdown */

static void close_all(netstate *ns, int kind) {
  corio_list_t *n = ns->handles.next;
  while (n != &ns->handles) {
    nethandle *h = corio__container_of(n, nethandle, node);
    n = n->next;  /* closing unlinks h */
    if (h->kind != kind) continue;
    if (kind == NET_SERVER) corio__server_close((netserver *)h, 0);
    else if (kind == NET_UDP) corio__udp_close(h);
    else corio__stream_close_soon((netstream *)h);
  }
}

/* The grace period of the run's shutdown. Streams still flushing when a
   run ends are given time, but a peer that never reads must not hold the
   process: once a second, a stream whose peer took nothing since the last
   look is closed and its queued bytes dropped (corio__stream_grace), and
   GRACE_TICKS seconds after the shutdown began every stream still
   flushing is. The timer is unref'd: it never keeps the loop alive by
   itself, only ticks while the writes do. */
#define GRACE_TICK_MS 1000
#define GRACE_TICKS   10

typedef struct grace {
  uv_timer_t timer;
  netstate *ns;
  int ticks;
  int final;             /* every task has finished: waiters do not count */
} grace;

static void on_grace_tick(uv_timer_t *t) {
  grace *g = (grace *)t->data;
  corio_list_t *n = g->ns->handles.next;
  int force = ++g->ticks >= GRACE_TICKS ? 2 : g->final;
  while (n != &g->ns->handles) {
    nethandle *h = corio__container_of(n, nethandle, node);
    n = n->next;  /* closing unlinks h */
    if (h->kind == NET_STREAM) corio__stream_grace((netstream *)h, force);
  }
}

static void on_grace_closed(uv_handle_t *h) {
  free(h->data);
}

static void grace_start(netstate *ns, corio_State *S) {
  grace *g;
  if (ns->grace != NULL) return;
  g = (grace *)calloc(1, sizeof *g);
  if (g == NULL) return;
  g->ns = ns;
  uv_timer_init(S->loop.uv, &g->timer);
  g->timer.data = g;
  uv_timer_start(&g->timer, on_grace_tick, GRACE_TICK_MS, GRACE_TICK_MS);
  uv_unref((uv_handle_t *)&g->timer);
  ns->grace = g;
}

/* On a host's loop (a detach, or lua_close after one began): every
   stream still flushing is closed at once, its queued bytes dropped. The
   loop is the host's: corio must not run it from here (libuv does not
   support a uv_run inside another, and a detach may be called from one
   of the host's callbacks), and nothing of corio may stay on it after a
   detach, since the Lua state may be closed next. The close callbacks
   run on the host's loop as it goes on. */
static void host_drop_streams(netstate *ns) {
  while (ns->handles.next != &ns->handles) {
    nethandle *h = corio__container_of(ns->handles.next, nethandle, node);
    if (h->kind == NET_STREAM && h->state != NET_CLOSED)
      corio__stream_close_now((netstream *)h);  /* unlinks h */
    else corio__net_untrack(h);  /* closed above: not expected */
  }
  if (ns->grace != NULL) {
    uv_close((uv_handle_t *)&ns->grace->timer, on_grace_closed);
    ns->grace = NULL;
  }
}

/* The run's shutdown (corio__finish_all, through corio__net_iomod) calls
   this twice: before it cancels the tasks, to stop every server accepting (no new handler is
   spawned meanwhile) and start the grace clock, and once every task has
   finished, to close the streams nobody closed: their queued writes are
   flushed first, here, within the grace period (corio.run's own loop
   only: on a host's loop, host_drop_streams). */
static void net_shutdown(lua_State *L, corio_State *S, int streams) {
  netstate *ns = get_net(L);
  if (ns == NULL) return;
  close_all(ns, NET_SERVER);
  if (S->host == NULL) grace_start(ns, S);
  if (!streams) return;
  close_all(ns, NET_UDP);  /* at once (a send still in libuv is dropped) */
  close_all(ns, NET_STREAM);
  if (S->host != NULL) {
    host_drop_streams(ns);
    return;
  }
  if (ns->grace == NULL) {  /* no clock (out of memory): no flush either */
    corio_list_t *n = ns->handles.next;
    while (n != &ns->handles) {
      nethandle *h = corio__container_of(n, nethandle, node);
      n = n->next;
      corio__stream_grace((netstream *)h, 2);
    }
    return;
  }
  ns->grace->final = 1;
  while (ns->handles.next != &ns->handles)  /* streams still flushing */
    if (corio_loop_run(&S->loop, UV_RUN_ONCE) == 0) break;
  uv_close((uv_handle_t *)&ns->grace->timer, on_grace_closed);
  ns->grace = NULL;
}

/* A task that the run's end abandons while it reads: the stream forgets
   it (it would otherwise wake a finished task when it closes). Writers
   and UDP receivers wait on futures, which the core detaches. */
static void net_abandon(corio_State *S, luatask *t) {
  netstate *ns;
  corio_list_t *n;
  if (t->what != W_STREAM) return;  /* streams keep their reader */
  ns = get_net(S->L);
  if (ns == NULL) return;
  for (n = ns->handles.next; n != &ns->handles; n = n->next) {
    nethandle *h = corio__container_of(n, nethandle, node);
    netstream *st = (netstream *)h;
    if (h->kind != NET_STREAM || st->reader != t) continue;
    st->reader = NULL;
    st->want = 0;
    corio__stream_wait_end(st);
  }
}

/* stack: state userdata at -1. The metatable `name` of a handle type,
   left on the stack: every function of the lists in `methods` (ended by
   NULL) as __index, and __close, __gc and __tostring; the methods and
   __close have the state as their upvalue. */
void corio__net_class(lua_State *L, const char *name,
                      const luaL_Reg *const *methods, lua_CFunction close,
                      lua_CFunction gc, lua_CFunction tostring) {
  luaL_newmetatable(L, name);
  lua_newtable(L);
  for (; *methods != NULL; methods++) {
    lua_pushvalue(L, -3);
    luaL_setfuncs(L, *methods, 1);
  }
  lua_setfield(L, -2, "__index");
  lua_pushvalue(L, -2);
  lua_pushcclosure(L, close, 1);
  lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, tostring);
  lua_setfield(L, -2, "__tostring");
}

/* the net state, in the registry, and the requests' metatable (at
   module open) */
void corio__net_open(lua_State *L) {
  netstate *ns;
  luaL_newmetatable(L, NETREQ_MT);
  lua_pushcfunction(L, netreq_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  ns = (netstate *)lua_newuserdatauv(L, sizeof *ns, 1);
  corio__list_init(&ns->handles);
  ns->grace = NULL;
  lua_newtable(L);
  lua_setiuservalue(L, -2, 1);
  lua_setfield(L, LUA_REGISTRYINDEX, NET_REGKEY);
}

/* the network's part in a task's and a run's end (binding.h) */
const corio_iomod corio__net_iomod = { "net", net_abandon, net_shutdown };
