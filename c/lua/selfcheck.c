/*
** selfcheck.c: every method of every corio type checks its self, and a
** wrong one (most often a dot written for a colon: q.put(5)) raises
**   bad self to 'queue:put' (Queue expected, got number): use queue:put(...)
** naming the public method, never one of corio's own files or locals.
** The Lua layer raises the same message through errors.check_self.
*/
#include "binding.h"

int corio__bad_self(lua_State *L, int idx, const char *method,
                    const char *tname) {
  const char *got = luaL_typename(L, idx);
  if (luaL_getmetafield(L, idx, "__name") == LUA_TSTRING)
    got = lua_tostring(L, -1);
  luaL_where(L, 1);
  lua_pushfstring(L, "bad self to '%s' (%s expected, got %s): use %s(...)",
                  method, tname, got, method);
  lua_concat(L, 2);
  return lua_error(L);
}

void *corio__check_self(lua_State *L, int idx, const char *mt,
                        const char *method, const char *tname) {
  void *p = luaL_testudata(L, idx, mt);
  if (p == NULL) corio__bad_self(L, idx, method, tname);
  return p;
}
