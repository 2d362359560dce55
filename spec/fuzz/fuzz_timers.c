/*
** fuzz_timers.c: the loop's deadlines (c/core/timer.c: a sorted run for
** deadlines that come in order, a binary heap for the others) against a
** plain model, on virtual time.
**
** The input is a program of 3-byte operations over 64 timers:
**   start(id, when)   when is near the last deadline set (the run), far
**                     from it (the heap), or equal to one set before (ties)
**   stop(id)
**   pop(until)        take the earliest timers with when <= until, one by
**                     one, as the loop does when it fires them
** After each operation the earliest timer must be the model's earliest by
** (when, order of the start), every timer's active flag must match, and at
** the end every timer still set comes out in that order.
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "corio.h"
#include "corio-internal.h"

#define NT 64

typedef struct model {
  int active[NT];
  uint64_t when[NT];
  uint64_t order[NT];  /* when it was started: ties fire in that order */
} model;

static void fail(const char *what, int id) {
  fprintf(stderr, "fuzz_timers: %s (timer %d)\n", what, id);
  abort();
}

static void nop_cb(corio_loop_t *loop, corio_timer_t *t) {
  (void)loop;
  (void)t;
}

/* the model's earliest timer, or -1 */
static int model_first(const model *m) {
  int i, best = -1;
  for (i = 0; i < NT; i++) {
    if (!m->active[i]) continue;
    if (best < 0 || m->when[i] < m->when[best] ||
        (m->when[i] == m->when[best] && m->order[i] < m->order[best]))
      best = i;
  }
  return best;
}

static void check(corio_loop_t *loop, corio_timer_t *timers, const model *m) {
  corio_timer_t *first = corio__timers_first(loop);
  int want = model_first(m), i;
  if (want < 0 ? first != NULL : first != &timers[want])
    fail("earliest timer differs from the model's", want);
  for (i = 0; i < NT; i++) {
    if (!!corio_timer_active(&timers[i]) != m->active[i]) fail("active flag", i);
    if (m->active[i] && timers[i].when != m->when[i]) fail("deadline", i);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uv_loop_t uv;
  corio_loop_t loop;
  corio_timer_t timers[NT];
  model m;
  uint64_t last = 1000, order = 0, until;
  size_t pos;
  int i, id;
  if (uv_loop_init(&uv) != 0) abort();
  if (corio_loop_init(&loop, &uv) != 0) abort();
  memset(&m, 0, sizeof m);
  for (i = 0; i < NT; i++) corio_timer_init(&timers[i], nop_cb);
  for (pos = 0; pos + 3 <= size; pos += 3) {
    uint8_t op = data[pos], a = data[pos + 1], b = data[pos + 2];
    id = a % NT;
    switch (op % 6) {
      case 0: case 1:  /* in order (mostly): the run */
        m.when[id] = last + (uint64_t)b;
        break;
      case 2:  /* anywhere: the heap */
        m.when[id] = (uint64_t)b * 37 + (uint64_t)(a >> 6) * 100000;
        break;
      case 3:  /* the deadline of another timer: a tie */
        m.when[id] = m.when[b % NT];
        break;
      case 4:
        corio_timer_stop(&loop, &timers[id]);
        m.active[id] = 0;
        check(&loop, timers, &m);
        continue;
      default:  /* pop every timer due by `until` */
        until = last + (uint64_t)b - 128;
        for (;;) {
          corio_timer_t *t = corio__timers_first(&loop);
          int want = model_first(&m);
          if (want < 0 || m.when[want] > until) {
            if (t != NULL && t->when <= until) fail("a timer due that the model has not", -1);
            break;
          }
          if (t != &timers[want]) fail("popped out of order", want);
          corio_timer_stop(&loop, t);
          m.active[want] = 0;
        }
        check(&loop, timers, &m);
        continue;
    }
    if (corio_timer_start(&loop, &timers[id], m.when[id]) != 0) abort();
    m.active[id] = 1;
    m.order[id] = order++;
    if (m.when[id] > last) last = m.when[id];
    check(&loop, timers, &m);
  }
  /* drain: everything left comes out in order */
  for (;;) {
    int want = model_first(&m);
    corio_timer_t *t = corio__timers_first(&loop);
    if (want < 0) {
      if (t != NULL) fail("a timer left that the model has not", -1);
      break;
    }
    if (t != &timers[want]) fail("drained out of order", want);
    corio_timer_stop(&loop, t);
    m.active[want] = 0;
  }
  if (corio_loop_close(&loop) != 0) abort();
  if (uv_run(&uv, UV_RUN_DEFAULT) != 0) abort();
  if (uv_loop_close(&uv) != 0) abort();
  return 0;
}
