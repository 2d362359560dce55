/*
** fuzz_stream_reader.c: the stream reader (c/lua/net/stream_read.c:
** read_line, read_until, read_exactly, read, read_all) over arbitrary
** chunk splits, checked against a plain Lua model.
**
** The reader lives in the Lua binding, so the target embeds Lua as a host
** application does (lua_host.h). Each input runs stream_reader.lua's
** function as a task: a Unix socket server reads with a program decoded
** from the input while a client writes the input's data in fuzzed chunks.
** A difference from the model, an error in the task, or anything left on
** the loop afterwards aborts (libFuzzer keeps the input).
*/
#include <stdio.h>
#include <unistd.h>
#include <lauxlib.h>
#include "lua_host.h"

#define FUZZ_MAX_INPUT 8192

static char path[64];

/* fuzz_abort(msg): a difference from the model stops the run at once */
static int l_abort(lua_State *L1) {
  fuzz_host_die(luaL_checkstring(L1, 1));
  return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  lua_State *L;
  (void)argc;
  (void)argv;
  snprintf(path, sizeof path, "/tmp/corio-fuzz-%d.sock", (int)getpid());
  L = fuzz_host_init("fuzz_stream_reader", NULL, CORIO_FUZZ_DIR "/stream_reader.lua");
  lua_register(L, "fuzz_abort", l_abort);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > FUZZ_MAX_INPUT) return -1;  /* not added to the corpus */
  fuzz_host_run(data, size, path);
  unlink(path);
  return 0;
}
