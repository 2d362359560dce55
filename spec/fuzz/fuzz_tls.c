/*
** fuzz_tls.c: the TLS record path (c/lua/tls/): arbitrary bytes as the
** peer's records, for a corio TLS stream in the client and in the server
** role, and a real handshake and exchange between two corio TLS streams
** through a proxy that flips, inserts, drops or cuts bytes, or passes them
** on in small pieces, as the input says.
**
** Like fuzz_stream_reader, the target embeds Lua as a host application
** does (lua_host.h). Each input runs tls_records.lua's function
** as a task over Unix sockets. A failure that is not clean (ETLS,
** ECONNRESET, EPIPE or "closed"), bytes read that the other side never
** sent, a side that does not end once its peer is gone, an error in the
** task, or anything left on the loop afterwards aborts (libFuzzer keeps
** the input); ASan and UBSan watch the rest.
*/
#include <stdio.h>
#include <unistd.h>
#include "lua_host.h"

#define FUZZ_MAX_INPUT 8192

static char path[64];

static void unlink_all(void) {
  char p[80];
  unlink(path);
  snprintf(p, sizeof p, "%s.s", path);
  unlink(p);
  snprintf(p, sizeof p, "%s.p", path);
  unlink(p);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  snprintf(path, sizeof path, "/tmp/corio-fuzz-tls-%d.sock", (int)getpid());
  fuzz_host_init("fuzz_tls", "assert(corio.tls.available(), 'this corio has no TLS')",
                 CORIO_FUZZ_DIR "/tls_records.lua");
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > FUZZ_MAX_INPUT) return -1;  /* not added to the corpus */
  unlink_all();
  fuzz_host_run(data, size, path);
  unlink_all();
  return 0;
}
