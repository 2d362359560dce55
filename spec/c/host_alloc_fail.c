/*
** host_alloc_fail.c: allocation failure swept over scenarios.
**
** The host gives its lua_State an allocator that, once armed, refuses the
** k-th growing allocation and the one after it (Lua retries a refused
** allocation once, after an emergency collection, so two refusals in a row
** make it raise). Each scenario is a piece of Lua run as a task; it is run
** once to count its allocations, then again for k over that count (every
** k, or evenly spaced ones when there are many; ALLOC_FAIL_FULL=1 takes
** every k; under valgrind, about 2 per scenario). Each run happens in a
** child process and must end with:
**  - no crash, no abort (Lua's panic), no hang;
**  - the scenario finished, or "not enough memory" reached Lua code: the
**    task that asked (its error), the error handler (a task nobody awaited),
**    or stderr (a server that could not start a handler says so);
**  - corio_detach == 0, the loop empty, uv_loop_close == 0, and under ASan
**    no leak (LeakSanitizer runs at the child's exit).
** A scenario known to fail is skipped with its reason (ALLOC_FAIL_KNOWN=1
** sweeps it too, reports its failures without failing, and says when it no
** longer fails); ALLOC_FAIL_ONLY="name=k" runs one case in this process.
*/
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include <errno.h>
#include <sys/mman.h>
#include "corio.h"
#include "test_core.h"

/* ---------------------------------------------------------------- allocator */

static struct {
  int armed;
  unsigned long attempts;  /* growing allocations seen while armed */
  unsigned long fail_at;   /* refuse attempts fail_at and fail_at + 1 */
  unsigned long failures;
} fa;

static void *failing_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud;
  if (nsize == 0) {
    free(ptr);
    return NULL;
  }
  if (fa.armed && (ptr == NULL || nsize > osize)) {
    unsigned long a = fa.attempts++;
    if (a == fa.fail_at || a == fa.fail_at + 1) {
      fa.failures++;
      return NULL;
    }
  }
  return realloc(ptr, nsize);
}

static int l_arm(lua_State *L) {
  (void)L;
  fa.armed = 1;
  return 0;
}

static int l_disarm(lua_State *L) {
  (void)L;
  fa.armed = 0;
  return 0;
}

static int on_panic(lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  fprintf(stderr, "PANIC: unprotected error in call to Lua API (%s)\n",
          msg != NULL ? msg : "?");
  return 0;  /* then abort() */
}

/* ---------------------------------------------------------------- scenarios */

typedef struct scenario {
  const char *name;
  const char *src;   /* the body, run between arm() and disarm() */
  const char *known; /* NULL, or why it is known to fail (then skipped) */
} scenario;

/* why a known failure fails goes in its scenario's `known` (the run that shows one:
   ALLOC_FAIL_ONLY="name=k", under valgrind for a leak) */

/* The server and the client are globals, closed by the wrapper after the
   body: a refused allocation can stop Lua from calling a <close>
   variable's __close at all (the call's own stack growth fails), and a
   server or a connection nobody closed rightly keeps the host's loop alive
   (a handler waits for the peer) until the collector finds it. */
#define SERVE_TCP \
  "srv = assert(corio.serve('127.0.0.1', 0, function(s)\n" \
  "  local l = s:read_line(); if l then s:write(l, '\\n') end\n" \
  "end))\n" \
  "local _, port = srv:address()\n"

static const scenario scenarios[] = {
  {"spawn", "local t = corio.spawn(function() return 1 end)\n"
            "assert(t:await() == 1)", NULL},
  {"first step with arguments",
   "local t = corio.spawn(function(a, b, c) return a .. b .. c end, 'x', 'y', 'z')\n"
   "assert(t:await() == 'xyz')", NULL},
  {"spawn many", "local ts = {}\n"
                 "for i = 1, 50 do ts[i] = corio.spawn(function() return i end) end\n"
                 "for i = 1, 50 do assert(ts[i]:await() == i) end", NULL},
  {"await a future", "local f = corio.future()\n"
                     "corio.spawn(function() f:set_result(42, 'x') end)\n"
                     "local a, b = f:await()\n"
                     "assert(a == 42 and b == 'x')", NULL},
  {"finish with many results",
   "local t = corio.spawn(function() return table.unpack({1,2,3,4,5,6,7,8,9,10}) end)\n"
   "assert(select('#', t:await()) == 10)", NULL},
  {"task error awaited",
   "local t = corio.spawn(function() error({code = 7}) end)\n"
   "local ok, e = pcall(t.await, t)\n"
   "if e == 'not enough memory' then error(e) end\n"
   "assert(not ok and e.code == 7)", NULL},
  {"task group", "local n = 0\n"
                 "do\n"
                 "  local tg <close> = corio.task_group()\n"
                 "  for _ = 1, 5 do tg:spawn(function() corio.sleep(0); n = n + 1 end) end\n"
                 "end\n"
                 "assert(n == 5)", NULL},
  {"timeout that expires",
   "local ok, e = pcall(corio.timeout, 0.001, function() corio.sleep(10) end)\n"
   "assert(not ok)\n"
   "assert(tostring(e):find('not enough memory') or tostring(e):find('deadline exceeded'), tostring(e))",
   NULL},
  {"timeout that does not", "assert(corio.timeout(5, function() corio.sleep(0); return 3 end) == 3)",
   NULL},
  {"sleep", "assert(corio.sleep(0.001, 'v') == 'v')", NULL},
  {"cancel a task", "local t = corio.spawn(function() corio.sleep(10) end)\n"
                    "corio.sleep(0)\n"
                    "t:cancel()\n"
                    "local ok = pcall(t.await, t)\n"
                    "assert(not ok)", NULL},
  {"shield", "assert(corio.shield(function() corio.sleep(0); return 5 end) == 5)", NULL},
  {"gather", "local a, b = corio.gather(corio.spawn(function() return 1 end),\n"
             "                          corio.spawn(function() corio.sleep(0); return 2 end))\n"
             "assert(a == 1 and b == 2)", NULL},
  {"queue", "local q = corio.queue(2)\n"
            "corio.spawn(function() for i = 1, 20 do q:put(i) end end)\n"
            "for i = 1, 20 do assert(q:get() == i) end", NULL},
  {"lock and event", "local l, ev = corio.lock(), corio.event()\n"
                     "corio.spawn(function() l:acquire(); corio.sleep(0); l:release(); ev:set() end)\n"
                     "ev:wait()\n"
                     "l:acquire(); l:release()", NULL},
  {"tcp connect", SERVE_TCP
                  "c = assert(corio.connect('127.0.0.1', port))", NULL},
  {"tcp write and read", SERVE_TCP
                         "c = assert(corio.connect('127.0.0.1', port))\n"
                         "assert(c:write('hello\\n'))\n"
                         "assert(c:read_line() == 'hello')", NULL},
  {"tcp large write", SERVE_TCP
                      "c = assert(corio.connect('127.0.0.1', port))\n"
                      "local big = string.rep('x', 60000)\n"
                      "assert(c:write(big, '\\n'))\n"
                      "assert(#c:read_line() == 60000)", NULL},
  {"unix stream", "local path = os.tmpname(); os.remove(path)\n"
                  "srv = assert(corio.serve_unix(path, function(s)\n"
                  "  s:write(s:read_exactly(3) or '')\n"
                  "end))\n"
                  "c = assert(corio.connect_unix(path))\n"
                  "assert(c:write('abc'))\n"
                  "assert(c:read_exactly(3) == 'abc')", NULL},
  {"udp", "local u <close> = assert(corio.udp())\n"
          "assert(u:bind('127.0.0.1', 0))\n"
          "local _, port = u:address()\n"
          "assert(u:send('ping', '127.0.0.1', port))\n"
          "assert(u:recv() == 'ping')", NULL},
  {"process exec", "local p <close> = assert(corio.exec({'sh', '-c', 'cat; echo \"$X\" >&2'},\n"
                   "  {stdin = 'pipe', stdout = 'pipe', stderr = 'pipe', env = {X = 'x'}}))\n"
                   "assert(p.stdin:write('hi'))\n"
                   "assert(p.stdin:close())\n"
                   "assert(p.stdout:read_all() == 'hi')\n"
                   "assert(p.stderr:read_all() == 'x\\n')\n"
                   "assert(p:wait() == 0)", NULL},
  {"files", "local path = os.tmpname()\n"
            "assert(corio.fs.write_file(path, 'one\\ntwo\\n'))\n"
            "assert(corio.fs.read_file(path) == 'one\\ntwo\\n')\n"
            "f = assert(corio.fs.open(path))\n"
            "assert(f:read_line() == 'one')\n"
            "assert(f:close())\n"
            "assert(corio.fs.stat(path).size == 8)\n"
            "assert(corio.fs.unlink(path))", NULL},
  {"to_thread", "local s, t = corio.to_thread(function(a, b) return a + b, {a, b} end, 1, 2)\n"
                "assert(s == 3 and t[1] == 1 and t[2] == 2)", NULL},
};

#define NSCEN (sizeof scenarios / sizeof scenarios[0])

/* ---------------------------------------------------------------- one run */

/* what a child reports through shared memory */
typedef struct report {
  unsigned long attempts;
  int finished;       /* the run got to the end of its checks */
  char outcome[256];
} report;

static report *rep;

static lua_Integer run_one(const scenario *sc, unsigned long fail_at) {
  uv_loop_t loop;
  lua_State *L;
  const char *s;
  CHECK(uv_loop_init(&loop) == 0);
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
  CHECK(luaL_dostring(L, "corio = require 'corio'\n"
                      "corio.set_error_handler(function(err)\n"
                      "  unhandled = (unhandled or '') .. tostring(err) .. '\\n'\n"
                      "end)") == LUA_OK);
  lua_register(L, "arm", l_arm);
  lua_register(L, "disarm", l_disarm);
  CHECK(luaL_loadstring(L, sc->src) == LUA_OK);
  lua_setglobal(L, "body");
  CHECK(corio_attach(L, &loop) == 0);
  CHECK(luaL_loadstring(L, "arm()\n"
                        "local ok, err = pcall(body)\n"
                        "disarm()\n"
                        "outcome = ok and 'ok' or tostring(err)\n"
                        "if c then c:close() end\n"
                        "if srv then srv:close() end\n"
                        "if f then f:close() end\n") == LUA_OK);
  fa.fail_at = fail_at;
  fa.attempts = fa.failures = 0;
  CHECK(corio_spawn(L, 0) == 0);
  lua_pop(L, 1);
  CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
  fa.armed = 0;
  rep->attempts = fa.attempts;
  lua_getglobal(L, "outcome");
  s = lua_tostring(L, -1);
  snprintf(rep->outcome, sizeof rep->outcome, "%s", s != NULL ? s : "(no outcome)");
  lua_pop(L, 1);
  CHECK(corio_detach(L) == 0);   /* reports what nobody awaited */
  CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
  lua_getglobal(L, "unhandled");
  s = lua_tostring(L, -1);
  if (s != NULL && strlen(rep->outcome) < 200)
    snprintf(rep->outcome + strlen(rep->outcome), sizeof rep->outcome - strlen(rep->outcome),
             " | unhandled: %s", s);
  lua_pop(L, 1);
  lua_close(L);
  CHECK(uv_loop_close(&loop) == 0);
  rep->finished = 1;
  return 0;
}

/* runs per scenario: the plain build sweeps 40; the sanitizer build, where a run
   costs several times more, 20, half as dense (ALLOC_FAIL_FULL=1 takes every k
   in either) */
#if defined(__SANITIZE_ADDRESS__)
#define SWEEP_RUNS 20
#else
#define SWEEP_RUNS 40
#endif

/* under valgrind (make test-valgrind): each run is 20-50 times slower, so a
   run gets more time and a scenario fewer runs (ASan sweeps them all) */
static int under_valgrind(void) {
  const char *p = getenv("LD_PRELOAD");
  return p != NULL && strstr(p, "vgpreload") != NULL;
}

/* the child's verdict: 0 clean, else a description in why */
static int run_child(const scenario *sc, unsigned long fail_at, char *why, size_t cap) {
  pid_t pid;
  int status;
  FILE *err = tmpfile();
  char buf[512];
  size_t n;
  CHECK(err != NULL);
  memset(rep, 0, sizeof *rep);
  fflush(stdout);
  fflush(stderr);
  pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    dup2(fileno(err), 2);
    alarm(under_valgrind() ? 120 : 5);
    run_one(sc, fail_at);
    exit(0);  /* not _exit: LeakSanitizer runs at exit */
  }
  CHECK(waitpid(pid, &status, 0) == pid);
  rewind(err);
  n = fread(buf, 1, sizeof buf - 1, err);
  buf[n] = '\0';
  fclose(err);
  if (WIFSIGNALED(status)) {
    snprintf(why, cap, "%s (signal %d); stderr: %.300s",
             WTERMSIG(status) == SIGALRM ? "hang" : "crash", WTERMSIG(status), buf);
    return 1;
  }
  if (WEXITSTATUS(status) != 0 || !rep->finished) {
    snprintf(why, cap, "exit %d; outcome: %s; stderr: %.300s", WEXITSTATUS(status),
             rep->outcome, buf);
    return 1;
  }
  if (fail_at == (unsigned long)-2) return 0;  /* the counting run */
  if (strcmp(rep->outcome, "ok") == 0 && strstr(rep->outcome, "|") == NULL) return 0;
  if (strstr(rep->outcome, "not enough memory") != NULL ||
      strstr(buf, "not enough memory") != NULL)
    return 0;
  snprintf(why, cap, "no clean 'not enough memory': outcome: %s; stderr: %.300s",
           rep->outcome, buf);
  return 1;
}

/* ---------------------------------------------------------------- the sweep */

static void test_alloc_fail_sweep(void) {
  size_t i;
  int failed = 0, runs = 0;
  int full = getenv("ALLOC_FAIL_FULL") != NULL;
  unsigned long most = under_valgrind() ? 2 : SWEEP_RUNS;  /* runs per scenario, about */
  int sweep_known = getenv("ALLOC_FAIL_KNOWN") != NULL;  /* sweep the known failures too */
  const char *only = getenv("ALLOC_FAIL_ONLY");  /* "name=k": that run, in this process */
  char why[1024];
  alarm(0);  /* the sweep is long: each run has its own alarm, ctest a timeout */
  rep = (report *)mmap(NULL, sizeof *rep, PROT_READ | PROT_WRITE,
                       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  CHECK(rep != MAP_FAILED);
  if (only != NULL) {
    const char *eq = strchr(only, '=');
    CHECK(eq != NULL);
    for (i = 0; i < NSCEN; i++)
      if (strlen(scenarios[i].name) == (size_t)(eq - only) &&
          memcmp(scenarios[i].name, only, (size_t)(eq - only)) == 0) {
        run_one(&scenarios[i], strtoul(eq + 1, NULL, 10));
        printf("  %s: outcome %s\n", only, rep->outcome);
        return;
      }
    CHECK(0);
  }
  for (i = 0; i < NSCEN; i++) {
    const scenario *sc = &scenarios[i];
    unsigned long total, k, step;
    int bad = 0;
    if (sc->known != NULL && !sweep_known) {
      printf("  %-26s SKIPPED, known failure: %s\n", sc->name, sc->known);
      continue;
    }
    if (run_child(sc, (unsigned long)-2, why, sizeof why) != 0 ||
        strcmp(rep->outcome, "ok") != 0) {
      printf("  %-26s FAILS WITHOUT ANY REFUSAL: %s\n", sc->name, rep->outcome);
      failed++;
      continue;
    }
    total = rep->attempts;
    step = full || total <= most ? 1 : total / most;
    for (k = 0; k < total; k += step) {
      runs++;
      if (run_child(sc, k, why, sizeof why) == 0) continue;
      bad++;
      printf("  %-26s k=%lu of %lu: %s%s\n", sc->name, k, total,
             sc->known ? "(known) " : "", why);
    }
    printf("  %-26s %lu allocations, %lu runs, %d failed%s\n", sc->name, total,
           (total + step - 1) / step, bad,
           sc->known ? (bad ? " (known failure, skipped)" : " (known failure no longer fails)") : "");
    if (bad && sc->known == NULL) failed++;
  }
  printf("  %d runs over %d scenarios\n", runs, (int)NSCEN);
  CHECK(failed == 0);
}

int main(void) {
  TEST_MAIN_BEGIN();
  RUN(test_alloc_fail_sweep);
  TEST_MAIN_END();
}
