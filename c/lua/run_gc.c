/*
** run_gc.c: corio.run's collector option (docs/reference.md, corio.run).
** The setting of a run is "generational", "incremental" (the mode,
** parameters unchanged), a table {pause =, stepmul =} (incremental with
** those parameters; one left out is unchanged) or "keep" (the run leaves
** the collector alone). Whatever the run sets, it puts back the mode,
** pause, step multiplier and running state it found.
*/
#include <stdarg.h>
#include <string.h>
#include "binding.h"

#define GC_DEFAULT GC_GEN

#define GC_EXPECTED "\"generational\", \"incremental\", \"keep\" or a table {pause = , stepmul = }"

/* raises "corio.run: ..." with no position (it would be corio's own) */
static void gc_error(lua_State *L, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  lua_error(L);
}

static int gc_param(lua_State *L, int idx, const char *name) {
  int isint;
  lua_Integer v;
  if (lua_getfield(L, idx, name) == LUA_TNIL) {
    lua_pop(L, 1);
    return -1;
  }
  v = lua_tointegerx(L, -1, &isint);
  if (!isint || v < 0 || v > 1000)
    gc_error(L, "corio.run: gc.%s must be an integer from 0 to 1000, got %s",
               name, isint ? lua_tostring(L, -1) : luaL_typename(L, -1));
  lua_pop(L, 1);
  return (int)v;
}

/* reads the setting at idx (nil: the default); raises naming corio.run */
void corio__gc_check(lua_State *L, int idx, corio_gcset *g) {
  static const char *const modes[] = {"keep", "generational", "incremental", NULL};
  int i;
  g->mode = GC_KEEP;
  g->pause = g->stepmul = -1;
  switch (lua_type(L, idx)) {
    case LUA_TNIL:
      g->mode = GC_DEFAULT;
      return;
    case LUA_TSTRING:
      for (i = 0; modes[i] != NULL; i++)
        if (strcmp(lua_tostring(L, idx), modes[i]) == 0) break;
      if (modes[i] == NULL)
        gc_error(L, "corio.run: gc must be " GC_EXPECTED ", got \"%s\"",
                   lua_tostring(L, idx));
      g->mode = i;  /* the order of enum and modes agree */
      return;
    case LUA_TTABLE:
      lua_pushnil(L);
      while (lua_next(L, idx)) {
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
        lua_pop(L, 1);
        if (k == NULL)
          gc_error(L, "corio.run: gc table: a %s key (pause and stepmul are known)",
                   luaL_typename(L, -1));
        if (strcmp(k, "pause") != 0 && strcmp(k, "stepmul") != 0)
          gc_error(L, "corio.run: gc table: unknown field '%s' (pause and stepmul are known)", k);
      }
      g->mode = GC_INC;
      g->pause = gc_param(L, idx, "pause");
      g->stepmul = gc_param(L, idx, "stepmul");
      return;
    default:
      gc_error(L, "corio.run: gc must be " GC_EXPECTED ", got %s", luaL_typename(L, idx));
  }
}

/* applies the setting, noting what to put back */
void corio__gc_apply(lua_State *L, corio_gcset *g) {
  if (g->mode == GC_KEEP) return;
  g->was_running = lua_gc(L, LUA_GCISRUNNING);
  g->was_pause = lua_gc(L, LUA_GCSETPAUSE, 0);  /* read... */
  lua_gc(L, LUA_GCSETPAUSE, g->pause >= 0 ? g->pause : g->was_pause);  /* ...and set */
  g->was_stepmul = lua_gc(L, LUA_GCSETSTEPMUL, 0);
  lua_gc(L, LUA_GCSETSTEPMUL, g->stepmul >= 0 ? g->stepmul : g->was_stepmul);
  /* setting the mode returns the one it replaces (no call reads it alone) */
  g->was_gen = lua_gc(L, g->mode == GC_GEN ? LUA_GCGEN : LUA_GCINC, 0, 0, 0) == LUA_GCGEN;
}

void corio__gc_restore(lua_State *L, const corio_gcset *g) {
  if (g->mode == GC_KEEP) return;
  lua_gc(L, g->was_gen ? LUA_GCGEN : LUA_GCINC, 0, 0, 0);
  lua_gc(L, LUA_GCSETPAUSE, g->was_pause);
  lua_gc(L, LUA_GCSETSTEPMUL, g->was_stepmul);
  if (g->was_running != lua_gc(L, LUA_GCISRUNNING))
    lua_gc(L, g->was_running ? LUA_GCRESTART : LUA_GCSTOP);
}
