/*
** timer.c: the loop's deadlines, a binary min-heap of corio_timer_t
** pointers ordered by (when, seq), so equal deadlines fire in the order
** they were set. One uv_timer_t is armed at the earliest deadline.
** A sleeping task costs one heap slot (8 bytes) plus its embedded timer.
*/
#include <stdlib.h>
#include "corio-internal.h"

/* Entries carry their deadline, so sifting reads only the heap array;
   the timer itself is touched only to break a tie or to update its slot. */
static int entry_less(const corio_heap_entry_t *a, const corio_heap_entry_t *b) {
  if (a->when != b->when) return a->when < b->when;
  /* 32-bit sequence numbers compared modulo 2^32: right while fewer than
     2^31 timers are set between two with the same deadline */
  return (int32_t)(a->timer->seq - b->timer->seq) < 0;
}

static void heap_set(corio_loop_t *loop, uint32_t i, corio_heap_entry_t e) {
  loop->heap[i] = e;
  e.timer->slot = i + 1;
}

static void sift_up(corio_loop_t *loop, uint32_t i) {
  corio_heap_entry_t e = loop->heap[i];
  while (i > 0) {
    uint32_t parent = (i - 1) / 2;
    if (!entry_less(&e, &loop->heap[parent])) break;
    heap_set(loop, i, loop->heap[parent]);
    i = parent;
  }
  heap_set(loop, i, e);
}

static void sift_down(corio_loop_t *loop, uint32_t i) {
  corio_heap_entry_t e = loop->heap[i];
  uint32_t n = loop->hcount;
  for (;;) {
    uint32_t c = 2 * i + 1;
    if (c >= n) break;
    if (c + 1 < n && entry_less(&loop->heap[c + 1], &loop->heap[c])) c++;
    if (!entry_less(&loop->heap[c], &e)) break;
    heap_set(loop, i, loop->heap[c]);
    i = c;
  }
  heap_set(loop, i, e);
}

void corio_timer_init(corio_timer_t *t, corio_timer_cb cb) {
  t->when = 0;
  t->seq = 0;
  t->slot = 0;
  t->cb = cb;
}

int corio_timer_start(corio_loop_t *loop, corio_timer_t *t, uint64_t when) {
  if (t->slot) corio_timer_stop(loop, t);
  if (loop->hcount == loop->hcap) {
    uint32_t cap = loop->hcap ? loop->hcap * 2 : 64;
    corio_heap_entry_t *h = (corio_heap_entry_t *)realloc(loop->heap, cap * sizeof *h);
    if (h == NULL) return CORIO_ENOMEM;
    loop->heap = h;
    loop->hcap = cap;
  }
  t->when = when;
  t->seq = loop->seq++;
  loop->heap[loop->hcount].when = when;
  loop->heap[loop->hcount].timer = t;
  sift_up(loop, loop->hcount++);
  if (loop->heap[0].timer == t) corio__timers_rearm(loop);
  return 0;
}

void corio_timer_stop(corio_loop_t *loop, corio_timer_t *t) {
  uint32_t i;
  corio_heap_entry_t last;
  if (t->slot == 0) return;
  i = t->slot - 1;
  t->slot = 0;
  last = loop->heap[--loop->hcount];
  if (last.timer != t) {
    heap_set(loop, i, last);
    sift_up(loop, i);
    sift_down(loop, last.timer->slot - 1);
  }
  /* the uv timer stays armed for the old deadline: firing early is cheap
     and rearms; stopping it here would cost a uv call per cancelled sleep */
  if (loop->hcount == 0) corio__timers_rearm(loop);
}

static void uv_timer_fired(uv_timer_t *handle) {
  corio_loop_t *loop = corio__container_of(handle, corio_loop_t, timer);
  loop->armed = 0;
  corio__timers_fire(loop);
}

/* fire every timer whose deadline has passed, in (when, seq) order */
void corio__timers_fire(corio_loop_t *loop) {
  corio_loop_update_time(loop);
  while (loop->hcount > 0 && loop->heap[0].when <= loop->now) {
    corio_timer_t *t = loop->heap[0].timer;
    corio_timer_stop(loop, t);
    t->cb(loop, t);
  }
  corio__timers_rearm(loop);
}

/* arm the uv timer for the earliest deadline (or stop it) */
void corio__timers_rearm(corio_loop_t *loop) {
  uint64_t when, ms;
  if (loop->closing) return;
  if (loop->hcount == 0) {
    uv_timer_stop(&loop->timer);
    return;
  }
  when = loop->heap[0].when;  /* any value, 0 included, is a deadline */
  if (uv_is_active((uv_handle_t *)&loop->timer) && loop->armed == when) return;
  ms = when > loop->now ? (when - loop->now + 999999) / 1000000 : 0;
  loop->timer.data = loop;
  uv_timer_start(&loop->timer, uv_timer_fired, ms, 0);
  loop->armed = when;
}
