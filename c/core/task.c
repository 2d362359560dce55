/*
** task.c: the core's view of a task: a resumable step that is ready,
** waits on one thing (a timer, a future, or nothing the core knows), or
** has finished. What a step *does* is the binding's business (loop->step).
**
** The path of an await:
**   spawn    corio_task_init + corio_task_schedule: into the ready ring
**   resume   corio_loop_run_ready pops it and calls loop->step
**   yield    the step records what it waits on (corio_task_sleep_until,
**            corio_task_await, corio_task_park) and returns to the loop
**   wake     a timer fires, a future finishes, or a cancel scope is
**            cancelled: corio_task_wake detaches it and schedules it
**   resume   the next ready batch steps it again; t->wake says why
*/
#include <stdlib.h>
#include <string.h>
#include "corio-internal.h"

void corio_task_init(corio_loop_t *loop, corio_task_t *t) {
  memset(t, 0, sizeof *t);
  corio_future_init(&t->done);
  loop->ntasks++;
}

static int ready_grow(corio_loop_t *loop) {
  size_t cap = loop->rcap ? loop->rcap * 2 : 256;
  corio_task_t **r = (corio_task_t **)corio__array_new(cap * sizeof *r);
  size_t i;
  if (r == NULL) return CORIO_ENOMEM;
  for (i = 0; i < loop->rcount; i++)
    r[i] = loop->ready[(loop->rhead + i) & (loop->rcap - 1)];
  corio__array_free(loop->ready, loop->rcap * sizeof *r);
  loop->ready = r;
  loop->rcap = cap;
  loop->rhead = 0;
  return 0;
}

int corio_task_schedule(corio_loop_t *loop, corio_task_t *t) {
  if (loop->rcount == loop->rcap) {
    int err = ready_grow(loop);
    if (err) return err;
  }
  loop->ready[(loop->rhead + loop->rcount) & (loop->rcap - 1)] = t;
  if (loop->rcount++ == 0 && !loop->closing)
    uv_idle_start(&loop->idle, corio__loop_idle_cb);
  t->wait_kind = CORIO_WAIT_READY;
  return 0;
}

void corio_task_park(corio_loop_t *loop, corio_task_t *t) {
  (void)loop;
  t->wake = CORIO_WAKE_NORMAL;
  t->wait_kind = CORIO_WAIT_PARKED;
}

static void task_timer_cb(corio_loop_t *loop, corio_timer_t *timer) {
  corio_task_t *t = corio__container_of(timer, corio_task_t, wait.timer);
  t->wait_kind = CORIO_WAIT_NONE;
  t->wake = CORIO_WAKE_NORMAL;
  corio_task_schedule(loop, t);
}

int corio_task_sleep_until(corio_loop_t *loop, corio_task_t *t, uint64_t when) {
  int err;
  corio_timer_init(&t->wait.timer, task_timer_cb);
  err = corio_timer_start(loop, &t->wait.timer, when);
  if (err) return err;
  t->wake = CORIO_WAKE_NORMAL;
  t->wait_kind = CORIO_WAIT_TIMER;
  return 0;
}

static void task_waiter_cb(corio_loop_t *loop, corio_waiter_t *w,
                           corio_future_t *f) {
  corio_task_t *t = corio__container_of(w, corio_task_t, wait.waiter);
  (void)f;
  t->wait_kind = CORIO_WAIT_NONE;
  t->wake = CORIO_WAKE_NORMAL;
  corio_task_schedule(loop, t);
}

void corio_task_await(corio_loop_t *loop, corio_task_t *t, corio_future_t *f) {
  (void)loop;
  corio_waiter_init(&t->wait.waiter, task_waiter_cb);
  corio_future_wait(f, &t->wait.waiter);
  t->wake = CORIO_WAKE_NORMAL;
  t->wait_kind = CORIO_WAIT_FUTURE;
}

void corio_task_detach(corio_loop_t *loop, corio_task_t *t) {
  switch (t->wait_kind) {
    case CORIO_WAIT_TIMER: corio_timer_stop(loop, &t->wait.timer); break;
    case CORIO_WAIT_FUTURE: corio_waiter_cancel(&t->wait.waiter); break;
    default: break;
  }
  if (t->wait_kind != CORIO_WAIT_READY) t->wait_kind = CORIO_WAIT_NONE;
}

int corio_task_wake(corio_loop_t *loop, corio_task_t *t, int why) {
  switch (t->wait_kind) {
    case CORIO_WAIT_TIMER:
    case CORIO_WAIT_FUTURE:
    case CORIO_WAIT_PARKED:
      corio_task_detach(loop, t);
      t->wake = (uint8_t)why;
      return corio_task_schedule(loop, t);
    default:
      return CORIO_EBUSY;  /* ready or running: it will see why later */
  }
}

static int suspended(const corio_task_t *t) {
  return t->wait_kind == CORIO_WAIT_TIMER || t->wait_kind == CORIO_WAIT_FUTURE ||
         t->wait_kind == CORIO_WAIT_PARKED;
}

void *corio_task_cancelled_by(const corio_task_t *t) {
  const corio_scope_t *s;
  for (s = t->scope; s != NULL; s = s->parent) {
    if (s->cancelled) return (void *)s;
    if (s->shield) return NULL;
  }
  return (t->flags & CORIO_TASK_CANCEL_REQUESTED) ? (void *)t : NULL;
}

void corio__task_deliver_cancel(corio_loop_t *loop, corio_task_t *t) {
  if (suspended(t) && corio_task_cancelled_by(t) != NULL)
    corio_task_wake(loop, t, CORIO_WAKE_CANCEL);
}

int corio_task_cancel(corio_loop_t *loop, corio_task_t *t) {
  if (t->done.state != CORIO_PENDING) return CORIO_EDONE;
  t->flags |= CORIO_TASK_CANCEL_REQUESTED;
  corio__task_deliver_cancel(loop, t);
  return 0;
}

int corio_task_finish(corio_loop_t *loop, corio_task_t *t, int state) {
  int err;
  corio_task_detach(loop, t);
  err = corio_future_finish(loop, &t->done, state);
  if (err) return err;
  loop->ntasks--;
  if (t->group != NULL) corio_group_child_done(loop, t);
  return 0;
}
