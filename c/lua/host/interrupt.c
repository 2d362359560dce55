/*
** interrupt.c: corio_interrupt (a task stuck in a loop raises at its next
** instruction, from any thread or a signal handler) and the time budget
** of a batch of ready tasks.
*/
#include "host.h"

static void interrupt_hook(lua_State *co, lua_Debug *ar) {
  corio_State *S = corio_state(co);
  (void)ar;
  lua_sethook(co, NULL, 0, 0);
  if (S == NULL || !__atomic_exchange_n(&S->interrupt, 0, __ATOMIC_SEQ_CST)) return;
  luaL_error(co, "interrupted (corio_interrupt)");
}

int corio_interrupt(corio_state_t *S) {
  lua_State *co;
  __atomic_store_n(&S->interrupt, 1, __ATOMIC_SEQ_CST);
  __atomic_add_fetch(&S->interrupting, 1, __ATOMIC_SEQ_CST);
  co = __atomic_load_n(&S->stepping, __ATOMIC_SEQ_CST);
  if (co != NULL)  /* alive: the step's end waits while we are counted in */
    lua_sethook(co, interrupt_hook,
                LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT, 1);
  else
    __atomic_store_n(&S->interrupt, 0, __ATOMIC_SEQ_CST);
  __atomic_sub_fetch(&S->interrupting, 1, __ATOMIC_SEQ_CST);
  return 0;
}

int corio_set_budget(lua_State *L, unsigned ms) {
  corio_State *S = corio_state(L);
  if (S == NULL) return CORIO_EINVAL;
  CORIO_LOOP_THREAD(S, "corio_set_budget");
  S->budget = (uint64_t)ms * 1000000u;
  S->loop.budget = S->budget;
  return 0;
}
