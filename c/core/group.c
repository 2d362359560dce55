/*
** group.c: task groups (nurseries). The owner's body runs inside the
** group's scope; children are listed so the group can cancel them all.
** The first child failure cancels the body and the siblings. The owner
** waits (parked) until the last child is gone. Error values are Lua's,
** so the binding keeps them; the core keeps the counts.
*/
#include "corio-internal.h"

void corio_group_init(corio_group_t *g) {
  corio_scope_init(&g->body);
  corio__list_init(&g->children);
  g->nchildren = 0;
  g->nfailed = 0;
  g->waiter = NULL;
  g->closed = 0;
}

int corio_group_enter(corio_group_t *g, corio_task_t *owner) {
  return corio_scope_enter(&g->body, owner);
}

int corio_group_add(corio_group_t *g, corio_task_t *child) {
  if (g->closed) return CORIO_ECLOSED;
  child->group = g;
  corio__list_push(&g->children, &child->member);
  g->nchildren++;
  return 0;
}

void corio_group_child_done(corio_loop_t *loop, corio_task_t *child) {
  corio_group_t *g = child->group;
  corio__list_remove(&child->member);
  child->group = NULL;
  g->nchildren--;
  if (child->done.state == CORIO_FAILED && g->nfailed++ == 0)
    corio_group_cancel(loop, g);
  if (g->nchildren == 0 && g->waiter != NULL) {
    corio_task_t *w = g->waiter;
    g->waiter = NULL;
    corio_task_wake(loop, w, CORIO_WAKE_NORMAL);
  }
}

void corio_group_cancel(corio_loop_t *loop, corio_group_t *g) {
  corio_list_t *n;
  corio_scope_cancel(loop, &g->body);
  for (n = g->children.next; n != &g->children; n = n->next) {
    corio_task_t *t = corio__container_of(n, corio_task_t, member);
    corio_task_cancel(loop, t);
  }
}
