/*
** host_accept_oom.c: a server whose accept runs out of memory. The host
** gives its lua_State an allocator that can be told to fail; each
** connection is accepted while the allocations after the first n fail,
** for n = 0, 1, 2... until one is accepted whole. Every connection whose
** accept failed is closed (the client reads the end), reported in one
** line on stderr, and the server goes on: the next connection is served.
** Nothing reaches Lua's panic handler, and the loop closes with
** uv_loop_close == 0 (under ASan: no leak either).
*/
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include "corio.h"
#include "test_core.h"

/* ---------------------------------------------------------------- allocator */

static struct {
  int armed;            /* while set, growing allocations count down... */
  size_t left;          /* ...and fail once this is 0 */
  unsigned attempts;    /* growing allocations seen while armed */
  unsigned failures;    /* of those, the ones refused */
} fa;

/* Lua's allocator, but for growing allocations while armed: only shrinks
   and frees are never refused (Lua assumes they succeed) */
static void *failing_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud;
  if (nsize == 0) {
    free(ptr);
    return NULL;
  }
  if (fa.armed && (ptr == NULL || nsize > osize)) {
    fa.attempts++;
    if (fa.left == 0) {
      fa.failures++;
      return NULL;
    }
    fa.left--;
  }
  return realloc(ptr, nsize);
}

static int real_stderr = 2;  /* stderr itself goes to a file while testing */

static int on_panic(lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  dprintf(real_stderr, "PANIC: unprotected error in call to Lua API (%s)\n",
          msg != NULL ? msg : "?");
  return 0;  /* then abort() */
}

/* ---------------------------------------------------------------- host */

static lua_State *open_host(uv_loop_t *loop) {
  lua_State *L;
  CHECK(uv_loop_init(loop) == 0);
  L = lua_newstate(failing_alloc, NULL);
  CHECK(L != NULL);
  lua_atpanic(L, on_panic);
  luaL_openlibs(L);
  CHECK(luaL_dostring(L, "package.path = '" CORIO_LUA_DIR "/?.lua;"
                      CORIO_LUA_DIR "/?/init.lua;' .. package.path") == LUA_OK);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_corio_core);
  lua_setfield(L, -2, "corio.core");
  lua_pop(L, 1);
  CHECK(luaL_dostring(L, "corio = require 'corio'") == LUA_OK);
  CHECK(corio_attach(L, loop) == 0);
  return L;
}

static void close_host(lua_State *L, uv_loop_t *loop) {
  CHECK(corio_detach(L) == 0);
  CHECK(uv_run(loop, UV_RUN_DEFAULT) == 0);
  lua_close(L);
  CHECK(uv_loop_close(loop) == 0);
}

static lua_Integer global_int(lua_State *L, const char *name) {
  lua_Integer v;
  lua_getglobal(L, name);
  v = lua_tointeger(L, -1);
  lua_pop(L, 1);
  return v;
}

/* a blocking client socket connected to 127.0.0.1:port; reads time out
   after 5 s (a missing answer fails instead of hanging) */
static int connect_to(int port) {
  struct sockaddr_in sa;
  struct timeval tv = { 5, 0 };
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  CHECK(fd >= 0);
  CHECK(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0);
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
  return fd;
}

/* everything the peer sends until it closes (at most cap - 1 bytes) */
static size_t read_all(int fd, char *buf, size_t cap) {
  size_t len = 0;
  ssize_t n;
  while ((n = recv(fd, buf + len, cap - 1 - len, 0)) > 0) len += (size_t)n;
  CHECK(n == 0);  /* the end, not an error or the timeout */
  buf[len] = '\0';
  return len;
}

/* ---------------------------------------------------------------- tests */

#define SERVER \
  "local srv = assert(corio.serve('127.0.0.1', 0, function(s)\n" \
  "  local line = s:read_line()\n" \
  "  s:write('pong ', line, '\\n')\n" \
  "  served = (served or 0) + 1\n" \
  "  server:close()\n" \
  "end))\n" \
  "server = srv\n" \
  "port = select(2, srv:address())\n" \
  "srv:wait_closed()\n" \
  "done = 1\n"

#define DROPPED "corio: serve: cannot start a handler (not enough memory); " \
                "a connection is closed\n"

static void test_accept_out_of_memory(void) {
  uv_loop_t loop;
  lua_State *L;
  FILE *log = tmpfile();
  char buf[4096];
  size_t len, n;
  int port, fd, i, dropped = 0;
  CHECK(log != NULL);
  real_stderr = dup(2);
  CHECK(real_stderr >= 0);
  CHECK(dup2(fileno(log), 2) == 2);
  L = open_host(&loop);
  CHECK(luaL_loadstring(L, SERVER) == LUA_OK);
  CHECK(corio_spawn(L, 0) == 0);
  lua_pop(L, 1);
  for (i = 0; i < 10 && global_int(L, "port") == 0; i++)
    CHECK(uv_run(&loop, UV_RUN_NOWAIT) >= 0);
  port = (int)global_int(L, "port");
  CHECK(port > 0);
  for (n = 0;; n++) {
    CHECK(n < 200);
    fd = connect_to(port);
    fa.left = n;
    fa.attempts = fa.failures = 0;
    fa.armed = 1;
    for (i = 0; i < 100 && fa.attempts == 0; i++)  /* until it is accepted */
      uv_run(&loop, UV_RUN_ONCE);
    fa.armed = 0;
    CHECK(fa.attempts > 0);
    if (fa.failures == 0) break;  /* accepted whole: its handler runs */
    dropped++;
    CHECK(read_all(fd, buf, sizeof buf) == 0);  /* closed without a word */
    CHECK(close(fd) == 0);
  }
  CHECK(dropped >= 2);  /* at least the stream's and the task's userdata */
  printf("  %d accepts failed, one at each allocation, before one went through\n",
         dropped);
  CHECK(send(fd, "ping\n", 5, 0) == 5);
  CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);  /* served, server closed */
  len = read_all(fd, buf, sizeof buf);
  CHECK(len == 10 && memcmp(buf, "pong ping\n", 10) == 0);
  CHECK(close(fd) == 0);
  CHECK(global_int(L, "served") == 1);
  CHECK(global_int(L, "done") == 1);
  close_host(L, &loop);
  /* stderr: one line per connection dropped, nothing else */
  fflush(stderr);
  CHECK(dup2(real_stderr, 2) == 2);
  rewind(log);
  len = fread(buf, 1, sizeof buf - 1, log);
  buf[len] = '\0';
  CHECK(len == (size_t)dropped * strlen(DROPPED));
  for (i = 0; i < dropped; i++)
    CHECK(memcmp(buf + (size_t)i * strlen(DROPPED), DROPPED, strlen(DROPPED)) == 0);
  fclose(log);
}

int main(void) {
  TEST_MAIN_BEGIN();
  RUN(test_accept_out_of_memory);
  TEST_MAIN_END();
}
