/*
** array.c: the core's arrays that may grow to megabytes (the ready ring,
** the timer heap and run). Past ARRAY_MAPPED bytes an array is a mapping
** of its own that asks for transparent huge pages: a million ready tasks
** or timers then cost a few page faults instead of thousands, and freeing
** the array gives its memory back at once. Smaller arrays, and every
** array under the sanitizers (which watch malloc's blocks), use malloc.
** The caller passes the size to corio__array_free: it says which.
*/
#include <stdlib.h>
#include <sys/mman.h>
#include "corio-internal.h"

#define ARRAY_MAPPED ((size_t)4 << 20)

#if defined(MADV_HUGEPAGE) && !defined(CORIO_SANITIZE)
#define MAPPED(bytes) ((bytes) >= ARRAY_MAPPED)
#else
#define MAPPED(bytes) 0
#endif

void *corio__array_new(size_t bytes) {
  if (MAPPED(bytes)) {
    void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return NULL;
#ifdef MADV_HUGEPAGE
    madvise(m, bytes, MADV_HUGEPAGE);  /* huge pages where 2 MiB fit aligned */
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
