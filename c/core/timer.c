/*
** timer.c: the loop's deadlines, ordered by (when, seq), so equal
** deadlines fire in the order they were set. One uv_timer_t is armed at
** the earliest deadline.
**
** Two structures hold them. Most deadlines arrive in order (sleeps of
** one length, set one after another): each such deadline goes at the
** tail of the *run*, a FIFO ring that stays sorted, where setting,
** firing and cancelling cost O(1) and memory is read in sequence. A
** deadline earlier than the run's tail goes into a binary min-heap.
** Firing takes the earlier of the run's head and the heap's top.
** A cancelled timer in the run leaves a hole (NULL) that firing skips.
*/
#include <stdlib.h>
#include <string.h>
#include "corio-internal.h"

/* Entries carry their deadline, so sifting reads only the heap array;
   the timer itself is touched only to break a tie or to update its slot. */
static int entry_less(const corio_heap_entry_t *a, const corio_heap_entry_t *b) {
  if (a->when != b->when) return a->when < b->when;
  /* 32-bit sequence numbers compared modulo 2^32: right while fewer than
     2^31 timers are set between two with the same deadline */
  return (int32_t)(a->timer->seq - b->timer->seq) < 0;
}

#define RUN_BIT 0x80000000u  /* in slot: the timer is in the run */

static int timer_before(const corio_timer_t *a, const corio_timer_t *b) {
  if (a->when != b->when) return a->when < b->when;
  return (int32_t)(a->seq - b->seq) < 0;
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

/* ------------------------------------------------------------ the run */

static corio_timer_t **run_at(corio_loop_t *loop, uint32_t pos) {
  return &loop->run[pos & (loop->rncap - 1)];
}

/* drop holes at the head; an empty run forgets its tail deadline */
static void run_trim(corio_loop_t *loop) {
  while (loop->rnhead != loop->rntail && *run_at(loop, loop->rnhead) == NULL)
    loop->rnhead++;
}

/* squeeze the holes out, keeping the order (a long-lived timer at the
   head would otherwise let cancelled ones behind it pile up) */
static void run_compact(corio_loop_t *loop) {
  uint32_t r, w = loop->rnhead;
  for (r = loop->rnhead; r != loop->rntail; r++) {
    corio_timer_t *t = *run_at(loop, r);
    if (t == NULL) continue;
    *run_at(loop, w) = t;
    t->slot = RUN_BIT | (w & ~RUN_BIT);
    w++;
  }
  loop->rntail = w;
}

static int run_push(corio_loop_t *loop, corio_timer_t *t) {
  if (loop->rntail - loop->rnhead == loop->rncap &&
      loop->rnlive <= loop->rncap / 2)
    run_compact(loop);
  if (loop->rntail - loop->rnhead == loop->rncap) {
    uint32_t cap = loop->rncap ? loop->rncap * 2 : 64, pos;
    corio_timer_t **r;
    if (cap > (RUN_BIT >> 1)) return CORIO_ENOMEM;
    r = (corio_timer_t **)corio__array_new(cap * sizeof *r);
    if (r == NULL) return CORIO_ENOMEM;
    for (pos = loop->rnhead; pos != loop->rntail; pos++)
      r[pos & (cap - 1)] = *run_at(loop, pos);
    corio__array_free(loop->run, loop->rncap * sizeof *r);
    loop->run = r;
    loop->rncap = cap;
  }
  *run_at(loop, loop->rntail) = t;
  t->slot = RUN_BIT | (loop->rntail & ~RUN_BIT);
  loop->rntail++;
  loop->rnlive++;
  return 0;
}

/* the run's head, or NULL if it is empty */
static corio_timer_t *run_head(corio_loop_t *loop) {
  return loop->rnhead == loop->rntail ? NULL : *run_at(loop, loop->rnhead);
}

/* ------------------------------------------------------------ timers */

int corio_timer_start(corio_loop_t *loop, corio_timer_t *t, uint64_t when) {
  corio_timer_t *first;
  if (t->slot) corio_timer_stop(loop, t);
  t->when = when;
  t->seq = loop->seq++;
  if (loop->rnhead == loop->rntail || when >= loop->rnlast) {
    if (run_push(loop, t) != 0) return CORIO_ENOMEM;
    loop->rnlast = when;
  }
  else {
    if (loop->hcount == loop->hcap) {
      uint32_t cap = loop->hcap ? loop->hcap * 2 : 64;
      corio_heap_entry_t *h = (corio_heap_entry_t *)corio__array_new(cap * sizeof *h);
      if (h == NULL) return CORIO_ENOMEM;
      if (loop->hcount > 0) memcpy(h, loop->heap, loop->hcount * sizeof *h);
      corio__array_free(loop->heap, loop->hcap * sizeof *h);
      loop->heap = h;
      loop->hcap = cap;
    }
    loop->heap[loop->hcount].when = when;
    loop->heap[loop->hcount].timer = t;
    sift_up(loop, loop->hcount++);
  }
  first = corio__timers_first(loop);
  if (first == t) corio__timers_rearm(loop);
  return 0;
}

void corio_timer_stop(corio_loop_t *loop, corio_timer_t *t) {
  uint32_t i;
  corio_heap_entry_t last;
  if (t->slot == 0) return;
  if (t->slot & RUN_BIT) {
    *run_at(loop, t->slot & ~RUN_BIT) = NULL;
    t->slot = 0;
    loop->rnlive--;
    run_trim(loop);
  }
  else {
    i = t->slot - 1;
    t->slot = 0;
    last = loop->heap[--loop->hcount];
    if (last.timer != t) {
      heap_set(loop, i, last);
      sift_up(loop, i);
      sift_down(loop, last.timer->slot - 1);
    }
  }
  /* the uv timer stays armed for the old deadline: firing early is cheap
     and rearms; stopping it here would cost a uv call per cancelled sleep */
  if (loop->hcount == 0 && loop->rnhead == loop->rntail)
    corio__timers_rearm(loop);
}

/* the timer with the earliest (when, seq), or NULL */
corio_timer_t *corio__timers_first(corio_loop_t *loop) {
  corio_timer_t *r = run_head(loop);
  corio_timer_t *h = loop->hcount ? loop->heap[0].timer : NULL;
  if (r == NULL) return h;
  if (h == NULL) return r;
  return timer_before(h, r) ? h : r;
}

static void uv_timer_fired(uv_timer_t *handle) {
  corio_loop_t *loop = corio__container_of(handle, corio_loop_t, timer);
  loop->armed = 0;
  corio__timers_fire(loop);
}

/* fire every timer whose deadline has passed, in (when, seq) order */
void corio__timers_fire(corio_loop_t *loop) {
  corio_timer_t *t;
  corio_loop_update_time(loop);
  while ((t = corio__timers_first(loop)) != NULL && t->when <= loop->now) {
    corio_timer_stop(loop, t);
    t->cb(loop, t);
  }
  corio__timers_rearm(loop);
}

/* arm the uv timer for the earliest deadline (or stop it) */
void corio__timers_rearm(corio_loop_t *loop) {
  uint64_t when, ms;
  corio_timer_t *first;
  if (loop->closing) return;
  first = corio__timers_first(loop);
  if (first == NULL) {
    uv_timer_stop(&loop->timer);
    return;
  }
  when = first->when;  /* any value, 0 included, is a deadline */
  if (uv_is_active((uv_handle_t *)&loop->timer) && loop->armed == when) return;
  ms = when > loop->now ? (when - loop->now + 999999) / 1000000 : 0;
  loop->timer.data = loop;
  uv_timer_start(&loop->timer, uv_timer_fired, ms, 0);
  loop->armed = when;
}
