/*
** future.c: a result that something else will set, and the waiters that
** are told when it is. A waiter is embedded in whatever waits (a task, a
** gather), so waiting allocates nothing.
*/
#include "corio-internal.h"

void corio_future_init(corio_future_t *f) {
  corio__list_init(&f->waiters);
  f->state = CORIO_PENDING;
}

void corio_waiter_init(corio_waiter_t *w, corio_waiter_cb cb) {
  corio__list_init(&w->node);
  w->cb = cb;
}

void corio_future_wait(corio_future_t *f, corio_waiter_t *w) {
  corio__list_push(&f->waiters, &w->node);
}

void corio_waiter_cancel(corio_waiter_t *w) {
  corio__list_remove(&w->node);
}

int corio_waiter_active(const corio_waiter_t *w) {
  return w->node.next != &w->node;
}

/* Waiters fire in arrival order; each is unlinked before its callback, so
   a callback may wait again or cancel other waiters of the same future. */
int corio_future_finish(corio_loop_t *loop, corio_future_t *f, int state) {
  if (f->state != CORIO_PENDING) return CORIO_EDONE;
  f->state = state;
  while (!corio__list_empty(&f->waiters)) {
    corio_list_t *n = f->waiters.next;
    corio_waiter_t *w = corio__container_of(n, corio_waiter_t, node);
    corio__list_remove(n);
    w->cb(loop, w, f);
  }
  return 0;
}
