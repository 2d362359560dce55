/*
** thread_copy.c: values copied between Lua states as bytes, for the
** worker threads (corio.to_thread's arguments and results).
**
** nil, booleans, integers and floats (kept apart), strings, and tables
** of those, nested. A table met twice is written once and then referred
** to by its number, so shared subtables stay shared and cycles end.
** Metatables are not copied. Anything else is refused with an error
** that says where it was met: "argument 2, field 'a.b': cannot copy a
** function".
**
** Layout: one tag byte per value, then
**   T_INT, T_FLT     8 bytes (lua_Integer, lua_Number)
**   T_STR            size_t length, the bytes
**   T_TABLE          uint32 array-size hint, uint32 pairs, then each pair
**                    as key and value
**   T_REF            uint32: the number of a table written before (1...)
*/
#include <stdlib.h>
#include <string.h>
#include "thread.h"

enum { T_NIL, T_FALSE, T_TRUE, T_INT, T_FLT, T_STR, T_TABLE, T_REF };

#define MAX_DEPTH 100  /* tables nested deeper are refused */

int corio__tbuf_reserve(tbuf *b, size_t more) {
  size_t cap;
  char *p;
  if (b->cap - b->n >= more) return 0;
  cap = b->cap < 64 ? 64 : b->cap;
  while (cap - b->n < more) {
    if (cap > ((size_t)-1) / 2) return -1;
    cap *= 2;
  }
  p = (char *)realloc(b->p, cap);
  if (p == NULL) return -1;
  b->p = p;
  b->cap = cap;
  return 0;
}

void corio__tbuf_free(tbuf *b) {
  free(b->p);
  b->p = NULL;
  b->n = b->cap = 0;
}

/* ------------------------------------------------------------ writing */

typedef struct writer {
  lua_State *L;
  tbuf *b;
  int seen;             /* stack index of table -> number, 0 if none */
  uint32_t ntables;
  int depth;
  int keys[MAX_DEPTH];  /* stack index of the key at each level */
  const char *fname, *what;
  int argn;             /* the argument (or result) being written */
} writer;

static void put_bytes(writer *w, const void *p, size_t n) {
  if (corio__tbuf_reserve(w->b, n) != 0)
    luaL_error(w->L, "%s: out of memory", w->fname);
  memcpy(w->b->p + w->b->n, p, n);
  w->b->n += n;
}

static void put_tag(writer *w, int tag) {
  unsigned char c = (unsigned char)tag;
  put_bytes(w, &c, 1);
}

static void put_u32(writer *w, uint32_t v) { put_bytes(w, &v, sizeof v); }

/* the way to the value being written, as a Lua expression: a.b[2]["x y"] */
static void push_path(writer *w) {
  lua_State *L = w->L;
  luaL_Buffer B;
  int i;
  luaL_buffinit(L, &B);
  for (i = 0; i < w->depth; i++) {
    int k = w->keys[i];
    if (lua_type(L, k) == LUA_TSTRING) {
      size_t len, j;
      const char *s = lua_tolstring(L, k, &len);
      int ident = len > 0 && !(s[0] >= '0' && s[0] <= '9');
      for (j = 0; ident && j < len; j++)
        ident = s[j] == '_' || (s[j] >= 'a' && s[j] <= 'z') ||
                (s[j] >= 'A' && s[j] <= 'Z') || (s[j] >= '0' && s[j] <= '9');
      if (ident) {
        if (i > 0) luaL_addchar(&B, '.');
        luaL_addlstring(&B, s, len);
      }
      else {
        luaL_addstring(&B, "[\"");
        luaL_addlstring(&B, s, len);
        luaL_addstring(&B, "\"]");
      }
    }
    else if (lua_type(L, k) == LUA_TNUMBER || lua_type(L, k) == LUA_TBOOLEAN) {
      luaL_addchar(&B, '[');
      luaL_tolstring(L, k, NULL);
      luaL_addvalue(&B);
      luaL_addchar(&B, ']');
    }
    else {
      luaL_addchar(&B, '[');
      luaL_addstring(&B, luaL_typename(L, k));
      luaL_addchar(&B, ']');
    }
  }
  luaL_pushresult(&B);
}

static int fail(writer *w, const char *problem, const char *tname) {
  lua_State *L = w->L;
  if (w->depth == 0)
    return luaL_error(L, "%s: %s %d: %s %s", w->fname, w->what, w->argn,
                      problem, tname);
  push_path(w);
  return luaL_error(L, "%s: %s %d, field '%s': %s %s", w->fname, w->what,
                    w->argn, lua_tostring(L, -1), problem, tname);
}

static void put_value(writer *w, int idx);

static void put_table(writer *w, int idx) {
  lua_State *L = w->L;
  uint32_t npairs = 0;
  size_t at;
  lua_Unsigned len;
  lua_pushvalue(L, idx);
  if (lua_rawget(L, w->seen) == LUA_TNUMBER) {  /* met before */
    uint32_t ref = (uint32_t)lua_tointeger(L, -1);
    lua_pop(L, 1);
    put_tag(w, T_REF);
    put_u32(w, ref);
    return;
  }
  lua_pop(L, 1);
  if (w->depth >= MAX_DEPTH)
    fail(w, "cannot copy tables nested this deep:", "more than 100 levels");
  if (!lua_checkstack(L, 8)) luaL_error(L, "%s: out of memory", w->fname);
  lua_pushvalue(L, idx);
  lua_pushinteger(L, (lua_Integer)++w->ntables);
  lua_rawset(L, w->seen);
  len = lua_rawlen(L, idx);
  put_tag(w, T_TABLE);
  put_u32(w, len > 0xffffffffu ? 0xffffffffu : (uint32_t)len);
  at = w->b->n;
  put_u32(w, 0);                  /* the pairs: filled in below */
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    int top = lua_gettop(L);
    w->keys[w->depth] = top - 1;
    w->depth++;
    switch (lua_type(L, top - 1)) {
      case LUA_TBOOLEAN: case LUA_TNUMBER: case LUA_TSTRING: case LUA_TTABLE:
        break;
      default:
        w->depth--;  /* the key is what cannot be copied */
        fail(w, "cannot copy a key of type", luaL_typename(L, top - 1));
    }
    w->depth--;
    put_value(w, top - 1);
    w->depth++;
    put_value(w, top);
    w->depth--;
    lua_pop(L, 1);
    npairs++;
  }
  memcpy(w->b->p + at, &npairs, sizeof npairs);
}

static void put_value(writer *w, int idx) {
  lua_State *L = w->L;
  switch (lua_type(L, idx)) {
    case LUA_TNIL: put_tag(w, T_NIL); break;
    case LUA_TBOOLEAN: put_tag(w, lua_toboolean(L, idx) ? T_TRUE : T_FALSE); break;
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) {
        lua_Integer i = lua_tointeger(L, idx);
        put_tag(w, T_INT);
        put_bytes(w, &i, sizeof i);
      }
      else {
        lua_Number x = lua_tonumber(L, idx);
        put_tag(w, T_FLT);
        put_bytes(w, &x, sizeof x);
      }
      break;
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, idx, &len);
      put_tag(w, T_STR);
      put_bytes(w, &len, sizeof len);
      put_bytes(w, s, len);
      break;
    }
    case LUA_TTABLE: put_table(w, idx); break;
    default: fail(w, "cannot copy a", luaL_typename(L, idx));
  }
}

void corio__copy_out(lua_State *L, tbuf *b, int first, int n,
                     const char *fname, const char *what, int base) {
  writer w;
  int i, top = lua_gettop(L);
  w.L = L;
  w.b = b;
  w.seen = 0;
  w.ntables = 0;
  w.depth = 0;
  w.fname = fname;
  w.what = what;
  for (i = 0; i < n; i++)  /* a table to remember tables in, if any */
    if (lua_type(L, first + i) == LUA_TTABLE) {
      lua_newtable(L);
      w.seen = lua_gettop(L);
      break;
    }
  for (i = 0; i < n; i++) {
    w.argn = base + i;
    put_value(&w, first + i);
  }
  lua_settop(L, top);
}

/* ------------------------------------------------------------ reading */

typedef struct reader {
  lua_State *L;
  const char *p;
  int refs;          /* stack index of number -> table, 0 if none yet */
  uint32_t ntables;
} reader;

static void get_bytes(reader *r, void *dst, size_t n) {
  memcpy(dst, r->p, n);
  r->p += n;
}

static void get_value(reader *r) {
  lua_State *L = r->L;
  int tag = (unsigned char)*r->p++;
  switch (tag) {
    case T_NIL: lua_pushnil(L); break;
    case T_FALSE: lua_pushboolean(L, 0); break;
    case T_TRUE: lua_pushboolean(L, 1); break;
    case T_INT: {
      lua_Integer i;
      get_bytes(r, &i, sizeof i);
      lua_pushinteger(L, i);
      break;
    }
    case T_FLT: {
      lua_Number x;
      get_bytes(r, &x, sizeof x);
      lua_pushnumber(L, x);
      break;
    }
    case T_STR: {
      size_t len;
      get_bytes(r, &len, sizeof len);
      lua_pushlstring(L, r->p, len);
      r->p += len;
      break;
    }
    case T_REF: {
      uint32_t ref;
      get_bytes(r, &ref, sizeof ref);
      lua_rawgeti(L, r->refs, ref);
      break;
    }
    default: {  /* T_TABLE */
      uint32_t narr, npairs, i;
      get_bytes(r, &narr, sizeof narr);
      get_bytes(r, &npairs, sizeof npairs);
      if (narr > npairs) narr = npairs;
      if (!lua_checkstack(L, 4)) luaL_error(L, "corio.to_thread: out of memory");
      if (r->refs == 0) {
        lua_newtable(L);
        r->refs = lua_gettop(L);
      }
      lua_createtable(L, (int)narr, (int)(npairs - narr));
      lua_pushvalue(L, -1);
      lua_rawseti(L, r->refs, (lua_Integer)++r->ntables);
      for (i = 0; i < npairs; i++) {
        get_value(r);
        get_value(r);
        lua_rawset(L, -3);
      }
    }
  }
}

void corio__copy_in(lua_State *L, const tbuf *b, size_t *pos, int n) {
  reader r;
  int i;
  r.L = L;
  r.p = b->p + *pos;
  r.refs = 0;
  r.ntables = 0;
  if (!lua_checkstack(L, n + 4)) luaL_error(L, "corio.to_thread: too many values");
  for (i = 0; i < n; i++) get_value(&r);
  /* the refs table was made just below the first table among the values */
  if (r.refs != 0) lua_remove(L, r.refs);
  *pos = (size_t)(r.p - b->p);
}
