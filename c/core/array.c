/*
** array.c: the core's arrays that may grow to megabytes (the ready ring,
** the timer heap and run). Past ARRAY_MAPPED bytes an array is a mapping
** of its own that asks for transparent huge pages: a million ready tasks
** or timers then cost a few page faults instead of thousands, and freeing
** the array gives its memory back at once. Smaller arrays, and every
** array under the sanitizers (which watch malloc's blocks), use malloc.
** The caller passes the size to corio__array_free: it says which.
*/
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include "corio-internal.h"

#define ARRAY_MAPPED ((size_t)4 << 20)
#define HUGE_PAGE    ((size_t)2 << 20)

#if defined(MADV_HUGEPAGE) && !defined(CORIO_SANITIZE)
#define MAPPED(bytes) ((bytes) >= ARRAY_MAPPED)
#else
#define MAPPED(bytes) 0
#endif

void *corio__array_new(size_t bytes) {
  if (MAPPED(bytes)) {
    void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    uintptr_t from, to;
    if (m == MAP_FAILED) return NULL;
    from = ((uintptr_t)m + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1);
    to = ((uintptr_t)m + bytes) & ~(uintptr_t)(HUGE_PAGE - 1);
#ifdef MADV_HUGEPAGE
    if (to > from) madvise((void *)from, to - from, MADV_HUGEPAGE);
#endif
    return m;
  }
  return malloc(bytes);
}

void corio__array_free(void *p, size_t bytes) {
  if (p == NULL) return;
  if (MAPPED(bytes)) munmap(p, bytes);
  else free(p);
}
