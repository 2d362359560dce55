/*
** queue.c: the FIFO queue's storage and its put/get fast paths.
**
** corio.queue() is written in Lua (lua/corio/queue.lua) except for this:
** the ring of items and its counters live here, and put/get that need
** nobody else (no waiter to hand over to or to refill from, not full,
** not empty, not shut down) run as C closures without calling Lua. Any
** other case calls the queue's Lua slow path, which sees the same state
** through the small accessors below (store, take, count, bump, ...).
**
** The closures made by core.fifo share these upvalues (put and get all
** of them, the accessors only the first two):
**   1 the fifo userdata (the counters)   2 the items table (the ring)
**   3 the getters wait list              4 the putters wait list
**   5 the Lua put slow path              6 the Lua get slow path
**   7 the string "head"                 8 the queue table (self)
** The wait lists are corio.waiters tables: a list is empty when its
** `head` field is nil (looked up with the key in upvalue 7: a raw get
** with a string already interned costs far less than lua_getfield).
**
** The ring holds cap slots from head; an unused slot holds false (so the
** table's array part stays put). It grows in place, by doubling, up to
** the queue's maxsize.
*/
#include <math.h>
#include "binding.h"

#define FIFO_FIRST_CAP 64   /* a bigger maxsize starts here and grows */

typedef struct fifo {
  lua_Integer n;            /* items stored */
  lua_Integer head;         /* slot of the first item */
  lua_Integer cap;          /* slots in the ring */
  lua_Integer max;          /* maxsize (LUA_MAXINTEGER: unbounded) */
  lua_Integer unfinished;   /* items put and not yet task_done */
  int shut;                 /* shutdown() was called */
} fifo;

#define RING   lua_upvalueindex(2)
#define GETTERS lua_upvalueindex(3)
#define PUTTERS lua_upvalueindex(4)

static fifo *get_fifo(lua_State *L) {
  return (fifo *)lua_touserdata(L, lua_upvalueindex(1));
}

/* is the wait list at upvalue idx empty? (leaves the stack as it was) */
static int list_empty(lua_State *L, int idx) {
  int empty;
  lua_pushvalue(L, lua_upvalueindex(7));
  empty = lua_rawget(L, idx) == LUA_TNIL;
  lua_pop(L, 1);
  return empty;
}

/* the item on the top of the stack goes in at the tail (popped) */
static void ring_push(lua_State *L, fifo *q) {
  lua_Integer i = q->head + q->n;
  if (i > q->cap) i -= q->cap;
  lua_rawseti(L, RING, i);
  q->n++;
}

/* push the item at the head and free its slot */
static void ring_shift(lua_State *L, fifo *q) {
  lua_Integer h = q->head;
  lua_rawgeti(L, RING, h);
  lua_pushboolean(L, 0);
  lua_rawseti(L, RING, h);
  q->head = h == q->cap ? 1 : h + 1;
  q->n--;
}

/* double the ring in place: the wrapped part (slots 1 .. head-1) moves
   after the old end, so the items stay contiguous from head */
static void ring_grow(lua_State *L, fifo *q) {
  lua_Integer i, cap = q->cap, ncap = cap * 2;
  if (ncap > q->max) ncap = q->max;
  for (i = cap + 1; i <= ncap; i++) {
    lua_pushboolean(L, 0);
    lua_rawseti(L, RING, i);
  }
  for (i = 1; i < q->head; i++) {
    lua_rawgeti(L, RING, i);
    lua_rawseti(L, RING, cap + i);
    lua_pushboolean(L, 0);
    lua_rawseti(L, RING, i);
  }
  q->cap = ncap;
}

/* ------------------------------------------------------------ fast paths */

/* continuation of a slow path called from C: its results are the call's */
static int slow_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  return lua_gettop(L);
}

static int call_slow(lua_State *L, int slow) {
  lua_pushvalue(L, lua_upvalueindex(slow));
  lua_insert(L, 1);
  lua_callk(L, lua_gettop(L) - 1, LUA_MULTRET, 0, slow_k);
  return lua_gettop(L);
}

/* The slow paths keep two invariants that spare most list lookups:
   getters wait only while the queue is empty (a put with a live getter
   waiting hands the item over; a store happens only once the getters
   list is empty), and putters only while it is full (a get that makes
   room refills from the first live putter). So a put into a non-empty
   queue has no getter to serve, and a get from a queue that is not full
   has no putter to refill from. */

/* q:put(item) */
static int fifo_put(lua_State *L) {
  fifo *q = get_fifo(L);
  lua_Integer n = q->n;
  if (!lua_rawequal(L, 1, lua_upvalueindex(8)))  /* a bad self: the slow */
    return call_slow(L, 5);                      /* path says so */
  if (n < q->cap && n < q->max && !q->shut && (n > 0 || list_empty(L, GETTERS))) {
    if (lua_gettop(L) != 2) lua_settop(L, 2);
    ring_push(L, q);
    q->unfinished++;
    return 0;
  }
  return call_slow(L, 5);
}

/* q:get() -> item */
static int fifo_get(lua_State *L) {
  fifo *q = get_fifo(L);
  lua_Integer n = q->n;
  if (!lua_rawequal(L, 1, lua_upvalueindex(8)))
    return call_slow(L, 6);
  if (n > 0 && (n < q->max || list_empty(L, PUTTERS))) {
    ring_shift(L, q);
    return 1;
  }
  return call_slow(L, 6);
}

/* ------------------------------------------------------------ accessors */

/* store(item): at the tail, growing the ring if it is full (the slow
   path has checked maxsize) */
static int fifo_store(lua_State *L) {
  fifo *q = get_fifo(L);
  if (q->n >= q->max) return luaL_error(L, "corio.queue: store into a full queue");
  if (q->n == q->cap) ring_grow(L, q);
  lua_settop(L, 1);
  ring_push(L, q);
  return 0;
}

/* take() -> the item at the head (the slow path has checked count) */
static int fifo_take(lua_State *L) {
  fifo *q = get_fifo(L);
  if (q->n == 0) return luaL_error(L, "corio.queue: take from an empty queue");
  ring_shift(L, q);
  return 1;
}

static int fifo_count(lua_State *L) {
  lua_pushinteger(L, get_fifo(L)->n);
  return 1;
}

/* bump(d) -> unfinished after adding d */
static int fifo_bump(lua_State *L) {
  fifo *q = get_fifo(L);
  q->unfinished += luaL_checkinteger(L, 1);
  lua_pushinteger(L, q->unfinished);
  return 1;
}

static int fifo_is_shut(lua_State *L) {
  lua_pushboolean(L, get_fifo(L)->shut);
  return 1;
}

static int fifo_set_shut(lua_State *L) {
  get_fifo(L)->shut = 1;
  return 0;
}

/* core.fifo(maxsize, getters, putters, put_slow, get_slow, queue) -> put, get,
   store, take, count, bump, is_shut, set_shut. maxsize: an integer > 0,
   or math.huge for an unbounded queue. */
static int l_fifo(lua_State *L) {
  static const lua_CFunction fns[] = {
    fifo_put, fifo_get, fifo_store, fifo_take, fifo_count, fifo_bump,
    fifo_is_shut, fifo_set_shut
  };
  fifo *q;
  lua_Integer i, max;
  int k, nfns = (int)(sizeof fns / sizeof fns[0]);
  if (lua_isinteger(L, 1)) max = lua_tointeger(L, 1);
  else if (lua_tonumber(L, 1) == HUGE_VAL) max = LUA_MAXINTEGER;
  else return luaL_argerror(L, 1, "an integer or math.huge expected");
  luaL_argcheck(L, max > 0, 1, "must be positive");
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  luaL_checktype(L, 4, LUA_TFUNCTION);
  luaL_checktype(L, 5, LUA_TFUNCTION);
  luaL_checktype(L, 6, LUA_TTABLE);
  lua_settop(L, 6);
  q = (fifo *)lua_newuserdatauv(L, sizeof *q, 0);
  q->n = 0;
  q->head = 1;
  q->cap = max < FIFO_FIRST_CAP ? max : FIFO_FIRST_CAP;
  q->max = max;
  q->unfinished = 0;
  q->shut = 0;
  lua_createtable(L, (int)q->cap, 0);
  for (i = 1; i <= q->cap; i++) {
    lua_pushboolean(L, 0);
    lua_rawseti(L, -2, i);
  }
  /* upvalues in order: fifo, ring, getters, putters, put_slow, get_slow,
     "head", queue */
  lua_rotate(L, 2, 2);   /* 1 max, 2 fifo, 3 ring, 4 getters, 5 putters, 6 put, 7 get, 8 queue */
  lua_pushliteral(L, "head");
  lua_insert(L, 8);      /* 8 "head", 9 queue */
  for (k = 0; k < nfns; k++) {  /* put, get: all 8; the accessors: fifo, ring */
    int nup = k < 2 ? 8 : 2;
    for (i = 2; i < 2 + nup; i++) lua_pushvalue(L, (int)i);
    lua_pushcclosure(L, fns[k], nup);
  }
  return nfns;
}

const luaL_Reg corio__queue_funcs[] = {
  {"fifo", l_fifo},
  {NULL, NULL}
};
