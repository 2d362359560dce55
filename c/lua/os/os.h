/*
** os.h: what the operating-system modules of the binding share
** (processes, signals): signal names and the list of live processes.
** Not a header for the rest of the binding: they see binding.h.
*/
#ifndef CORIO_OS_H
#define CORIO_OS_H

#include "binding.h"
#include "corio-internal.h"  /* container_of, the list helpers */

#define PROCESS_MT "corio.Process"
#define SIGNAL_MT  "corio.SignalReceiver"

/* signames.c: "SIGTERM" (or "TERM", or a number) -> its number; raises
   naming fname for an unknown name. The name of a number, or NULL. */
int corio__signal_check(lua_State *L, int idx, const char *fname);
const char *corio__signal_name(int signum);

/* process_detach.c: a detached child (a new session, reparented at once
   so it is never our zombie): argv and env end in NULL (env NULL: ours),
   fds[i] the fd to give the child as fd i (-1: /dev/null). The child's
   pid, or a negative UV_* code (the exec's failure among them). */
int corio__spawn_detached(char **argv, char **env, const char *cwd,
                          const int fds[3]);

#endif
