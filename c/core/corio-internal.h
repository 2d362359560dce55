/*
** corio-internal.h: helpers shared by the core's files (never by hosts).
*/
#ifndef CORIO_INTERNAL_H
#define CORIO_INTERNAL_H

#include "corio.h"

#define corio__container_of(ptr, type, field) \
  ((type *)((char *)(ptr) - offsetof(type, field)))

static inline void corio__list_init(corio_list_t *l) {
  l->next = l;
  l->prev = l;
}

static inline int corio__list_empty(const corio_list_t *l) {
  return l->next == l;
}

static inline void corio__list_push(corio_list_t *head, corio_list_t *n) {
  n->prev = head->prev;
  n->next = head;
  head->prev->next = n;
  head->prev = n;
}

/* unlink n; leaves it pointing at itself, so a second remove is harmless */
static inline void corio__list_remove(corio_list_t *n) {
  n->prev->next = n->next;
  n->next->prev = n->prev;
  n->next = n;
  n->prev = n;
}

/* loop.c: drains the ready ring */
void corio__loop_idle_cb(uv_idle_t *idle);

/* task.c: wake t if a cancellation now reaches its checkpoint */
void corio__task_deliver_cancel(corio_loop_t *loop, corio_task_t *t);

/* timer heap (timer.c) */
void corio__timers_fire(corio_loop_t *loop);
void corio__timers_rearm(corio_loop_t *loop);
corio_timer_t *corio__timers_first(corio_loop_t *loop);

/* array.c: arrays that may grow to megabytes; free with the size made */
void *corio__array_new(size_t bytes);
void corio__array_free(void *p, size_t bytes);

#endif
