/*
** tls.h: what the TLS files share (c/lua/tls/). A TLS stream is a plain
** Stream with a layer under it (net.h's netlayer): OpenSSL works on
** memory BIOs, libuv keeps doing the I/O. Ciphertext the socket gives
** goes into the SSL object and the plaintext lands in the stream's read
** buffer, so every read method works as on any stream; plaintext writes
** are encrypted and the ciphertext goes out through the stream's send.
*/
#ifndef CORIO_TLS_H
#define CORIO_TLS_H

#ifdef CORIO_HAVE_TLS
#include <openssl/ssl.h>
#include "net/net.h"

#define TLSCTX_MT "corio.tls.Context"

/* a client session kept for resumption, by server name */
typedef struct tlssession {
  struct tlssession *next;
  SSL_SESSION *sess;
  char name[1];
} tlssession;

/* a context: the SSL_CTX and what corio adds to it. Its userdata holds
   one reference, each layer made from it one more. */
typedef struct tlsctx {
  SSL_CTX *ctx;
  int refs;
  uint8_t server;        /* accepts rather than connects */
  uint8_t verify;        /* client: check the server; server: ask a certificate */
  uint8_t eof_ok;        /* an end without close_notify reads as a plain end */
  uint8_t has_sni;       /* server: its userdata's uservalue is the sni function */
  char *server_name;     /* client: the default name (NULL: the host connected to) */
  unsigned char *alpn;   /* the list in wire form */
  unsigned int alpnlen;
  tlssession *sessions;  /* client: newest first */
  int nsessions;
  char *in;              /* where libuv reads for every layer made from it
                            (NET_CHUNK bytes, made with the first layer):
                            the layer takes the bytes in the read callback */
} tlsctx;

/* the layer under one stream */
typedef struct tlslayer {
  netlayer head;
  SSL *ssl;
  BIO *rbio, *wbio;      /* owned by ssl */
  tlsctx *ctx;           /* the context it was made from (one reference) */
  tlsctx *chosen;        /* server: the sni function's pick, during the handshake */
  uint8_t done;          /* the handshake finished */
  uint8_t eof;           /* the socket ended */
  uint8_t eof_ok;
  uint8_t closing;       /* close_notify was sent */
  uint8_t sni_wait;      /* server: the handshake waits for the sni function */
  uint8_t sni_decided;
  uint8_t hold;          /* server, TLS 1.3: the session tickets wait in the
                            write BIO for the first write (or the close) */
  uint8_t ending;        /* a close follows the next write at once: that
                            write's records go out with close_notify */
  char sni_name[256];    /* server: the name the client asked for */
  char *key;             /* client: the session cache's key, or NULL */
  char msg[256];         /* the ETLS message, once failed */
} tlslayer;

/* tls_context.c */
tlsctx *corio__tlsctx_check(lua_State *L, int idx);  /* a Context, or NULL */
int corio__tlsctx_push(lua_State *L, int opts, const char *fname, int server);
void corio__tlsctx_unref(tlsctx *c);
void corio__tlsctx_resume(tlsctx *c, SSL *ssl, const char *key);  /* client */
void corio__open_tlsctx(lua_State *L);

/* tls_layer.c */
tlslayer *corio__tls_layer_new(tlsctx *c);
void corio__tls_layer_drop(tlslayer *ly);  /* its SSL object goes now */
int corio__tls_step(netstream *st, tlslayer *ly);  /* 0 or NET_ELAYER */
ssize_t corio__tls_pull(netstream *st, tlslayer *ly);
void corio__tls_fail(tlslayer *ly, const char *msg);  /* msg or OpenSSL's */
#endif

#endif
