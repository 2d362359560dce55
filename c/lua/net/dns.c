/*
** dns.c: name resolution (corio.getaddrinfo, corio.getnameinfo) on
** libuv's thread pool.
**
** A lookup's request lives in a malloc'd op behind a small userdata on
** the waiting task's stack (a netreq, net.h); the task awaits the op's
** future. When the task leaves early (cancelled, timed out) the request
** is cancelled if the thread pool has not started it, and otherwise runs
** to its end: the op is freed by whichever comes second, its callback or
** the userdata's collection.
*/
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include "net.h"

typedef struct lookup {
  netreq r;              /* r.busy: the callback has not run */
  union {
    uv_req_t any;        /* any.type: which of the two */
    uv_getaddrinfo_t gai;
    uv_getnameinfo_t gni;
  } req;
  corio_State *S;
  corio_future_t done;
  struct addrinfo *res;  /* getaddrinfo's answer */
  int status;
} lookup;

static void lookup_free(netreq *r) {
  lookup *op = (lookup *)r;
  if (op->res != NULL) uv_freeaddrinfo(op->res);
  free(op);
}

static void lookup_finish(lookup *op, int status) {
  op->status = status;
  corio_future_finish(&op->S->loop, &op->done, CORIO_DONE);
  corio__netreq_done(&op->r);
}

static void on_addrinfo(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  lookup *op = corio__container_of(req, lookup, req.gai);
  op->res = res;
  lookup_finish(op, status);
}

static void on_nameinfo(uv_getnameinfo_t *req, int status, const char *host,
                        const char *service) {
  lookup *op = corio__container_of(req, lookup, req.gni);
  (void)host;  /* also in req->host, req->service */
  (void)service;
  lookup_finish(op, status);
}

/* a new op behind a userdata pushed on the stack */
static lookup *lookup_new(lua_State *L, corio_State *S, const char *fname) {
  lookup *op = (lookup *)corio__netreq_push(L, sizeof *op, sizeof *op,
                                            lookup_free);
  if (op == NULL) luaL_error(L, "%s: out of memory", fname);
  op->S = S;
  corio_future_init(&op->done);
  return op;
}

static int lookup_k(lua_State *L, int status, lua_KContext ctx);

/* the op's userdata is at the top of the stack: wait for it */
static int lookup_wait(lua_State *L, corio_State *S, luatask *t, lookup *op) {
  corio_task_await(&S->loop, &t->core, &op->done);
  t->what = W_DNS;
  return corio__suspend(L, S, lookup_k);
}

/* ------------------------------------------------------------ getaddrinfo */

static const char *const family_names[] = {"any", "inet", "inet6", NULL};
static const int family_values[] = {AF_UNSPEC, AF_INET, AF_INET6};
static const char *const socktype_names[] = {"any", "stream", "dgram", "raw", NULL};
static const int socktype_values[] = {0, SOCK_STREAM, SOCK_DGRAM, SOCK_RAW};
static const char *const protocol_names[] = {"any", "tcp", "udp", NULL};
static const int protocol_values[] = {0, IPPROTO_TCP, IPPROTO_UDP};

static int opt_choice(lua_State *L, int opts, const char *name,
                      const char *const names[], const int values[]) {
  int i = 0;
  if (lua_getfield(L, opts, name) != LUA_TNIL) {
    const char *s = lua_tostring(L, -1);
    if (lua_type(L, -1) != LUA_TSTRING) s = NULL;
    for (i = 0; s != NULL && names[i] != NULL; i++)
      if (strcmp(names[i], s) == 0) break;
    if (s == NULL || names[i] == NULL)
      luaL_error(L, "option '%s': invalid value", name);
  }
  lua_pop(L, 1);
  return values[i];
}

static const char *name_of(int v, const char *const names[], const int values[],
                           int n) {
  int i;
  for (i = 1; i < n; i++)
    if (values[i] == v) return names[i];
  return NULL;
}

static void set_name_or_number(lua_State *L, const char *field, int v,
                               const char *const names[], const int values[],
                               int n) {
  const char *s = name_of(v, names, values, n);
  if (s != NULL) lua_pushstring(L, s);
  else lua_pushinteger(L, v);
  lua_setfield(L, -2, field);
}

/* the answer as a list of {family, address, port, socktype, protocol} */
static int push_addrinfo(lua_State *L, struct addrinfo *res) {
  struct addrinfo *ai;
  int n = 0;
  lua_newtable(L);
  for (ai = res; ai != NULL; ai = ai->ai_next) {
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    lua_createtable(L, 0, 5);
    lua_pushstring(L, ai->ai_family == AF_INET ? "inet" : "inet6");
    lua_setfield(L, -2, "family");
    corio__push_sockaddr(L, ai->ai_addr);
    lua_setfield(L, -3, "port");
    lua_setfield(L, -2, "address");
    set_name_or_number(L, "socktype", ai->ai_socktype, socktype_names,
                       socktype_values, 4);
    set_name_or_number(L, "protocol", ai->ai_protocol, protocol_names,
                       protocol_values, 3);
    lua_rawseti(L, -2, ++n);
  }
  return 1;
}

/* after a wake: raises if the task was cancelled (cancelling the
   request), waits again while the request runs, else the answer: of
   getaddrinfo, the list; of getnameinfo, host and service */
static int lookup_k(lua_State *L, int status, lua_KContext ctx) {
  corio_State *S = (corio_State *)ctx;
  luatask *t = S->current;
  lookup *op = (lookup *)corio__netreq_at(L, -1);
  (void)status;
  if (t->core.wake != CORIO_WAKE_NORMAL && op->r.busy)
    uv_cancel(&op->req.any);  /* fails once it runs: it finishes */
  corio__wake_check(L, S, t);
  if (op->r.busy) return lookup_wait(L, S, t, op);
  if (op->status < 0) return corio__net_error(L, op->status);
  if (op->req.any.type == UV_GETADDRINFO) return push_addrinfo(L, op->res);
  lua_pushstring(L, op->req.gni.host);
  lua_pushstring(L, op->req.gni.service);
  return 2;
}

/* corio.getaddrinfo(host [, port [, opts]]) (suspends) -> list of
   {family, address, port, socktype, protocol}, or nil, msg, code.
   host nil: the loopback address (any address with passive). port: a
   number or a service name. opts: family ("inet", "inet6"), socktype
   ("stream", "dgram", "raw"), protocol ("tcp", "udp"), passive (for a
   bind), numeric (host must be a numeric address: no lookup). */
static int l_getaddrinfo(lua_State *L) {
  corio_State *S = corio__state(L);
  const char *host = lua_isnoneornil(L, 1) ? NULL : corio__check_host(L, 1);
  const char *service = NULL;
  char portstr[16];
  struct addrinfo hints;
  luatask *t;
  lookup *op;
  int err;
  memset(&hints, 0, sizeof hints);
  if (lua_type(L, 2) == LUA_TNUMBER) {
    snprintf(portstr, sizeof portstr, "%d", corio__check_port(L, 2, 0));
    service = portstr;
    hints.ai_flags |= AI_NUMERICSERV;
  }
  else if (!lua_isnoneornil(L, 2)) {
    size_t len;
    service = luaL_checklstring(L, 2, &len);
    luaL_argcheck(L, strlen(service) == len, 2, "service contains a zero byte");
  }
  if (host == NULL && service == NULL)
    return luaL_argerror(L, 1, "a host or a port expected");
  if (corio__opt_table(L, 3)) {
    hints.ai_family = opt_choice(L, 3, "family", family_names, family_values);
    hints.ai_socktype = opt_choice(L, 3, "socktype", socktype_names, socktype_values);
    hints.ai_protocol = opt_choice(L, 3, "protocol", protocol_names, protocol_values);
    hints.ai_flags |= corio__opt_flag(L, 3, "passive", AI_PASSIVE) |
                      corio__opt_flag(L, 3, "numeric", AI_NUMERICHOST);
  }
  t = corio__checkpoint(L, S, "corio.getaddrinfo");
  op = lookup_new(L, S, "corio.getaddrinfo");
  err = uv_getaddrinfo(S->loop.uv, &op->req.gai, on_addrinfo, host, service,
                       &hints);
  if (err) return corio__net_error(L, err);  /* the collector frees op */
  op->r.busy = 1;
  return lookup_wait(L, S, t, op);
}

/* ------------------------------------------------------------ getnameinfo */

/* corio.getnameinfo(address, port [, opts]) or corio.getnameinfo(entry
   [, opts]) with entry {address =, port =} (one of getaddrinfo's) --
   (suspends) -> host, service, or nil, msg, code. address: a numeric
   IPv4 or IPv6 address. opts: numerichost, numericserv, namereqd (fail
   rather than answer with the number), dgram (a UDP service). */
static int l_getnameinfo(lua_State *L) {
  corio_State *S = corio__state(L);
  struct sockaddr_storage ss;
  const char *addr;
  lua_Integer port;
  int flags = 0, opts = 3, err, portarg = 2;
  luatask *t;
  lookup *op;
  if (lua_istable(L, 1)) {  /* {address =, port =} */
    opts = 2;
    portarg = 1;
    lua_settop(L, 2);
    if (lua_getfield(L, 1, "address") != LUA_TSTRING)   /* 3 */
      return luaL_argerror(L, 1, "field 'address': a string expected");
    addr = lua_tostring(L, 3);
    lua_getfield(L, 1, "port");                          /* 4 */
    port = lua_isnil(L, 4) ? 0 : lua_tointeger(L, 4);
    if (!lua_isnil(L, 4) && !lua_isinteger(L, 4))
      return luaL_argerror(L, 1, "field 'port': an integer expected");
  }
  else {
    addr = corio__check_host(L, 1);
    port = luaL_optinteger(L, 2, 0);
    lua_settop(L, 3);
  }
  luaL_argcheck(L, port >= 0 && port <= 65535, portarg, "port out of range");
  memset(&ss, 0, sizeof ss);
  if (uv_ip4_addr(addr, (int)port, (struct sockaddr_in *)&ss) != 0 &&
      uv_ip6_addr(addr, (int)port, (struct sockaddr_in6 *)&ss) != 0)
    return luaL_argerror(L, 1, "a numeric IPv4 or IPv6 address expected");
  if (corio__opt_table(L, opts))
    flags = corio__opt_flag(L, opts, "numerichost", NI_NUMERICHOST) |
            corio__opt_flag(L, opts, "numericserv", NI_NUMERICSERV) |
            corio__opt_flag(L, opts, "namereqd", NI_NAMEREQD) |
            corio__opt_flag(L, opts, "dgram", NI_DGRAM);
  t = corio__checkpoint(L, S, "corio.getnameinfo");
  op = lookup_new(L, S, "corio.getnameinfo");
  err = uv_getnameinfo(S->loop.uv, &op->req.gni, on_nameinfo,
                       (const struct sockaddr *)&ss, flags);
  if (err) return corio__net_error(L, err);
  op->r.busy = 1;
  return lookup_wait(L, S, t, op);
}

const luaL_Reg corio__dns_funcs[] = {
  {"getaddrinfo", l_getaddrinfo},
  {"getnameinfo", l_getnameinfo},
  {NULL, NULL}
};
