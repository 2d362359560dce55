/*
** group.c: task groups (nurseries). The owner's body runs inside the
** group's scope; children are listed so the group can cancel them all.
** The first child failure cancels the body and the siblings. Children are
** kept in spawn order in an array; each knows its index, a finished one
** leaves a hole, and the array is compacted when holes are half of it.
** That costs a task 4 bytes where a list node would cost 16. The owner
** waits (parked) until the last child is gone. Error values are Lua's,
** so the binding keeps them; the core keeps the counts.
*/
#include <stdlib.h>
#include "corio-internal.h"

void corio_group_init(corio_group_t *g) {
  corio_scope_init(&g->body);
  g->children = NULL;
  g->nslots = g->cap = 0;
  g->nchildren = 0;
  g->nfailed = 0;
  g->waiter = NULL;
  g->closed = 0;
}

int corio_group_enter(corio_group_t *g, corio_task_t *owner) {
  return corio_scope_enter(&g->body, owner);
}

void corio_group_free(corio_group_t *g) {
  free(g->children);
  g->children = NULL;
  g->nslots = g->cap = 0;
}

static void compact(corio_group_t *g) {
  size_t i, j = 0;
  for (i = 0; i < g->nslots; i++) {
    corio_task_t *t = g->children[i];
    if (t == NULL) continue;
    t->member = (uint32_t)j;
    g->children[j++] = t;
  }
  g->nslots = j;
}

int corio_group_add(corio_group_t *g, corio_task_t *child) {
  if (g->closed) return CORIO_ECLOSED;
  if (g->nslots == g->cap && g->nslots - g->nchildren >= g->nslots / 2 &&
      g->nslots > 0)
    compact(g);
  if (g->nslots == g->cap) {
    size_t cap = g->cap ? g->cap * 2 : 8;
    corio_task_t **c = (corio_task_t **)realloc(g->children, cap * sizeof *c);
    if (c == NULL) return CORIO_ENOMEM;
    g->children = c;
    g->cap = cap;
  }
  child->group = g;
  child->member = (uint32_t)g->nslots;
  g->children[g->nslots++] = child;
  g->nchildren++;
  return 0;
}

void corio_group_child_done(corio_loop_t *loop, corio_task_t *child) {
  corio_group_t *g = child->group;
  g->children[child->member] = NULL;
  if (--g->nchildren == 0) g->nslots = 0;
  child->group = NULL;
  if (child->done.state == CORIO_FAILED && g->nfailed++ == 0)
    corio_group_cancel(loop, g);
  if (g->nchildren == 0 && g->waiter != NULL) {
    corio_task_t *w = g->waiter;
    g->waiter = NULL;
    corio_task_wake(loop, w, CORIO_WAKE_NORMAL);
  }
}

/* in spawn order; cancelling only wakes children (nothing finishes here),
   so the array does not change under the loop */
void corio_group_cancel(corio_loop_t *loop, corio_group_t *g) {
  size_t i;
  corio_scope_cancel(loop, &g->body);
  for (i = 0; i < g->nslots; i++)
    if (g->children[i] != NULL) corio_task_cancel(loop, g->children[i]);
}
