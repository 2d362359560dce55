/*
** signames.c: signal names and numbers, for processes and signals.
*/
#include <signal.h>
#include <string.h>
#include "os.h"

static const struct { const char *name; int num; } signals[] = {
  {"SIGHUP", SIGHUP}, {"SIGINT", SIGINT}, {"SIGQUIT", SIGQUIT},
  {"SIGILL", SIGILL}, {"SIGTRAP", SIGTRAP}, {"SIGABRT", SIGABRT},
  {"SIGBUS", SIGBUS}, {"SIGFPE", SIGFPE}, {"SIGKILL", SIGKILL},
  {"SIGUSR1", SIGUSR1}, {"SIGSEGV", SIGSEGV}, {"SIGUSR2", SIGUSR2},
  {"SIGPIPE", SIGPIPE}, {"SIGALRM", SIGALRM}, {"SIGTERM", SIGTERM},
  {"SIGCHLD", SIGCHLD}, {"SIGCONT", SIGCONT}, {"SIGSTOP", SIGSTOP},
  {"SIGTSTP", SIGTSTP}, {"SIGTTIN", SIGTTIN}, {"SIGTTOU", SIGTTOU},
  {"SIGURG", SIGURG}, {"SIGXCPU", SIGXCPU}, {"SIGXFSZ", SIGXFSZ},
  {"SIGVTALRM", SIGVTALRM}, {"SIGPROF", SIGPROF}, {"SIGWINCH", SIGWINCH},
  {"SIGIO", SIGIO}, {"SIGSYS", SIGSYS},
  {NULL, 0}
};

const char *corio__signal_name(int signum) {
  int i;
  for (i = 0; signals[i].name != NULL; i++)
    if (signals[i].num == signum) return signals[i].name;
  return NULL;
}

int corio__signal_check(lua_State *L, int idx, const char *fname) {
  const char *s;
  int i;
  if (lua_type(L, idx) == LUA_TNUMBER) {
    lua_Integer n = lua_tointeger(L, idx);
    if (!lua_isinteger(L, idx) || n < 1 || n > 64)
      return luaL_error(L, "%s: bad signal number", fname);
    return (int)n;
  }
  s = lua_tostring(L, idx);
  if (lua_type(L, idx) != LUA_TSTRING)
    return luaL_error(L, "%s: a signal name (\"SIGTERM\") expected, got %s",
                      fname, luaL_typename(L, idx));
  for (i = 0; signals[i].name != NULL; i++)
    if (strcmp(signals[i].name, s) == 0 || strcmp(signals[i].name + 3, s) == 0)
      return signals[i].num;
  return luaL_error(L, "%s: unknown signal '%s'", fname, s);
}
