/*
** tls_layer.c: the TLS layer under a stream (net.h's netlayer). The
** socket's bytes go into the SSL object through its read BIO; the
** plaintext is appended to the stream's read buffer; what OpenSSL
** writes to its write BIO (handshake messages, records, alerts,
** close_notify) goes to the socket through corio__stream_send.
*/
#ifdef CORIO_HAVE_TLS
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include "tls/tls.h"

#define ROOM 4096      /* the least room given to one SSL_read (as a plain
                          stream reads: a record larger than the room is
                          read in parts, and the buffer stays at its first
                          size rather than doubling) */
#define WCHUNK 65536   /* plaintext encrypted before the ciphertext is sent */

/* what OpenSSL wrote, to the socket (unless held): 0 or the send's error */
static int flush_out(netstream *st, tlslayer *ly) {
  char *data;
  long n;
  uv_buf_t b;
  int err;
  if (ly->hold || ly->wbio == NULL) return 0;  /* held; dropped */
  n = BIO_get_mem_data(ly->wbio, &data);
  if (n <= 0) return 0;
  if (st->werr != 0 || st->h.state == NET_CLOSED) {
    (void)BIO_reset(ly->wbio);
    return st->werr;
  }
  b = uv_buf_init(data, (unsigned int)n);
  err = corio__stream_send(st, &b, 1, (size_t)n);  /* copies what it keeps */
  (void)BIO_reset(ly->wbio);
  return err;
}

/* the failure's message: msg, or OpenSSL's reason (with the certificate
   check's own when that failed) */
void corio__tls_fail(tlslayer *ly, const char *msg) {
  unsigned long e;
  const char *r;
  if (ly->msg[0] != '\0') return;  /* the first one stands */
  if (msg != NULL) {
    snprintf(ly->msg, sizeof ly->msg, "%s", msg);
    return;
  }
  e = ERR_peek_error();
  r = e ? ERR_reason_error_string(e) : NULL;
  ERR_clear_error();
  if (r == NULL) r = ly->eof ? "unexpected eof" : "handshake failed";
  if (SSL_get_verify_result(ly->ssl) != X509_V_OK &&
      ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED)
    snprintf(ly->msg, sizeof ly->msg, "%s: %s", r,
             X509_verify_cert_error_string(SSL_get_verify_result(ly->ssl)));
  else snprintf(ly->msg, sizeof ly->msg, "%s", r);
}

static int unexpected_eof(tlslayer *ly) {
  corio__tls_fail(ly, "unexpected eof");
  return NET_ELAYER;
}

/* one step of the handshake with what the read BIO holds: 0 (done, or
   waiting for the peer or the sni function) or NET_ELAYER */
int corio__tls_step(netstream *st, tlslayer *ly) {
  int r, e;
  ERR_clear_error();
  r = SSL_do_handshake(ly->ssl);
  if (r == 1) {
    ly->done = 1;
    /* a TLS 1.3 server's output now is its session tickets: they go out
       with the first write or the close, not in a packet of their own */
    if (ly->ctx->server && SSL_version(ly->ssl) == TLS1_3_VERSION) ly->hold = 1;
    flush_out(st, ly);
    corio__stream_wake_reader(st);  /* the task in the handshake */
    return 0;
  }
  e = SSL_get_error(ly->ssl, r);
  if (e == SSL_ERROR_WANT_READ) {
    int err = flush_out(st, ly);
    if (err) return err;  /* the handshake's bytes could not go: that ends it */
    return ly->eof ? unexpected_eof(ly) : 0;
  }
  if (e == SSL_ERROR_WANT_CLIENT_HELLO_CB) {
    corio__stream_wake_reader(st);
    return 0;
  }
  corio__tls_fail(ly, NULL);
  flush_out(st, ly);  /* the alert, if any */
  return NET_ELAYER;
}

/* decrypt what the read BIO holds into the read buffer: the bytes
   appended, or the reading's end when none were (with some, the end is
   the stream's rerr and the reading stops) */
ssize_t corio__tls_pull(netstream *st, tlslayer *ly) {
  size_t got = 0;
  int end = 0;
  for (;;) {
    size_t room;
    int r, e;
    if (corio__stream_room(st, ROOM) != 0) {
      end = UV_ENOBUFS;
      break;
    }
    room = st->cap - (st->rpos + st->rlen);
    if (room > INT_MAX) room = INT_MAX;
    ERR_clear_error();
    r = SSL_read(ly->ssl, st->buf + st->rpos + st->rlen, (int)room);
    if (r > 0) {
      st->rlen += (size_t)r;
      got += (size_t)r;
      continue;
    }
    e = SSL_get_error(ly->ssl, r);
    if (e == SSL_ERROR_WANT_READ) break;
    if (e == SSL_ERROR_ZERO_RETURN) end = UV_EOF;  /* close_notify */
    else {
      corio__tls_fail(ly, NULL);
      ly->hold = 0;  /* the alert goes out */
      end = NET_ELAYER;
    }
    break;
  }
  flush_out(st, ly);  /* an alert; a key update's answer (unless held) */
  if (end == 0 && ly->eof) end = ly->eof_ok ? UV_EOF : unexpected_eof(ly);
  if (end == 0 || got == 0) return end != 0 ? end : (ssize_t)got;
  st->rerr = end;  /* the bytes first, then the end */
  if (st->reading) {
    uv_read_stop(&st->stream);
    st->reading = 0;
  }
  return (ssize_t)got;
}

static ssize_t tls_read(netstream *st, const char *p, ssize_t n) {
  tlslayer *ly = (tlslayer *)st->layer;
  if (n > 0) {
    if (BIO_write(ly->rbio, p, (int)n) != (int)n) return UV_ENOBUFS;
  }
  else if (n == UV_EOF) ly->eof = 1;
  else return n;  /* the socket's error */
  if (!ly->done) {
    int err;
    if (ly->sni_wait) return ly->eof ? unexpected_eof(ly) : 0;  /* the task decides */
    err = corio__tls_step(st, ly);
    if (err) return err;
    if (!ly->done) return 0;
  }
  return corio__tls_pull(st, ly);
}

static int tls_write(netstream *st, const uv_buf_t *bufs, int n) {
  tlslayer *ly = (tlslayer *)st->layer;
  int i, err;
  if (!ly->done) {  /* another task wrote while this one shakes hands */
    corio__tls_fail(ly, "write during the handshake");
    return NET_ELAYER;
  }
  ly->hold = 0;  /* the tickets go first, in the same send */
  for (i = 0; i < n; i++) {
    size_t off = 0;
    while (off < bufs[i].len) {
      size_t len = bufs[i].len - off;
      int r;
      if (len > WCHUNK) len = WCHUNK;
      ERR_clear_error();
      r = SSL_write(ly->ssl, bufs[i].base + off, (int)len);
      if (r <= 0) {
        corio__tls_fail(ly, NULL);
        flush_out(st, ly);
        return NET_ELAYER;
      }
      off += (size_t)r;
      if (BIO_pending(ly->wbio) >= WCHUNK && (err = flush_out(st, ly)) != 0)
        return err;
    }
  }
  return ly->ending ? 0 : flush_out(st, ly);  /* ending: tls_close sends */
}

/* close_notify, once, after a finished handshake; then what waits in
   the write BIO goes out, in one send */
static void tls_close(netstream *st) {
  tlslayer *ly = (tlslayer *)st->layer;
  ly->hold = 0;
  ly->ending = 0;
  if (ly->done && !ly->closing && ly->msg[0] == '\0') {
    ly->closing = 1;
    ERR_clear_error();
    SSL_shutdown(ly->ssl);
    ERR_clear_error();
  }
  flush_out(st, ly);
}

static int tls_error(lua_State *L, netstream *st) {
  tlslayer *ly = (tlslayer *)st->layer;
  lua_pushnil(L);
  lua_pushfstring(L, "TLS: %s", ly->msg[0] ? ly->msg : "failed");
  lua_pushliteral(L, "ETLS");
  return 3;
}

/* the SSL object (and its BIOs) of a layer whose stream is closed or
   closing, its last bytes sent or copied: no operation reaches the layer
   any more but its error and its free */
void corio__tls_layer_drop(tlslayer *ly) {
  SSL_free(ly->ssl);
  ly->ssl = NULL;
  ly->rbio = ly->wbio = NULL;
}

static void tls_free(netlayer *l) {
  tlslayer *ly = (tlslayer *)l;
  SSL_free(ly->ssl);
  corio__tlsctx_unref(ly->ctx);
  free(ly->key);
  free(ly);
}

static const netlayer_ops tls_ops = {
  tls_read, tls_write, tls_close, tls_error, tls_free
};

/* a layer for context c (one more reference to it), not yet under a
   stream; NULL when out of memory */
tlslayer *corio__tls_layer_new(tlsctx *c) {
  tlslayer *ly;
  if (c->in == NULL && (c->in = (char *)malloc(NET_CHUNK)) == NULL) return NULL;
  ly = (tlslayer *)calloc(1, sizeof *ly);
  if (ly == NULL) return NULL;
  ly->ssl = SSL_new(c->ctx);
  ly->rbio = BIO_new(BIO_s_mem());
  ly->wbio = BIO_new(BIO_s_mem());
  if (ly->ssl == NULL || ly->rbio == NULL || ly->wbio == NULL) {
    BIO_free(ly->rbio);
    BIO_free(ly->wbio);
    SSL_free(ly->ssl);
    free(ly);
    ERR_clear_error();
    return NULL;
  }
  SSL_set_bio(ly->ssl, ly->rbio, ly->wbio);
  SSL_set_app_data(ly->ssl, ly);
  ly->head.ops = &tls_ops;
  ly->head.in = c->in;  /* shared: each read's bytes are taken at once */
  ly->head.insize = NET_CHUNK;
  ly->ctx = c;
  ly->eof_ok = c->eof_ok;
  c->refs++;
  return ly;
}
#endif
