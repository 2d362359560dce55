/*
** tls.c: the Lua face of TLS: corio.tls.wrap(stream, opts) and
** stream:start_tls(opts) (a layer goes under the stream, then the
** handshake, which suspends), stream:tls_info(). The stream stays the
** same object: every Stream method works on it as before, on plaintext.
*/
#ifdef CORIO_HAVE_TLS
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include "tls/tls.h"

/* a numeric IPv4 or IPv6 address (checked as such, sent without SNI) */
static int is_ip(const char *s) {
  unsigned char a[16];
  return uv_inet_pton(AF_INET, s, a) == 0 || uv_inet_pton(AF_INET6, s, a) == 0;
}

/* a failed handshake: the alert goes out, then the stream closes */
static int hs_failed(lua_State *L, netstream *st, int err) {
  int n = corio__stream_error(L, st, err);
  corio__stream_close_soon(st);
  return n;
}

static int hs_check(lua_State *L, corio_State *S, netstream *st, luatask *t);

static int hs_k(lua_State *L, int status, lua_KContext ctx) {
  corio_State *S = (corio_State *)ctx;
  luatask *t = S->current;
  netstream *st = *(netstream **)lua_touserdata(L, 1);
  (void)status;
  corio__stream_wait_end(st);
  st->reader = NULL;
  if (t->core.wake != CORIO_WAKE_NORMAL) {  /* cancelled, timed out */
    corio__stream_close_now(st);
    corio__wake_check(L, S, t);  /* raises */
  }
  t->what = W_NONE;
  return hs_check(L, S, st, t);
}

/* the server's sni function (the context's uservalue) picks a context
   for the name the client sent: 0, or NET_ELAYER */
static int run_sni(lua_State *L, netstream *st, tlslayer *ly, int ctxidx) {
  int err;
  ly->sni_wait = 0;
  ly->sni_decided = 1;
  lua_getiuservalue(L, ctxidx, 1);
  lua_pushstring(L, ly->sni_name);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    char msg[200];
    snprintf(msg, sizeof msg, "sni function: %s",
             lua_isstring(L, -1) ? lua_tostring(L, -1) : "error");
    lua_pop(L, 1);
    corio__tls_fail(ly, msg);
    return NET_ELAYER;
  }
  if (!lua_isnil(L, -1)) {
    tlsctx *c = corio__tlsctx_check(L, -1);
    if (c == NULL || !c->server) {
      lua_pop(L, 1);
      corio__tls_fail(ly, "sni function: a server context or nil expected");
      return NET_ELAYER;
    }
    ly->chosen = c;
  }
  err = corio__tls_step(st, ly);  /* the chosen context is still on the stack */
  lua_pop(L, 1);
  ly->chosen = NULL;
  if (err == 0 && ly->done) {
    ssize_t n = corio__tls_pull(st, ly);
    if (n < 0) st->rerr = (int)n;
  }
  return err;
}

/* where the handshake stands: the stream (done), an error, or wait */
static int hs_check(lua_State *L, corio_State *S, netstream *st, luatask *t) {
  tlslayer *ly = (tlslayer *)st->layer;
  if (st->h.state != NET_OPEN) {  /* closed by another task meanwhile */
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
  }
  if (ly->sni_wait && st->rerr == 0) {
    int err = run_sni(L, st, ly, 2);
    if (err) return hs_failed(L, st, err);
  }
  if (ly->done) {
    lua_settop(L, 1);
    return 1;
  }
  if (st->werr) return hs_failed(L, st, st->werr);  /* a failed send, before the end it led to */
  if (st->rerr) return hs_failed(L, st, st->rerr);
  if (corio__stream_read_more(st) != 0)  /* libuv refused to read */
    return hs_failed(L, st, st->rerr);
  st->reader = t;
  corio__stream_wait_begin(st, t);
  corio_task_park(&S->loop, &t->core);
  return corio__suspend(L, S, hs_k);
}

/* the session cache's key: the name, or the peer's address */
static char *session_key(netstream *st, const char *name) {
  char buf[96];
  if (name != NULL) return strdup(name);
  if (st->type == NS_TCP) {
    struct sockaddr_storage ss;
    int len = (int)sizeof ss;
    if (uv_tcp_getpeername(&st->tcp, (struct sockaddr *)&ss, &len) == 0) {
      char host[64];
      int port;
      if (ss.ss_family == AF_INET6) {
        uv_ip6_name((struct sockaddr_in6 *)&ss, host, sizeof host);
        port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
      }
      else {
        uv_ip4_name((struct sockaddr_in *)&ss, host, sizeof host);
        port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
      }
      snprintf(buf, sizeof buf, "%s:%d", host, port);
      return strdup(buf);
    }
  }
  return NULL;
}

/* the client's name checks: SNI and the certificate's host */
static int set_name(tlslayer *ly, const char *name) {
  if (name == NULL) return 1;
  if (is_ip(name)) {
    if (ly->ctx->verify &&
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ly->ssl), name) != 1) return 0;
    return 1;
  }
  if (SSL_set_tlsext_host_name(ly->ssl, name) != 1) return 0;
  if (ly->ctx->verify && SSL_set1_host(ly->ssl, name) != 1) return 0;
  return 1;
}

/* stream at 1, opts at 2 (a Context, a table or nil) */
static int wrap(lua_State *L, const char *fname) {
  corio_State *S = corio__state(L);
  netstream *st = corio__stream_check_open(L, S, fname);
  tlsctx *c;
  tlslayer *ly;
  luatask *t;
  const char *name = NULL;
  int err;
  if (st->type == NS_FILE || st->type == NS_TTY)
    return luaL_error(L, "%s: a socket or pipe stream expected", fname);
  if (st->layer != NULL) return luaL_error(L, "%s: the stream is already TLS", fname);
  if (st->reader != NULL) return luaL_error(L, "%s: another task is reading", fname);
  if (st->shut) return luaL_error(L, "%s: the stream is shut down", fname);
  lua_settop(L, 2);
  t = corio__checkpoint(L, S, fname);
  if (lua_istable(L, 2)) {  /* {context = Context, server_name = s} or options */
    lua_getfield(L, 2, "server_name");
    if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING)
      return luaL_error(L, "%s: option 'server_name': a string expected", fname);
    name = lua_tostring(L, -1);  /* the table keeps it */
    lua_pop(L, 1);
    lua_getfield(L, 2, "context");
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      if (corio__tlsctx_push(L, 2, fname, 0) != 1) {  /* OpenSSL refused a file */
        corio__stream_close_soon(st);
        return 3;
      }
    }
    else if (corio__tlsctx_check(L, -1) == NULL)
      return luaL_error(L, "%s: option 'context': a TLS context expected", fname);
    lua_insert(L, 2);  /* the table stays (it holds the name) */
  }
  else if (lua_isnil(L, 2)) {
    if (corio__tlsctx_push(L, 0, fname, 0) != 1) return 3;
    lua_replace(L, 2);
  }
  else if (corio__tlsctx_check(L, 2) == NULL)
    return luaL_error(L, "%s: bad argument #2 (TLS context or options table "
                         "expected, got %s)", fname, luaL_typename(L, 2));
  c = corio__tlsctx_check(L, 2);
  if (name == NULL) name = c->server_name;
  ly = corio__tls_layer_new(c);
  if (ly == NULL) return luaL_error(L, "%s: out of memory", fname);
  if (!c->server && !set_name(ly, name)) {
    ly->head.ops->free(&ly->head);
    return luaL_error(L, "%s: bad server_name", fname);
  }
  if (!c->server) {
    ly->key = session_key(st, name);
    if (ly->key != NULL) corio__tlsctx_resume(c, ly->ssl, ly->key);
    SSL_set_connect_state(ly->ssl);
  }
  else SSL_set_accept_state(ly->ssl);
  if (st->olen > 0) corio__stream_flush(st);  /* the plain bytes go first */
  if (st->rlen > 0) {  /* read ahead after the plain exchange: the peer's TLS */
    BIO_write(ly->rbio, st->buf + st->rpos, (int)st->rlen);
    st->rpos = st->rlen = st->scanned = 0;
  }
  if (st->rerr == UV_EOF) {
    ly->eof = 1;
    st->rerr = 0;
  }
  st->layer = &ly->head;
  if (st->werr) return hs_failed(L, st, st->werr);
  if (st->rerr) return hs_failed(L, st, st->rerr);
  err = corio__tls_step(st, ly);
  if (err) return hs_failed(L, st, err);
  return hs_check(L, S, st, t);
}

/* corio.tls.wrap(stream [, opts | context]) (suspends) -> the stream,
   now TLS, or nil, msg, code (the stream is then closed) */
static int l_wrap(lua_State *L) {
  return wrap(L, "corio.tls.wrap");
}

/* stream:start_tls([opts | context]) (suspends): the same */
static int s_start_tls(lua_State *L) {
  return wrap(L, "stream:start_tls");
}

static void push_name(lua_State *L, X509_NAME *n) {
  BIO *b = BIO_new(BIO_s_mem());
  char *data;
  long len;
  if (b == NULL || X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253) < 0) {
    BIO_free(b);
    lua_pushnil(L);
    return;
  }
  len = BIO_get_mem_data(b, &data);
  lua_pushlstring(L, data, (size_t)len);
  BIO_free(b);
}

/* stream:tls_info() -> {protocol, cipher, alpn, server_name, subject,
   issuer, resumed} for a TLS stream, nil for a plain one */
static int s_tls_info(lua_State *L) {
  netstream *st = corio__stream_check_open(L, corio__state(L), "stream:tls_info");
  tlslayer *ly = st != NULL ? (tlslayer *)st->layer : NULL;
  const unsigned char *alpn;
  unsigned int alpnlen;
  const char *sn;
  X509 *peer;
  if (ly == NULL || !ly->done) {  /* plain, closed, or not yet TLS */
    lua_pushnil(L);
    return 1;
  }
  lua_createtable(L, 0, 8);
  lua_pushstring(L, SSL_get_version(ly->ssl));
  lua_setfield(L, -2, "protocol");
  lua_pushstring(L, SSL_CIPHER_get_name(SSL_get_current_cipher(ly->ssl)));
  lua_setfield(L, -2, "cipher");
  SSL_get0_alpn_selected(ly->ssl, &alpn, &alpnlen);
  if (alpnlen > 0) {
    lua_pushlstring(L, (const char *)alpn, alpnlen);
    lua_setfield(L, -2, "alpn");
  }
  sn = SSL_get_servername(ly->ssl, TLSEXT_NAMETYPE_host_name);
  if (sn != NULL) {
    lua_pushstring(L, sn);
    lua_setfield(L, -2, "server_name");
  }
  peer = SSL_get1_peer_certificate(ly->ssl);
  if (peer != NULL) {
    push_name(L, X509_get_subject_name(peer));
    lua_setfield(L, -2, "subject");
    push_name(L, X509_get_issuer_name(peer));
    lua_setfield(L, -2, "issuer");
    X509_free(peer);
  }
  lua_pushboolean(L, SSL_session_reused(ly->ssl));
  lua_setfield(L, -2, "resumed");
  lua_pushboolean(L, ly->ctx->server);
  lua_setfield(L, -2, "server");
  return 1;
}

/* core.tls_release(stream): a TLS server connection's handler has
   returned: the stream closes as the end of the handler closes it (the
   gathered bytes, close_notify, then the socket once flushed), and its
   SSL object is freed now, not when the Stream is collected, so that the
   handshakes that follow reuse warm memory */
static int l_release(lua_State *L) {
  corio_State *S = corio__state(L);
  netstream *st = *corio__stream_box(L, S, "corio.tls");
  if (st == NULL) return 0;
  if (st->h.state == NET_OPEN) {
    /* close_soon writes what was gathered, then calls the layer's close
       (unless that write failed): the records and close_notify go out in
       one send */
    if (st->layer != NULL) ((tlslayer *)st->layer)->ending = 1;
    corio__stream_close_soon(st);
  }
  if (st->layer != NULL && st->h.state != NET_OPEN)
    corio__tls_layer_drop((tlslayer *)st->layer);
  return 0;
}

static const luaL_Reg stream_tls_methods[] = {
  {"start_tls", s_start_tls},
  {"tls_info", s_tls_info},
  {NULL, NULL}
};

static int l_available(lua_State *L) {
  lua_pushboolean(L, 1);
  lua_pushstring(L, OpenSSL_version(OPENSSL_VERSION));
  return 2;
}

const luaL_Reg corio__tls_funcs[] = {
  {"tls_wrap", l_wrap},
  {"tls_available", l_available},
  {"tls_release", l_release},
  {NULL, NULL}
};

/* stack: the state userdata at -1. The Context metatable; start_tls
   and tls_info join the Stream's methods. */
void corio__open_tls(lua_State *L) {
  corio__open_tlsctx(L);
  luaL_getmetatable(L, STREAM_MT);
  lua_getfield(L, -1, "__index");
  lua_pushvalue(L, -3);
  luaL_setfuncs(L, stream_tls_methods, 1);
  lua_pop(L, 2);
}
#endif
