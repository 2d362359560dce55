/*
** tls_context.c: corio.tls.context(opts), a reusable SSL_CTX with
** corio's defaults (verification on, TLS 1.2 at least), its options
** (certificates as files or PEM strings, ALPN, ciphers, the server's
** sni function) and the client's session cache for resumption.
*/
#ifdef CORIO_HAVE_TLS
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include "tls/tls.h"

#define MAX_SESSIONS 64

void corio__tlsctx_unref(tlsctx *c) {
  tlssession *s;
  if (--c->refs > 0) return;
  while ((s = c->sessions) != NULL) {
    c->sessions = s->next;
    SSL_SESSION_free(s->sess);
    free(s);
  }
  SSL_CTX_free(c->ctx);
  free(c->in);
  free(c->server_name);
  free(c->alpn);
  free(c);
}

tlsctx *corio__tlsctx_check(lua_State *L, int idx) {
  tlsctx **box = (tlsctx **)luaL_testudata(L, idx, TLSCTX_MT);
  return box != NULL ? *box : NULL;
}

static int ctx_gc(lua_State *L) {
  tlsctx **box = (tlsctx **)luaL_checkudata(L, 1, TLSCTX_MT);
  if (*box != NULL) corio__tlsctx_unref(*box);
  *box = NULL;
  return 0;
}

static int ctx_tostring(lua_State *L) {
  tlsctx *c = *(tlsctx **)luaL_checkudata(L, 1, TLSCTX_MT);
  lua_pushfstring(L, "TLS context (%s)", c != NULL && c->server ? "server" : "client");
  return 1;
}

/* ------------------------------------------------------------ sessions */

/* the client's new session (a TLS 1.3 ticket arrives after the
   handshake): kept under the layer's key, newest first */
static int on_new_session(SSL *ssl, SSL_SESSION *sess) {
  tlslayer *ly = (tlslayer *)SSL_get_app_data(ssl);
  tlsctx *c = ly->ctx;
  tlssession *s, **pp;
  size_t len;
  int n = 0;
  if (ly->key == NULL) return 0;
  len = strlen(ly->key);
  for (pp = &c->sessions; *pp != NULL; pp = &(*pp)->next)  /* drop the old one */
    if (strcmp((*pp)->name, ly->key) == 0) {
      s = *pp;
      *pp = s->next;
      SSL_SESSION_free(s->sess);
      free(s);
      c->nsessions--;
      break;
    }
  s = (tlssession *)malloc(offsetof(tlssession, name) + len + 1);
  if (s == NULL) return 0;
  memcpy(s->name, ly->key, len + 1);
  s->sess = sess;  /* we keep the reference OpenSSL gives (returning 1) */
  s->next = c->sessions;
  c->sessions = s;
  c->nsessions++;
  for (pp = &c->sessions; *pp != NULL; pp = &(*pp)->next)  /* bound the list */
    if (++n > MAX_SESSIONS) {
      tlssession *old = *pp;
      *pp = NULL;
      while (old != NULL) {
        tlssession *next = old->next;
        SSL_SESSION_free(old->sess);
        free(old);
        c->nsessions--;
        old = next;
      }
      break;
    }
  return 1;
}

/* the client offers the session kept under key, if any */
void corio__tlsctx_resume(tlsctx *c, SSL *ssl, const char *key) {
  tlssession *s;
  for (s = c->sessions; s != NULL; s = s->next)
    if (strcmp(s->name, key) == 0) {
      if (SSL_SESSION_is_resumable(s->sess)) SSL_set_session(ssl, s->sess);
      return;
    }
}

/* ------------------------------------------------------------ callbacks */

/* server: the first protocol of ours the client offers */
static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg) {
  tlsctx *c = (tlsctx *)arg;
  unsigned char *o;
  (void)ssl;
  if (SSL_select_next_proto(&o, outlen, c->alpn, c->alpnlen, in, inlen)
      != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;
  *out = o;
  return SSL_TLSEXT_ERR_OK;
}

/* server with an sni function: the first time, the name is noted and
   the handshake pauses (the waiting task calls the function); the
   second, the context it chose takes over */
static int on_client_hello(SSL *ssl, int *alert, void *arg) {
  tlslayer *ly = (tlslayer *)SSL_get_app_data(ssl);
  const unsigned char *p;
  size_t len;
  (void)alert;
  (void)arg;
  if (ly->sni_decided) {
    if (ly->chosen != NULL && SSL_set_SSL_CTX(ssl, ly->chosen->ctx) == NULL)
      return SSL_CLIENT_HELLO_ERROR;
    return SSL_CLIENT_HELLO_SUCCESS;
  }
  ly->sni_name[0] = '\0';
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len) &&
      len >= 5 && p[2] == TLSEXT_NAMETYPE_host_name) {
    size_t n = ((size_t)p[3] << 8) | p[4];
    if (n <= len - 5 && n < sizeof ly->sni_name) {
      memcpy(ly->sni_name, p + 5, n);
      ly->sni_name[n] = '\0';
    }
  }
  ly->sni_wait = 1;
  return SSL_CLIENT_HELLO_RETRY;
}

/* ------------------------------------------------------------ options */

static const char *opt_string(lua_State *L, int opts, const char *name,
                              const char *fname) {
  const char *s = NULL;
  if (opts == 0) return NULL;
  lua_getfield(L, opts, name);
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "%s: option '%s': a string expected", fname, name);
    s = lua_tostring(L, -1);  /* the table keeps it */
  }
  lua_pop(L, 1);
  return s;
}

static int opt_bool(lua_State *L, int opts, const char *name, int dflt) {
  int v = dflt;
  if (opts == 0) return dflt;
  lua_getfield(L, opts, name);
  if (!lua_isnil(L, -1)) v = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

/* OpenSSL's reason for the last failure, as "TLS: what: reason" */
static int push_ssl_error(lua_State *L, const char *what) {
  unsigned long e = ERR_peek_last_error();
  const char *r = e ? ERR_reason_error_string(e) : NULL;
  ERR_clear_error();
  lua_pushnil(L);
  lua_pushfstring(L, "TLS: %s: %s", what, r != NULL ? r : "failed");
  lua_pushliteral(L, "ETLS");
  return 3;
}

/* a file option naming a file that cannot be read: nil, "TLS: what:
   path: reason", "ETLS" (OpenSSL's own reason would be "system lib") */
static int unreadable(lua_State *L, const char *what, const char *path) {
  FILE *f;
  if (path == NULL || strstr(path, "-----BEGIN ") != NULL) return 0;
  f = fopen(path, "r");
  if (f != NULL) {
    fclose(f);
    return 0;
  }
  lua_pushnil(L);
  lua_pushfstring(L, "TLS: %s: %s: %s", what, path, strerror(errno));
  lua_pushliteral(L, "ETLS");
  return 3;
}

static int is_pem(const char *s) {
  return strstr(s, "-----BEGIN ") != NULL;
}

/* the certificate and its chain: a file or a PEM string */
static int use_cert(SSL_CTX *ctx, const char *s) {
  BIO *b;
  X509 *x;
  int ok;
  if (!is_pem(s)) return SSL_CTX_use_certificate_chain_file(ctx, s) == 1;
  b = BIO_new_mem_buf(s, -1);
  if (b == NULL) return 0;
  x = PEM_read_bio_X509_AUX(b, NULL, NULL, NULL);
  ok = x != NULL && SSL_CTX_use_certificate(ctx, x) == 1;
  X509_free(x);
  SSL_CTX_clear_chain_certs(ctx);
  while (ok && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
    if (SSL_CTX_add0_chain_cert(ctx, x) != 1) {
      X509_free(x);
      ok = 0;
    }
  ERR_clear_error();  /* the end of the PEM data */
  BIO_free(b);
  return ok;
}

static int use_key(SSL_CTX *ctx, const char *s) {
  BIO *b;
  EVP_PKEY *k;
  int ok;
  if (!is_pem(s)) return SSL_CTX_use_PrivateKey_file(ctx, s, SSL_FILETYPE_PEM) == 1;
  b = BIO_new_mem_buf(s, -1);
  if (b == NULL) return 0;
  k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
  ok = k != NULL && SSL_CTX_use_PrivateKey(ctx, k) == 1;
  EVP_PKEY_free(k);
  BIO_free(b);
  return ok;
}

/* CA certificates from a PEM string into the context's store */
static int add_cas(SSL_CTX *ctx, const char *s) {
  X509_STORE *store = SSL_CTX_get_cert_store(ctx);
  BIO *b = BIO_new_mem_buf(s, -1);
  X509 *x;
  int n = 0;
  if (b == NULL) return 0;
  while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
    if (X509_STORE_add_cert(store, x) == 1) n++;
    X509_free(x);
  }
  ERR_clear_error();
  BIO_free(b);
  return n > 0;
}

/* the option `name` (its value v) as a protocol version; dflt when unset
   (0: any) */
static int parse_version(lua_State *L, const char *v, const char *name,
                         int dflt, const char *fname) {
  if (v == NULL) return dflt;
  if (strcmp(v, "1.2") == 0 || strcmp(v, "TLSv1.2") == 0) return TLS1_2_VERSION;
  if (strcmp(v, "1.3") == 0 || strcmp(v, "TLSv1.3") == 0) return TLS1_3_VERSION;
  return luaL_error(L, "%s: option '%s': \"1.2\" or \"1.3\" expected", fname, name);
}

/* the alpn list in wire form (each name: its length, then it) */
static void read_alpn(lua_State *L, int opts, tlsctx *c, const char *fname) {
  lua_Integer i, n;
  size_t total = 0;
  int list;
  lua_getfield(L, opts, "alpn");
  list = lua_gettop(L);
  if (lua_isnil(L, list)) {
    lua_pop(L, 1);
    return;
  }
  if (!lua_istable(L, list))
    luaL_error(L, "%s: option 'alpn': a list of strings expected", fname);
  n = (lua_Integer)lua_rawlen(L, list);
  for (i = 1; i <= n; i++) {
    size_t len = 0;
    lua_rawgeti(L, list, i);
    if (lua_type(L, -1) == LUA_TSTRING) lua_tolstring(L, -1, &len);
    if (len == 0 || len > 255)
      luaL_error(L, "%s: option 'alpn': protocol names of 1 to 255 bytes expected", fname);
    total += len + 1;
    lua_pop(L, 1);
  }
  if (total > 0 && (c->alpn = (unsigned char *)malloc(total)) != NULL) {
    for (i = 1; i <= n; i++) {
      size_t len;
      const char *s;
      lua_rawgeti(L, list, i);
      s = lua_tolstring(L, -1, &len);
      c->alpn[c->alpnlen++] = (unsigned char)len;
      memcpy(c->alpn + c->alpnlen, s, len);
      c->alpnlen += (unsigned int)len;
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
}

/* opts (a table at opts, or 0) -> a Context userdata pushed (1), or nil,
   msg, "ETLS" when OpenSSL refuses a file or a setting (3); misuse
   raises. server: the default of the 'server' option. */
int corio__tlsctx_push(lua_State *L, int opts, const char *fname, int server) {
  tlsctx **box, *c;
  const char *s, *cert, *key, *cafile, *capath, *cadata;
  SSL_CTX *ctx;
  if (opts != 0 && !lua_istable(L, opts))
    luaL_error(L, "%s: options: a table expected", fname);
  box = (tlsctx **)lua_newuserdatauv(L, sizeof *box, 1);
  *box = NULL;
  luaL_setmetatable(L, TLSCTX_MT);
  server = opt_bool(L, opts, "server", server);
  cert = opt_string(L, opts, "cert", fname);
  key = opt_string(L, opts, "key", fname);
  cafile = opt_string(L, opts, "ca_file", fname);
  capath = opt_string(L, opts, "ca_path", fname);
  cadata = opt_string(L, opts, "ca", fname);
  if (server && cert == NULL)
    luaL_error(L, "%s: a server context needs option 'cert'", fname);
  if ((cert == NULL) != (key == NULL))
    luaL_error(L, "%s: options 'cert' and 'key' go together", fname);
  if (opts != 0) {
    lua_getfield(L, opts, "sni");
    if (!lua_isnil(L, -1) && !lua_isfunction(L, -1))
      luaL_error(L, "%s: option 'sni': a function expected", fname);
    lua_pop(L, 1);
  }
  c = (tlsctx *)calloc(1, sizeof *c);
  if (c == NULL) luaL_error(L, "%s: out of memory", fname);
  ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (ctx == NULL) {
    free(c);
    return push_ssl_error(L, "context");
  }
  c->ctx = ctx;
  c->refs = 1;
  *box = c;  /* from here the userdata frees it */
  c->server = (uint8_t)server;
  c->verify = (uint8_t)opt_bool(L, opts, "verify", !server);
  c->eof_ok = (uint8_t)opt_bool(L, opts, "ignore_unexpected_eof", 0);
  SSL_CTX_set_app_data(ctx, c);
  SSL_CTX_set_min_proto_version(ctx, parse_version(L, opt_string(L, opts, "min_version", fname),
                                                   "min_version", TLS1_2_VERSION, fname));
  SSL_CTX_set_max_proto_version(ctx, parse_version(L, opt_string(L, opts, "max_version", fname),
                                                   "max_version", 0, fname));
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  if ((s = opt_string(L, opts, "server_name", fname)) != NULL) {
    c->server_name = strdup(s);
    if (c->server_name == NULL) luaL_error(L, "%s: out of memory", fname);
  }
  if ((s = opt_string(L, opts, "ciphers", fname)) != NULL &&
      SSL_CTX_set_cipher_list(ctx, s) != 1)
    return push_ssl_error(L, "ciphers");
  if ((s = opt_string(L, opts, "ciphersuites", fname)) != NULL &&
      SSL_CTX_set_ciphersuites(ctx, s) != 1)
    return push_ssl_error(L, "ciphersuites");
  if (unreadable(L, "cert", cert) || unreadable(L, "key", key) ||
      unreadable(L, "ca_file", cafile))
    return 3;
  if (cert != NULL && !use_cert(ctx, cert)) return push_ssl_error(L, "cert");
  if (key != NULL && !use_key(ctx, key)) return push_ssl_error(L, "key");
  if (key != NULL && SSL_CTX_check_private_key(ctx) != 1)
    return push_ssl_error(L, "key");
  if (c->verify) {
    if (cafile != NULL || capath != NULL) {
      if (SSL_CTX_load_verify_locations(ctx, cafile, capath) != 1)
        return push_ssl_error(L, cafile != NULL ? "ca_file" : "ca_path");
    }
    else if (cadata == NULL && SSL_CTX_set_default_verify_paths(ctx) != 1)
      return push_ssl_error(L, "the system CA store");
    if (cadata != NULL && !add_cas(ctx, cadata)) return push_ssl_error(L, "ca");
    SSL_CTX_set_verify(ctx, server ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT
                                   : SSL_VERIFY_PEER, NULL);
    if (server && cafile != NULL) {  /* the names the server asks for */
      STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cafile);
      if (names != NULL) SSL_CTX_set_client_CA_list(ctx, names);
    }
  }
  if (opts != 0) read_alpn(L, opts, c, fname);
  if (server) {
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"corio", 5);
    if (c->alpn != NULL) SSL_CTX_set_alpn_select_cb(ctx, on_alpn, c);
    if (opts != 0) {
      lua_getfield(L, opts, "sni");
      if (lua_isfunction(L, -1)) {
        c->has_sni = 1;
        lua_setiuservalue(L, -2, 1);
        SSL_CTX_set_client_hello_cb(ctx, on_client_hello, NULL);
      }
      else lua_pop(L, 1);
    }
  }
  else {
    if (c->alpn != NULL && SSL_CTX_set_alpn_protos(ctx, c->alpn, c->alpnlen) != 0)
      return push_ssl_error(L, "alpn");
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT |
                                        SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, on_new_session);
  }
  ERR_clear_error();
  return 1;
}

/* corio.tls.context([opts]) -> a Context, or nil, msg, "ETLS" */
static int l_context(lua_State *L) {
  int opts = lua_isnoneornil(L, 1) ? 0 : 1;
  return corio__tlsctx_push(L, opts, "corio.tls.context", 0);
}

/* context:sessions() -> how many client sessions are kept */
static int ctx_sessions(lua_State *L) {
  tlsctx *c = *(tlsctx **)corio__check_self(L, 1, TLSCTX_MT, "context:sessions",
                                            "TLS context");
  lua_pushinteger(L, c != NULL ? c->nsessions : 0);
  return 1;
}

static const luaL_Reg ctx_methods[] = {
  {"sessions", ctx_sessions},
  {NULL, NULL}
};

void corio__open_tlsctx(lua_State *L) {
  luaL_newmetatable(L, TLSCTX_MT);
  luaL_newlib(L, ctx_methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, ctx_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, ctx_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
}

const luaL_Reg corio__tlsctx_funcs[] = {
  {"tls_context", l_context},
  {NULL, NULL}
};
#endif
