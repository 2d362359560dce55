/*
** fuzz_thread_copy.c: corio.to_thread's value copier (c/lua/os/thread_copy.c)
** between two Lua states, checked against a model built with the values.
**
** The input is a program that builds a value graph in the first state:
** up to 24 tables, each set fields whose keys and values are nil,
** booleans, integers, floats (NaN, -0.0, infinities, integral floats as
** keys), strings with any bytes, tables (shared, cyclic, tables as keys),
** and values the copier refuses (a C function, a Lua closure with an
** upvalue, a C closure, a full and a light userdata, a coroutine); then
** 1 to 6 arguments. Or (first byte odd) a chain of nested tables as deep as
** the second byte says. The model keeps every table's fields as set, with
** Lua's key rules (an integral float key is an integer; nil deletes).
**
** Expected: if a refused value is reachable from the arguments (as a key or
** a value), or the chain is more than 100 tables deep, the copy raises a
** clean error naming corio.to_thread and the argument; else the copy in the
** second state is the model's graph: same atoms (integers stay integers,
** floats keep their bits), every table the same fields, and the same
** sharing (each table of the model is one table of the copy, never two,
** and two tables of the model are never one of the copy). Any difference,
** or a crash, aborts (libFuzzer keeps the input).
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include "corio.h"
#include "thread.h"

#define MAXN   24   /* tables */
#define MAXE   32   /* fields per table */
#define MAXR   6    /* arguments */
#define NREF   6    /* kinds of refused values */
#define REFUSED_AT 1  /* stack index of the first refused value (made once) */
#define NODES_AT (NREF + 1)  /* stack index of the first table */
#define MAX_DEPTH_OK 100       /* tables deeper than this are refused */

enum { A_NIL, A_FALSE, A_TRUE, A_INT, A_FLT, A_STR, A_NODE, A_REFUSED };

typedef struct val {
  int kind;
  lua_Integer i;
  double f;
  const char *s;
  size_t len;
  int id;          /* A_NODE: the table; A_REFUSED: which */
} val;

typedef struct entry { val k, v; } entry;
typedef struct node { entry e[MAXE]; int n; } node;

static lua_State *A, *B;     /* copied from, copied to */
static tbuf buf;
static int nin;               /* values to copy in */
static node nodes[MAXN];
static int nnodes;
static val roots[MAXR];
static int nroots;
static const uint8_t *in;
static size_t inlen, inpos;

static void fail(const char *what) {
  fprintf(stderr, "fuzz_thread_copy: %s\n", what);
  abort();
}

static unsigned next(void) {
  return inpos < inlen ? in[inpos++] : 0;
}

static uint64_t next64(void) {
  uint64_t v = 0;
  int i;
  for (i = 0; i < 8; i++) v = v << 8 | next();
  return v;
}

/* ------------------------------------------------------------ building */

static void push_val(lua_State *L, const val *v) {
  switch (v->kind) {
    case A_NIL: lua_pushnil(L); break;
    case A_FALSE: lua_pushboolean(L, 0); break;
    case A_TRUE: lua_pushboolean(L, 1); break;
    case A_INT: lua_pushinteger(L, v->i); break;
    case A_FLT: lua_pushnumber(L, v->f); break;
    case A_STR: lua_pushlstring(L, v->s, v->len); break;
    case A_NODE: lua_pushvalue(L, NODES_AT + v->id); break;
    default: lua_pushvalue(L, REFUSED_AT + v->id); break;
  }
}

static int new_node(void) {
  if (nnodes == MAXN) return nnodes - 1;
  nodes[nnodes].n = 0;
  return nnodes++;
}

static val gen_val(int refused_ok) {
  val v;
  unsigned b = next();
  memset(&v, 0, sizeof v);
  switch (b % 16) {
    case 0: v.kind = A_NIL; break;
    case 1: v.kind = A_FALSE; break;
    case 2: v.kind = A_TRUE; break;
    case 3: v.kind = A_INT; v.i = (lua_Integer)next() - 128; break;
    case 4: v.kind = A_INT; v.i = (lua_Integer)next64(); break;
    case 5: {
      static const lua_Integer ex[] = {LUA_MININTEGER, LUA_MAXINTEGER, 0, -1, 1, 1 << 30};
      v.kind = A_INT;
      v.i = ex[next() % 6];
      break;
    }
    case 6: {
      uint64_t bits = next64();
      v.kind = A_FLT;
      memcpy(&v.f, &bits, sizeof v.f);
      break;
    }
    case 7: {
      static const double ex[] = {0.5, -0.0, 2.0, 1e300, -3.0, 9007199254740993.0};
      unsigned k = next() % 9;
      v.kind = A_FLT;
      v.f = k < 6 ? ex[k] : k == 6 ? (double)NAN : k == 7 ? (double)INFINITY : -(double)INFINITY;
      break;
    }
    case 8: case 9: {
      size_t len = next() % 40;
      if (len > inlen - inpos) len = inlen - inpos;
      v.kind = A_STR;
      v.s = (const char *)in + inpos;
      v.len = len;
      inpos += len;
      break;
    }
    case 14:
      if (refused_ok && (next() & 3) == 0) {
        v.kind = A_REFUSED;
        v.id = (int)(next() % NREF);
        break;
      }
      /* fall through */
    default:
      v.kind = A_NODE;
      v.id = nnodes == 0 ? new_node() : (int)(next() % (unsigned)nnodes);
      break;
  }
  return v;
}

/* an integral float key is an integer key, as Lua stores it */
static val norm_key(val k) {
  if (k.kind == A_FLT && k.f == floor(k.f) && k.f >= -9223372036854775808.0 &&
      k.f < 9223372036854775808.0) {
    k.kind = A_INT;
    k.i = (lua_Integer)k.f;
  }
  return k;
}

static int same_key(const val *a, const val *b) {
  if (a->kind != b->kind) return 0;
  switch (a->kind) {
    case A_INT: return a->i == b->i;
    case A_FLT: return a->f == b->f;
    case A_STR: return a->len == b->len && memcmp(a->s, b->s, a->len) == 0;
    case A_NODE: case A_REFUSED: return a->id == b->id;
    default: return 1;
  }
}

/* t[k] = v in the model and in A */
static void set_field(int t, val k, val v) {
  node *nd = &nodes[t];
  int i;
  if (k.kind == A_NIL || (k.kind == A_FLT && k.f != k.f)) return;  /* not a key */
  k = norm_key(k);
  for (i = 0; i < nd->n && !same_key(&nd->e[i].k, &k); i++) {}
  if (i == nd->n && (v.kind == A_NIL || nd->n == MAXE)) return;
  lua_pushvalue(A, NODES_AT + t);
  push_val(A, &k);
  push_val(A, &v);
  lua_rawset(A, -3);
  lua_pop(A, 1);
  if (v.kind == A_NIL) nd->e[i] = nd->e[--nd->n];
  else {
    nd->e[i].k = k;
    nd->e[i].v = v;
    if (i == nd->n) nd->n++;
  }
}

static int l_upvalue_fn(lua_State *L) {
  lua_pushvalue(L, lua_upvalueindex(1));
  return 1;
}

/* the refused values, at REFUSED_AT...: a C function, a Lua closure with
   an upvalue, a C closure, a full userdata, a light userdata, a thread */
static void push_refused(lua_State *L) {
  lua_pushcfunction(L, l_upvalue_fn);
  if (luaL_loadstring(L, "local x = {} return function() return x end") != LUA_OK)
    fail(lua_tostring(L, -1));
  lua_call(L, 0, 1);
  lua_pushinteger(L, 7);
  lua_pushcclosure(L, l_upvalue_fn, 1);
  lua_newuserdatauv(L, 16, 1);
  lua_pushlightuserdata(L, &buf);
  lua_newthread(L);
}

static int reachable_refused(void) {
  int seen[MAXN] = {0}, stack[MAXN], sp = 0, i, j;
  for (i = 0; i < nroots; i++) {
    if (roots[i].kind == A_REFUSED) return 1;
    if (roots[i].kind == A_NODE && !seen[roots[i].id]) {
      seen[roots[i].id] = 1;
      stack[sp++] = roots[i].id;
    }
  }
  while (sp > 0) {
    node *nd = &nodes[stack[--sp]];
    for (j = 0; j < nd->n; j++) {
      const val *kv[2];
      int m;
      kv[0] = &nd->e[j].k;
      kv[1] = &nd->e[j].v;
      for (m = 0; m < 2; m++) {
        if (kv[m]->kind == A_REFUSED) return 1;
        if (kv[m]->kind == A_NODE && !seen[kv[m]->id]) {
          seen[kv[m]->id] = 1;
          stack[sp++] = kv[m]->id;
        }
      }
    }
  }
  return 0;
}

/* ------------------------------------------------------------ checking */

static const void *dest[MAXN];   /* the copy of each table, once met */
static int ndone[MAXN];           /* its fields checked (1) */
static int progress;

static void check_val(const val *a, int idx);

/* B's copy of table id, pushed (it has been met) */
static void push_dest(int id) {
  lua_rawgeti(B, 1, id + 1);
}

static void meet(int id, int idx) {
  const void *p = lua_topointer(B, idx);
  int j;
  if (dest[id] != NULL) {
    if (dest[id] != p) fail("a shared table was copied twice");
    return;
  }
  for (j = 0; j < MAXN; j++)
    if (dest[j] == p) fail("two tables were copied into one");
  dest[id] = p;
  lua_pushvalue(B, idx);
  lua_rawseti(B, 1, id + 1);
  progress = 1;
}

static void check_val(const val *a, int idx) {
  int t = lua_type(B, idx);
  switch (a->kind) {
    case A_NIL: if (t != LUA_TNIL) fail("nil differs"); break;
    case A_FALSE: case A_TRUE:
      if (t != LUA_TBOOLEAN || lua_toboolean(B, idx) != (a->kind == A_TRUE))
        fail("a boolean differs");
      break;
    case A_INT:
      if (!lua_isinteger(B, idx) || lua_tointeger(B, idx) != a->i) fail("an integer differs");
      break;
    case A_FLT: {
      lua_Number x;
      if (t != LUA_TNUMBER || lua_isinteger(B, idx)) fail("a float is not a float");
      x = lua_tonumber(B, idx);
      if (memcmp(&x, &a->f, sizeof x) != 0) fail("a float differs");
      break;
    }
    case A_STR: {
      size_t len;
      const char *s;
      if (t != LUA_TSTRING) fail("a string is not a string");
      s = lua_tolstring(B, idx, &len);
      if (len != a->len || memcmp(s, a->s, len) != 0) fail("a string differs");
      break;
    }
    case A_NODE:
      if (t != LUA_TTABLE) fail("a table is not a table");
      if (lua_getmetatable(B, idx)) fail("a copy has a metatable");
      meet(a->id, idx);
      break;
    default: fail("a refused value was copied");
  }
}

/* the fields of table id (met) whose keys can be looked up now; 1 if all
   were checked */
static int check_node(int id) {
  node *nd = &nodes[id];
  int j, all = 1, tab, count = 0;
  if (ndone[id]) return 1;
  if (!lua_checkstack(B, 8)) fail("lua_checkstack");
  push_dest(id);
  tab = lua_gettop(B);
  lua_pushnil(B);
  while (lua_next(B, tab)) {
    count++;
    lua_pop(B, 1);
  }
  if (count != nd->n) fail("a table has another number of fields");
  for (j = 0; j < nd->n; j++) {
    const entry *e = &nd->e[j];
    if (e->k.kind == A_NODE) {
      if (dest[e->k.id] == NULL) {
        all = 0;
        continue;
      }
      push_dest(e->k.id);
    }
    else push_val(B, &e->k);
    if (lua_rawget(B, tab) == LUA_TNIL) fail("a field is missing");
    check_val(&e->v, lua_gettop(B));
    lua_pop(B, 1);
  }
  /* a table reached only as a key: the one table key of the copy not met
     yet, when exactly one such field is left */
  if (!all) {
    int left = 0, which = -1, found = 0;
    for (j = 0; j < nd->n; j++)
      if (nd->e[j].k.kind == A_NODE && dest[nd->e[j].k.id] == NULL) {
        left++;
        which = nd->e[j].k.id;
      }
    if (left == 1) {
      lua_pushnil(B);
      while (lua_next(B, tab)) {
        int m;
        const void *p = lua_topointer(B, -2);
        lua_pop(B, 1);
        if (lua_type(B, -1) != LUA_TTABLE) continue;
        for (m = 0; m < MAXN && dest[m] != p; m++) {}
        if (m == MAXN) {
          found++;
          meet(which, lua_gettop(B));
        }
      }
      if (found != 1) fail("a table key is missing");
    }
  }
  lua_settop(B, tab - 1);
  if (all) ndone[id] = 1;
  return all;
}

static void check_copy(void) {
  int i, id;
  memset(dest, 0, sizeof dest);
  memset(ndone, 0, sizeof ndone);
  lua_newtable(B);
  lua_insert(B, 1);  /* 1: id -> the copy; the arguments at 2... */
  for (i = 0; i < nroots; i++) check_val(&roots[i], i + 2);
  do {
    progress = 0;
    for (id = 0; id < nnodes; id++)
      if (dest[id] != NULL && !ndone[id] && check_node(id)) progress = 1;
  } while (progress);
}

/* ------------------------------------------------------------ the copies */

static int do_out(lua_State *L) {
  corio__copy_out(L, &buf, 1, lua_gettop(L), "corio.to_thread", "argument", 1);
  return 0;
}

static int do_in(lua_State *L) {
  size_t pos = 0;
  corio__copy_in(L, &buf, &pos, nin);
  if (pos != buf.n) fail("the copy did not read every byte");
  return nin;
}

static void chain(unsigned depth) {
  unsigned i;
  nroots = 1;
  lua_newtable(A);
  lua_pushvalue(A, -1);
  for (i = 1; i < depth; i++) {
    lua_newtable(A);
    lua_pushvalue(A, -1);
    lua_rawseti(A, -3, 1);
    lua_remove(A, -2);
  }
  lua_pushboolean(A, 1);
  lua_rawseti(A, -2, 1);
  lua_pop(A, 1);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  A = luaL_newstate();
  B = luaL_newstate();
  if (A == NULL || B == NULL) fail("luaL_newstate");
  push_refused(A);  /* stays at the bottom of A's stack */
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int i, expect_error, status, base;
  unsigned depth = 0;
  if (size > 4096) return -1;
  in = data;
  inlen = size;
  inpos = 0;
  nnodes = nroots = 0;
  lua_settop(A, NREF);
  lua_settop(B, 0);
  for (i = 0; i < MAXN; i++) lua_newtable(A);
  base = lua_gettop(A);
  lua_pushcfunction(A, do_out);
  if (next() & 1) {  /* a chain */
    depth = 1 + next();
    chain(depth);
    expect_error = depth > MAX_DEPTH_OK;
  }
  else {
    unsigned ops = 0;
    while (inpos < inlen && ops++ < 400) {
      unsigned op = next() % 4;
      if (op == 0) new_node();
      else if (op == 3) break;
      else {
        int t = nnodes == 0 ? new_node() : (int)(next() % (unsigned)nnodes);
        val k = gen_val(1);
        val v = gen_val(1);
        set_field(t, k, v);
      }
    }
    nroots = 1 + (int)(next() % MAXR);
    for (i = 0; i < nroots; i++) {
      roots[i] = gen_val(1);
      push_val(A, &roots[i]);
    }
    expect_error = reachable_refused();
  }
  status = lua_pcall(A, lua_gettop(A) - base - 1, 0, 0);
  if (status != LUA_OK) {
    const char *msg = lua_tostring(A, -1);
    if (!expect_error) fail(msg != NULL ? msg : "an error that is not a string");
    if (msg == NULL || strncmp(msg, "corio.to_thread: argument ", 26) != 0 ||
        (strstr(msg, "cannot copy") == NULL))
      fail(msg != NULL ? msg : "an error that is not a string");
    if (depth > 0 && strstr(msg, "more than 100 levels") == NULL) fail(msg);
  }
  else {
    if (expect_error) fail("a refused value was copied without an error");
    nin = nroots;
    lua_pushcfunction(B, do_in);
    if (lua_pcall(B, 0, LUA_MULTRET, 0) != LUA_OK) fail(lua_tostring(B, -1));
    if (lua_gettop(B) != nroots) fail("another number of values came out");
    if (depth == 0) check_copy();
    else {  /* the chain: depth tables, then true */
      unsigned d;
      lua_pushvalue(B, 1);
      for (d = 0; d < depth; d++) {
        if (lua_type(B, -1) != LUA_TTABLE) fail("the chain is short");
        lua_rawgeti(B, -1, 1);
        lua_remove(B, -2);
      }
      if (lua_type(B, -1) != LUA_TBOOLEAN) fail("the chain's end differs");
    }
  }
  corio__tbuf_free(&buf);
  lua_settop(A, NREF);
  lua_settop(B, 0);
  /* every run gives back what it took: libFuzzer's leak check (a scan of
     the whole heap) runs only after a run whose mallocs and frees differ */
  lua_gc(A, LUA_GCCOLLECT);
  lua_gc(B, LUA_GCCOLLECT);
  return 0;
}
