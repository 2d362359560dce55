/*
** iomod.c: the runtime's calls into the I/O modules, through the hooks
** each module adds when it is opened (binding.h, corio_iomod). Adding a
** module (files, processes, threads...) changes no runtime file.
*/
#include <stdlib.h>
#include "binding.h"

void corio__iomod_add(corio_State *S, const corio_iomod *m) {
  int i;
  for (i = 0; i < S->niomods; i++)
    if (S->iomods[i] == m) return;  /* opened twice */
  if (S->niomods == CORIO_MAX_IOMODS) abort();  /* raise CORIO_MAX_IOMODS */
  S->iomods[S->niomods++] = m;
}

void corio__iomod_abandon(corio_State *S, luatask *t) {
  int i;
  for (i = 0; i < S->niomods; i++)
    if (S->iomods[i]->abandon != NULL) S->iomods[i]->abandon(S, t);
}

void corio__iomod_shutdown(lua_State *L, corio_State *S, int phase) {
  int i;
  for (i = 0; i < S->niomods; i++)
    if (S->iomods[i]->shutdown != NULL) S->iomods[i]->shutdown(L, S, phase);
}
