/*
** alloc.c: the allocator corio gives a Lua state that uses Lua's own
** (luaL_newstate's realloc/free). A task costs a few small blocks (its
** userdata, its coroutine's lua_State and stack, three CallInfos); under
** malloc each carries a header and rounding, and a million of them make
** malloc's slow paths a quarter of the instructions of a burst of tasks.
**
** Blocks of up to SLAB_MAX bytes come from pages of 64 KiB carved from one
** reserved region (address space only, made usable 2 MiB at a time, huge
** pages past its first HUGE_FROM bytes). A page serves one size class
** (multiples of 16 bytes) and keeps its own free list, so freeing needs no
** search: the page is the block's address rounded down. A page whose
** blocks are all free may serve any class; past a reserve of such pages,
** the loop gives them back to the system when it goes idle
** (corio__alloc_trim). Blocks of HUGE_BLOCK bytes or more are a mapping
** each, grown by mremap. The blocks in between, and every block Lua had
** before corio was opened, stay with the previous allocator: a block is
** ours when its address lies in the region or it is in the list of
** mappings.
**
** Not installed when the state has an allocator of its own (a host's:
** limits, accounting), when the host asks (CORIO_KEEP_ALLOC), under the
** sanitizers and valgrind (they watch malloc's blocks one by one; under
** valgrind CORIO_ALLOC=corio installs it all the same), or when
** CORIO_ALLOC=system. The region is unmapped when Lua frees the
** state's own block, the last call of lua_close. That call comes after
** the loader has closed the C libraries, so the library holding this
** code is pinned (RTLD_NODELETE) before it is installed.
*/
#define _GNU_SOURCE  /* dladdr */
#include <dlfcn.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include "binding.h"

#define PAGE_SHIFT 16
#define PAGE_SIZE  ((size_t)1 << PAGE_SHIFT)
#define GRAIN      16         /* sizes and alignment: malloc's 16 */
#define SLAB_MAX   ((size_t)1024)
#define NCLASS     (SLAB_MAX / GRAIN)
#define REGION_MAX ((size_t)8 << 30)   /* reserved, not committed */
#define REGION_MIN ((size_t)64 << 20)
#define COMMIT_STEP ((size_t)2 << 20)  /* made usable 2 MiB at a time */
#define HUGE_SIZE  ((size_t)2 << 20)    /* the region is aligned to it */
#define HUGE_FROM  ((size_t)4 << 20)    /* huge pages from there on */
#define HUGE_BLOCK ((size_t)4 << 20)    /* blocks this large: a mapping each */
/* empty pages kept resident: 4 MiB, or an eighth of the pages in use */
#define IN_USE(s) ((s)->carved - (s)->nempty - (s)->nreleased)
#define EMPTY_KEEP(s) (IN_USE(s) / 8 > 64 ? IN_USE(s) / 8 : 64)
#define TRIM_EVERY ((uint64_t)100000000)  /* ns of loop time */

typedef struct page {
  void *free;                /* freed blocks of this page, linked through them */
  struct page *next, *prev;  /* its class's pages with room, or empty pages */
  uint32_t used;             /* blocks handed out */
  uint32_t bump;             /* blocks never handed out start here */
  uint32_t cap;              /* blocks the page holds */
  uint16_t size;             /* block size; 0 on an empty page */
  uint8_t listed;            /* in its class's list of pages with room */
} page;

#define HDR (((sizeof(page) + GRAIN - 1) / GRAIN) * GRAIN)

typedef struct bigblock {
  void *p;
  size_t len;                /* of its mapping */
} bigblock;

typedef struct slab {
  lua_Alloc prev_f;          /* Lua's allocator: large blocks, blocks from before */
  void *prev_ud;
  char *base;                /* the region */
  size_t size;
  size_t carved;             /* pages carved from the region so far */
  size_t committed;          /* bytes of the region made writable so far */
  page *avail[NCLASS];       /* per class: pages with a free block */
  page *empty;               /* pages with no block in use, still resident */
  size_t nempty;
  uint32_t *released;        /* pages given back to the system (indexes), to reuse */
  size_t nreleased, released_cap;
  uint64_t last_trim;        /* loop time of the last corio__alloc_trim that released */
  bigblock *bigs;            /* blocks of HUGE_BLOCK or more, a mapping each */
  size_t nbigs, bigcap;
  const void *last;          /* the state's own block: its free is lua_close's last */
} slab;

#define is_ours(s, p) ((uintptr_t)((char *)(p) - (s)->base) < (s)->size)
#define page_of(p) ((page *)((uintptr_t)(p) & ~(uintptr_t)(PAGE_SIZE - 1)))
#define class_of(n) (((n) - 1) / GRAIN)

static void unlist(slab *s, page *p, int cls) {
  if (p->prev) p->prev->next = p->next;
  else s->avail[cls] = p->next;
  if (p->next) p->next->prev = p->prev;
  p->next = p->prev = NULL;
  p->listed = 0;
}

static void list(slab *s, page *p, int cls) {
  p->prev = NULL;
  p->next = s->avail[cls];
  if (p->next) p->next->prev = p;
  s->avail[cls] = p;
  p->listed = 1;
}

static page *new_page(slab *s, int cls) {
  page *p;
  if ((p = s->empty) != NULL) {
    s->empty = p->next;
    s->nempty--;
  }
  else if (s->nreleased > 0)  /* zero pages again: they fault in as used */
    p = (page *)(s->base + ((size_t)s->released[--s->nreleased] << PAGE_SHIFT));
  else {
    size_t end = (s->carved + 1) << PAGE_SHIFT;
    if (end > s->size) return NULL;  /* the region is full */
    if (end > s->committed) {  /* reserved, not yet usable: a step at a time */
      size_t step = s->size - s->committed < COMMIT_STEP ? s->size - s->committed
                                                         : COMMIT_STEP;
      if (mprotect(s->base + s->committed, step, PROT_READ | PROT_WRITE) != 0)
        return NULL;
      s->committed += step;
    }
    p = (page *)(s->base + (s->carved++ << PAGE_SHIFT));
  }
  p->free = NULL;
  p->used = p->bump = 0;
  p->size = (uint16_t)((cls + 1) * GRAIN);
  p->cap = (uint32_t)((PAGE_SIZE - HDR) / p->size);
  list(s, p, cls);
  return p;
}

static void *slab_get(slab *s, size_t n) {
  int cls = (int)class_of(n);
  page *p = s->avail[cls];
  void *b;
  if (p == NULL && (p = new_page(s, cls)) == NULL)
    return s->prev_f(s->prev_ud, NULL, 0, n);  /* the region is full */
  if (p->free != NULL) {
    b = p->free;
    p->free = *(void **)b;
  }
  else b = (char *)p + HDR + (size_t)p->bump++ * p->size;
  if (++p->used == p->cap) unlist(s, p, cls);
  return b;
}

static void slab_put(slab *s, void *b) {
  page *p = page_of(b);
  int cls = (int)class_of((size_t)p->size);
  *(void **)b = p->free;
  p->free = b;
  if (!p->listed) list(s, p, cls);
  if (--p->used == 0 && (p->next != NULL || p->prev != NULL)) {
    /* empty, and not its class's only page with room: any class may take
       it (corio__alloc_trim gives the surplus back to the system) */
    unlist(s, p, cls);
    p->size = 0;
    p->next = s->empty;
    s->empty = p;
    s->nempty++;
  }
}

static void big_free(slab *s, long i);

static void slab_close(slab *s) {
  munmap(s->base, s->size);
  while (s->nbigs > 0) big_free(s, 0);  /* none: Lua freed every block before */
  free(s->bigs);
  free(s->released);
  free(s);
}

/* ---- blocks of HUGE_BLOCK or more (a big table's array, a long string):
   a mapping each, with huge pages, grown and shrunk by mremap, which moves
   page tables instead of copying bytes. Few exist at a time, so they are
   found in a short list. */

/* the whole mapping (a part would split it, and mremap moves one mapping
   only); the kernel gives huge pages where 2 MiB fit aligned */
static void advise_huge(void *b, size_t n) {
#ifdef MADV_HUGEPAGE
  madvise(b, n, MADV_HUGEPAGE);
#else
  (void)b;
  (void)n;
#endif
}

#define map_len(n) (((n) + 4095) & ~(size_t)4095)

static long big_find(slab *s, const void *p) {
  size_t i;
  for (i = 0; i < s->nbigs; i++)
    if (s->bigs[i].p == p) return (long)i;
  return -1;
}

static void *big_new(slab *s, size_t n) {
  void *m;
  if (s->nbigs == s->bigcap) {
    size_t cap = s->bigcap ? s->bigcap * 2 : 16;
    bigblock *v = (bigblock *)realloc(s->bigs, cap * sizeof *v);
    if (v == NULL) return NULL;
    s->bigs = v;
    s->bigcap = cap;
  }
  m = mmap(NULL, map_len(n), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return NULL;
  advise_huge(m, map_len(n));
  s->bigs[s->nbigs].p = m;
  s->bigs[s->nbigs++].len = map_len(n);
  return m;
}

static void big_free(slab *s, long i) {
  munmap(s->bigs[i].p, s->bigs[i].len);
  s->bigs[i] = s->bigs[--s->nbigs];
}

/* a new block of n bytes, from wherever blocks of that size come from */
static void *get(slab *s, size_t n) {
  if (n - 1 < SLAB_MAX) return slab_get(s, n);
  if (n >= HUGE_BLOCK) return big_new(s, n);
  return s->prev_f(s->prev_ud, NULL, 0, n);
}

static void *slab_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  slab *s = (slab *)ud;
  void *b;
  long i = -1;
  if (ptr == NULL) {  /* a new block (osize tells its type, not a size) */
    if (nsize - 1 < SLAB_MAX) return slab_get(s, nsize);
    if (nsize >= HUGE_BLOCK) return big_new(s, nsize);
    return s->prev_f(s->prev_ud, NULL, osize, nsize);
  }
  if (is_ours(s, ptr)) {
    if (nsize == 0) {
      slab_put(s, ptr);
      return NULL;
    }
    if (nsize - 1 < SLAB_MAX && class_of(nsize) == class_of((size_t)page_of(ptr)->size))
      return ptr;  /* the same class */
  }
  else if (s->nbigs > 0 && (i = big_find(s, ptr)) >= 0) {  /* osize not trusted */
    if (nsize == 0) {
      big_free(s, i);
      return NULL;
    }
    if (nsize >= HUGE_BLOCK) {  /* stays a mapping of its own */
      b = mremap(ptr, s->bigs[i].len, map_len(nsize), MREMAP_MAYMOVE);
      if (b == MAP_FAILED) return (nsize <= s->bigs[i].len) ? ptr : NULL;
      advise_huge(b, map_len(nsize));
      s->bigs[i].p = b;
      s->bigs[i].len = map_len(nsize);
      return b;
    }
  }
  else if (nsize == 0 && ptr == s->last) {  /* lua_close's last call */
    lua_Alloc f = s->prev_f;
    void *fud = s->prev_ud;
    slab_close(s);
    return f(fud, ptr, osize, 0);
  }
  else if (nsize < HUGE_BLOCK || nsize <= osize)  /* Lua's, and stays Lua's */
    return s->prev_f(s->prev_ud, ptr, osize, nsize);
  /* moves between kinds of block; the old size of one of ours is its own
     (a C library calling the allocator itself may pass a wrong osize, which
     Lua's allocator, realloc, never reads) */
  if (is_ours(s, ptr)) osize = page_of(ptr)->size;
  else if (i >= 0) osize = s->bigs[i].len;
  else osize = malloc_usable_size(ptr);  /* Lua's allocator is realloc's */
  b = get(s, nsize);
  if (b == NULL) return (nsize <= osize) ? ptr : NULL;  /* shrinking never fails */
  memcpy(b, ptr, osize < nsize ? osize : nsize);
  if (is_ours(s, ptr)) slab_put(s, ptr);
  else if (i >= 0) big_free(s, i);
  else s->prev_f(s->prev_ud, ptr, osize, 0);
  return b;
}

/* the allocator luaL_newstate gives a state */
static lua_Alloc standard_alloc(void) {
  lua_State *L = luaL_newstate();
  lua_Alloc f;
  if (L == NULL) return NULL;
  f = lua_getallocf(L, NULL);
  lua_close(L);
  return f;
}

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(CORIO_SANITIZE)
#define CORIO_SANITIZE
#endif
#if defined(__has_feature)
#if __has_feature(address_sanitizer) && !defined(CORIO_SANITIZE)
#define CORIO_SANITIZE  /* clang's spelling (the fuzz targets) */
#endif
#endif

/* CORIO_ALLOC=system declines; under valgrind, memcheck watches malloc's
   blocks one by one, so corio declines unless CORIO_ALLOC=corio */
static int wanted(void) {
#ifdef CORIO_SANITIZE
  return 0;
#else
  const char *e = getenv("CORIO_ALLOC");
  if (e != NULL && strcmp(e, "corio") == 0) return 1;
  return (e == NULL || strcmp(e, "system") != 0) && !RUNNING_ON_VALGRIND;
#endif
}

/* keep this code mapped until the process ends */
static int pinned(void) {
  Dl_info info;
  if (dladdr((void *)(uintptr_t)slab_alloc, &info) == 0 || info.dli_fname == NULL)
    return 0;
  if (dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD | RTLD_NODELETE) != NULL)
    return 1;
  /* not a library: the program itself (libcorio.a), never unloaded */
  {
    char *self = realpath("/proc/self/exe", NULL), *obj = realpath(info.dli_fname, NULL);
    int same = self != NULL && obj != NULL && strcmp(self, obj) == 0;
    free(self);
    free(obj);
    return same;
  }
}

/* Give L corio's allocator, if it runs on Lua's own: 1 if it does now. */
int corio__alloc_install(lua_State *L) {
  void *ud;
  lua_Alloc f = lua_getallocf(L, &ud);
  slab *s;
  size_t size;
  lua_State *main_L;
  if (f == slab_alloc) return 1;
  if (!wanted() || f != standard_alloc() || !pinned()) return 0;
  s = (slab *)calloc(1, sizeof *s);
  if (s == NULL) return 0;
  size = REGION_MAX;
  {  /* under a limit on address space, take at most an eighth of it */
    struct rlimit lim;
    if (getrlimit(RLIMIT_AS, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY)
      while (size >= REGION_MIN && size > lim.rlim_cur / 8) size /= 2;
  }
  for (; size >= REGION_MIN; size /= 2) {
    /* address space only: no access, so no commit charge even where the
       system does not overcommit, until mprotect makes a step usable */
    void *m = mmap(NULL, size + HUGE_SIZE, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m != MAP_FAILED) {  /* aligned for huge pages: trim the ends */
      uintptr_t a = ((uintptr_t)m + HUGE_SIZE - 1) & ~(uintptr_t)(HUGE_SIZE - 1);
      size_t head = a - (uintptr_t)m;
      if (head > 0) munmap(m, head);
      munmap((char *)a + size, HUGE_SIZE - head);
      s->base = (char *)a;
      s->size = size;
#ifdef MADV_HUGEPAGE
      /* past the first MiBs, a program holds many blocks: huge pages
         save most of the page faults and TLB misses of touching them */
      madvise(s->base + HUGE_FROM, size - HUGE_FROM, MADV_HUGEPAGE);
#endif
      break;
    }
  }
  if (s->base == NULL) {
    free(s);
    return 0;
  }
  s->prev_f = f;
  s->prev_ud = ud;
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  main_L = lua_tothread(L, -1);
  lua_pop(L, 1);
  s->last = (const char *)main_L - LUA_EXTRASPACE;
  lua_setallocf(L, slab_alloc, s);
  return 1;
}

static int higher_first(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return (x < y) - (x > y);
}

/* Give the empty pages past a reserve back to the system, down to half
   the reserve. The loop calls it when a batch ends with nothing ready (it
   is about to poll), at most every TRIM_EVERY of loop time: each madvise
   costs a TLB flush and a page given back costs page faults when it is
   used again, so pages go in runs of neighbours, and not while a burst
   is still freeing. Nothing happens when L is not on this allocator, or
   when the list of released pages cannot grow (they then stay resident). */
void corio__alloc_trim(lua_State *L, uint64_t now) {
  void *ud;
  slab *s;
  size_t keep, n, i, j;
  uint32_t *r;
  if (lua_getallocf(L, &ud) != slab_alloc) return;
  s = (slab *)ud;
  keep = EMPTY_KEEP(s);
  if (s->nempty <= keep || now - s->last_trim < TRIM_EVERY) return;
  n = s->nempty - keep / 2;
  if (s->nreleased + n > s->released_cap) {
    size_t cap = (s->nreleased + n) * 2;
    uint32_t *grown = (uint32_t *)realloc(s->released, cap * sizeof *grown);
    if (grown == NULL) return;
    s->released = grown;
    s->released_cap = cap;
  }
  r = s->released + s->nreleased;  /* the pages' indexes, highest first */
  for (i = 0; i < n; i++) {
    r[i] = (uint32_t)(((char *)s->empty - s->base) >> PAGE_SHIFT);
    s->empty = s->empty->next;
  }
  qsort(r, n, sizeof *r, higher_first);
  for (i = 0; i < n; i = j) {
    for (j = i + 1; j < n && r[j] + 1 == r[j - 1]; j++) {}
    madvise(s->base + ((size_t)r[j - 1] << PAGE_SHIFT), (j - i) * PAGE_SIZE, MADV_DONTNEED);
  }
  s->nempty -= n;
  s->nreleased += n;  /* new_page takes from the end: the lowest first */
  s->last_trim = now;
}

/* What the allocator holds, for core._introspect: bytes of pages carved
   from the region (the most ever in use at once), and of those, bytes
   given back to the system. 0 when L does not use it. */
int corio__alloc_stats(lua_State *L, size_t *carved, size_t *released) {
  void *ud;
  slab *s;
  if (lua_getallocf(L, &ud) != slab_alloc) return 0;
  s = (slab *)ud;
  *carved = s->carved << PAGE_SHIFT;
  *released = s->nreleased << PAGE_SHIFT;
  return 1;
}
