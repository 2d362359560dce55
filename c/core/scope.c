/*
** scope.c: cancel scopes. A scope lives inside one task (a timeout, a
** shield, a group's body); the task's scopes form a chain from the
** innermost outwards. Cancellation is level-triggered: a cancelled scope
** stays cancelled, and every checkpoint inside it sees that, until the
** scope is left. A shield stops outer cancellations from reaching inside.
*/
#include "corio-internal.h"


static void deadline_cb(corio_loop_t *loop, corio_timer_t *timer) {
  corio_scope_t *s = corio__container_of(timer, corio_scope_t, deadline);
  if (!s->cancelled) s->expired = 1;
  corio_scope_cancel(loop, s);
}

void corio_scope_init(corio_scope_t *s) {
  s->parent = NULL;
  s->task = NULL;
  corio_timer_init(&s->deadline, deadline_cb);
  s->cancelled = 0;
  s->shield = 0;
  s->expired = 0;
  s->entered = 0;
}

int corio_scope_enter(corio_scope_t *s, corio_task_t *t) {
  if (s->entered || s->task != NULL) return CORIO_EBUSY;
  s->task = t;
  s->parent = t->scope;
  t->scope = s;
  s->entered = 1;
  return 0;
}

int corio_scope_leave(corio_loop_t *loop, corio_scope_t *s) {
  if (!s->entered) return CORIO_EINVAL;
  if (s->task->scope != s) return CORIO_EINVAL;
  corio_timer_stop(loop, &s->deadline);
  s->task->scope = s->parent;
  s->entered = 0;
  /* leaving a shield may uncover a cancellation: the task is running, so
     its next checkpoint sees it; nothing to wake */
  return 0;
}

/* take s out of its task's chain wherever it is (a scope whose owner
   never closed it): the scopes inside it stay, linked to its parent */
int corio_scope_drop(corio_loop_t *loop, corio_scope_t *s) {
  corio_scope_t **pp;
  if (!s->entered) return CORIO_EINVAL;
  for (pp = &s->task->scope; *pp != NULL && *pp != s; pp = &(*pp)->parent) {}
  if (*pp == NULL) return CORIO_EINVAL;
  *pp = s->parent;
  corio_timer_stop(loop, &s->deadline);
  s->entered = 0;
  s->task = NULL;  /* the task may end before the scope's owner forgets it */
  return 0;
}

void corio_scope_cancel(corio_loop_t *loop, corio_scope_t *s) {
  if (s->cancelled) return;
  s->cancelled = 1;
  corio_timer_stop(loop, &s->deadline);
  if (s->entered) corio__task_deliver_cancel(loop, s->task);
}

int corio_scope_set_deadline(corio_loop_t *loop, corio_scope_t *s,
                             uint64_t when) {
  if (s->cancelled) return 0;
  if (when <= loop->now) {  /* already past: the first checkpoint raises */
    s->expired = 1;
    corio_scope_cancel(loop, s);
    return 0;
  }
  return corio_timer_start(loop, &s->deadline, when);
}
