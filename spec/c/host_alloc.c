/*
** host_alloc.c: the allocator corio gives a state on Lua's own (alloc.c):
** when it is installed and when not, that blocks of every size keep their
** contents through growth, reuse and release, that emptied pages go back
** when the loop idles and are reused, and that lua_close leaves nothing behind (the leak
** check of ASan and valgrind). Under the sanitizers corio leaves the
** state to malloc; the same Lua code then runs on it.
*/
#include <stdlib.h>
#include <string.h>
#include "host_test.h"

#ifdef CORIO_SANITIZE
#define EXPECTED "lua"
#else
#define EXPECTED "corio"
#endif

/* what core._introspect() says of the allocator: name, pages, released */
static void stats(lua_State *L, char *name, size_t len, lua_Integer *pages,
                  lua_Integer *released) {
  host_do(L, "local i = require('corio.core')._introspect() "
             "alloc_name, alloc_pages, alloc_released = i.allocator, "
             "i.pages or 0, i.released or 0");
  lua_getglobal(L, "alloc_name");
  CHECK(lua_isstring(L, -1));
  snprintf(name, len, "%s", lua_tostring(L, -1));
  lua_pop(L, 1);
  *pages = host_int(L, "alloc_pages");
  *released = host_int(L, "alloc_released");
}

static const char *allocator(lua_State *L) {
  static char name[16];
  lua_Integer p, r;
  stats(L, name, sizeof name, &p, &r);
  return name;
}

/* objects of every small size and some large, filled with what their index
   says, then checked: a block handed out twice, or moved without its
   contents, fails here */
static const char *burst =
  "local n = ... "
  "local keep = {} "
  "for i = 1, n do "
  "  local k = i % 7 "
  "  if k == 0 then keep[i] = string.rep(string.char(65 + i % 26), i % 1500) "
  "  elseif k == 1 then keep[i] = {i, i + 1, x = i} "
  "  elseif k == 2 then local t = {} for j = 1, i % 90 do t[j] = j * i end keep[i] = t "
  "  elseif k == 3 then local co = coroutine.create(function(a) local b = coroutine.yield(a + 1) return b * 2 end) "
  "    assert(select(2, coroutine.resume(co, i)) == i + 1) keep[i] = co "
  "  elseif k == 4 then local a, b = i, -i keep[i] = function() return a + b + i end "
  "  elseif k == 5 then keep[i] = tostring(i) .. ':' .. string.rep('z', i % 40) "
  "  else keep[i] = setmetatable({}, {__index = function() return i end}) end "
  "end "
  "local sum = 0 "
  "for i = 1, n do "
  "  local v, k = keep[i], i % 7 "
  "  if k == 0 then assert(#v == i % 1500 and (v == '' or v:byte(1) == 65 + i % 26)) "
  "  elseif k == 1 then assert(v[1] == i and v[2] == i + 1 and v.x == i) "
  "  elseif k == 2 then assert(#v == i % 90) for j = 1, #v do assert(v[j] == j * i) end "
  "  elseif k == 3 then local ok, r = coroutine.resume(v, i) assert(ok and r == i * 2) "
  "  elseif k == 4 then assert(v() == i) "
  "  elseif k == 5 then assert(v:match('^(%d+):') == tostring(i)) "
  "  else assert(v.anything == i) end "
  "  sum = sum + 1 "
  "end "
  "return sum";

/* the burst inside a run, collected, then a sleep: the loop gives the
   surplus pages back when a batch ends with nothing ready */
static void run_burst(lua_State *L, int n) {
  CHECK(luaL_loadstring(L, burst) == LUA_OK);
  lua_setglobal(L, "burst");
  lua_pushinteger(L, n);
  lua_setglobal(L, "burst_n");
  host_do(L, "burst_sum = corio.run(function() "
             "  local sum = burst(burst_n) "
             "  collectgarbage() collectgarbage() "
             "  corio.sleep(0.01) "
             "  return sum "
             "end)");
  CHECK(host_int(L, "burst_sum") == n);
}

/* a state as host_state makes it, with corio's allocator asked for
   (under valgrind it is declined unless asked) */
static lua_State *state_on_corio(void) {
  setenv("CORIO_ALLOC", "corio", 1);
  return host_state();
}

static void test_installed_on_lua_own(void) {
  lua_State *L = state_on_corio();
  CHECK(strcmp(allocator(L), EXPECTED) == 0);
  lua_close(L);
}

static void test_burst_released_and_reused(void) {
  lua_State *L;
  char name[16];
  lua_Integer pages1, rel1, pages2, rel2;
  L = state_on_corio();
  run_burst(L, 60000);
  stats(L, name, sizeof name, &pages1, &rel1);
  CHECK(strcmp(name, EXPECTED) == 0);
  run_burst(L, 60000);
  stats(L, name, sizeof name, &pages2, &rel2);
  if (strcmp(name, "corio") == 0) {
    CHECK(pages1 > 0);
    CHECK(rel1 > pages1 / 4);      /* emptied pages went back */
    CHECK(pages2 <= pages1 * 11 / 10);  /* the second burst reused them */
    CHECK(rel2 > 0);
  }
  lua_close(L);
}

/* tables and stacks grow by realloc: within a class, across classes, and
   out of the allocator's sizes into Lua's own, then back by shrinking */
static void test_growth_across_sizes(void) {
  lua_State *L = state_on_corio();
  host_do(L,
    "local t = {} "
    "for i = 1, 5000 do t[i] = i * 3 end "
    "for i = 1, 5000 do assert(t[i] == i * 3) end "
    "local h = {} "
    "for i = 1, 3000 do h['k' .. i] = i end "
    "for i = 1, 3000 do assert(h['k' .. i] == i) end "
    "for i = 1, 2990 do h['k' .. i] = nil end "
    "collectgarbage() "
    "for i = 2991, 3000 do assert(h['k' .. i] == i) end "
    "local function deep(n) if n == 0 then return 0 end return 1 + deep(n - 1) end "
    "assert(deep(3000) == 3000) "
    "local co = coroutine.wrap(function() return deep(2000) end) "
    "assert(co() == 2000) "
    "local parts = {} "
    "for i = 1, 2000 do parts[i] = string.format('%05d', i) end "
    "local s = table.concat(parts) "
    "assert(#s == 10000 and s:sub(-5) == '02000')");
  lua_close(L);
}

/* One block moved through the sizes given, by L's allocator called as a
   C library calls it: each size's bytes are a pattern of the step, checked
   in full after the next move. With wrong_osize the old size passed is 0
   (Lua's realloc never reads it, so corio's allocator must not trust it
   for the blocks it moves). */
static void move_through(lua_State *L, const size_t *sizes, size_t nsizes,
                         int wrong_osize) {
  lua_Alloc f;
  void *ud;
  unsigned char *b = NULL;
  size_t len = 0, i, k;
  f = lua_getallocf(L, &ud);
  for (i = 0; i < nsizes; i++) {
    size_t n = sizes[i];
    unsigned char *nb = (unsigned char *)f(ud, b, b ? (wrong_osize ? 0 : len) : LUA_TTABLE, n);
    CHECK(nb != NULL);
    for (k = 0; k < (len < n ? len : n); k++) CHECK(nb[k] == (unsigned char)(k * 13 + i));
    for (k = 0; k < n; k++) nb[k] = (unsigned char)(k * 13 + i + 1);
    b = nb;
    len = n;
  }
  CHECK(f(ud, b, wrong_osize ? 0 : len, 0) == NULL);
}

/* blocks across the 4 MiB edge, where a block becomes a mapping of its
   own: grown and shrunk through every kind (region, Lua's, mapping) */
static void test_big_blocks(void) {
  static const size_t sizes[] = {
    100, 5000, 3u << 20, 5u << 20, 9u << 20, (4u << 20) - 1, 4u << 20, 700,
    12u << 20, 2000, 6u << 20, 40,
  };
  lua_State *L = state_on_corio();
  move_through(L, sizes, sizeof sizes / sizeof sizes[0], 0);
  /* the same from Lua: a table's array and strings past 4 MiB */
  host_do(L,
    "local t = {} "
    "for i = 1, 700000 do t[i] = i end "
    "for i = 1, 700000, 997 do assert(t[i] == i) end "
    "local s = string.rep('ab', 3000000) "
    "assert(#s == 6000000 and s:sub(-4) == 'abab') "
    "local parts = {} "
    "for i = 1, 300000 do parts[i] = 'x' .. i end "
    "local c = table.concat(parts, ',') "
    "assert(c:sub(1, 6) == 'x1,x2,' and c:sub(-7) == 'x300000') "
    "t = nil collectgarbage() "
    "local u = {} for i = 1, 1000 do u[i] = i end assert(u[1000] == 1000)");
  lua_close(L);
}

static void test_wrong_old_size(void) {
  static const size_t sizes[] = { 100, 3000, 5u << 20, 9u << 20, 500, 40 };
  lua_State *L = state_on_corio();
  move_through(L, sizes, sizeof sizes / sizeof sizes[0], 1);
  lua_close(L);
}

/* the runtime itself on it: a burst of tasks */
static void test_tasks_on_it(void) {
  lua_State *L = state_on_corio();
  host_do(L,
    "total = corio.run(function() "
    "  local tasks = {} "
    "  for i = 1, 20000 do tasks[i] = corio.spawn(function() corio.sleep(0) return i end) end "
    "  local s = 0 "
    "  for _, v in ipairs(corio.gather(tasks)) do s = s + v end "
    "  return s "
    "end)");
  CHECK(host_int(L, "total") == 20000 * 20001 / 2);
  CHECK(strcmp(allocator(L), EXPECTED) == 0);
  lua_close(L);
}

/* the allocator itself, called as Lua calls it: random blocks of every
   size around the 1 KiB edge, grown and shrunk, each filled with a byte of
   its own and checked before every move and free */
static void test_random_blocks(void) {
  enum { SLOTS = 2000, OPS = 200000 };
  static unsigned char *blk[SLOTS];
  static size_t len[SLOTS];
  lua_State *L;
  lua_Alloc f;
  void *ud;
  uint64_t rng = 88172645463325252ULL;
  int op, i;
  size_t k;
  L = state_on_corio();
  f = lua_getallocf(L, &ud);
  for (op = 0; op < OPS; op++) {
    size_t n;
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    i = (int)(rng % SLOTS);
    n = 1 + (size_t)((rng >> 20) % ((rng >> 40) % 4 == 0 ? 3000 : 300));
    for (k = 0; k < len[i]; k++) CHECK(blk[i][k] == (unsigned char)i);
    if (blk[i] != NULL && (rng >> 50) % 3 == 0) {  /* free */
      CHECK(f(ud, blk[i], len[i], 0) == NULL);
      blk[i] = NULL;
      len[i] = 0;
    }
    else {  /* new, or moved to another size */
      unsigned char *b = (unsigned char *)f(ud, blk[i], blk[i] ? len[i] : LUA_TSTRING, n);
      CHECK(b != NULL);
      CHECK(((uintptr_t)b & 7) == 0);
      for (k = 0; k < (len[i] < n ? len[i] : n); k++) CHECK(b[k] == (unsigned char)i);
      memset(b, i & 0xFF, n);
      blk[i] = b;
      len[i] = n;
    }
  }
  for (i = 0; i < SLOTS; i++) {
    for (k = 0; k < len[i]; k++) CHECK(blk[i][k] == (unsigned char)i);
    if (blk[i] != NULL) f(ud, blk[i], len[i], 0);
  }
  lua_close(L);
}

static int own_calls;
static void *own_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud;
  (void)osize;
  own_calls++;
  if (nsize == 0) {
    free(ptr);
    return NULL;
  }
  return realloc(ptr, nsize);
}

/* a host's own allocator stays */
static void test_host_allocator_kept(void) {
  lua_State *L = lua_newstate(own_alloc, NULL);
  void *ud;
  int before;
  CHECK(L != NULL);
  setenv("CORIO_ALLOC", "corio", 1);
  luaL_openlibs(L);
  luaL_requiref(L, "corio.core", luaopen_corio_core, 0);
  lua_pop(L, 1);
  CHECK(lua_getallocf(L, &ud) == own_alloc);
  CHECK(strcmp(allocator(L), "lua") == 0);
  before = own_calls;
  host_do(L, "local t = {} for i = 1, 1000 do t[i] = {i} end");
  CHECK(own_calls > before);
  lua_close(L);
}

static void test_declined(void) {
  lua_State *L;
  lua_Alloc f;
  /* the host's option */
  L = luaL_newstate();
  f = lua_getallocf(L, NULL);
  CHECK(corio_set_options(L, CORIO_KEEP_ALLOC) == 0);
  luaL_requiref(L, "corio.core", luaopen_corio_core, 0);
  lua_pop(L, 1);
  CHECK(lua_getallocf(L, NULL) == f);
  lua_close(L);
  /* the environment */
  setenv("CORIO_ALLOC", "system", 1);
  L = host_state();
  CHECK(strcmp(allocator(L), "lua") == 0);
  lua_close(L);
}

int main(void) {
  TEST_MAIN_BEGIN();
  RUN(test_installed_on_lua_own);
  RUN(test_burst_released_and_reused);
  RUN(test_growth_across_sizes);
  RUN(test_tasks_on_it);
  RUN(test_random_blocks);
  RUN(test_big_blocks);
  RUN(test_wrong_old_size);
  RUN(test_host_allocator_kept);
  RUN(test_declined);
  TEST_MAIN_END();
}
