/*
** host.h: what the files of the host API (c/lua/host/) share.
*/
#ifndef CORIO_HOST_H
#define CORIO_HOST_H

#include "../binding.h"

/* debug builds: is this the loop's thread? (prints one line naming fn if not) */
#ifndef NDEBUG
int corio__host_wrong_thread(corio_State *S, const char *fn);
#define CORIO_LOOP_THREAD(S, fn) \
  if (corio__host_wrong_thread((S), (fn))) return CORIO_EINVAL
#else
#define CORIO_LOOP_THREAD(S, fn) ((void)0)
#endif

/* state.c */
void corio__host_unref(corio_State *S);
void corio__host_close_handles(corio_State *S);

/* error.c */
void corio__warn_forget(lua_State *L);

/* detach.c */
void corio__detach_abandon(corio_State *S);

#endif
