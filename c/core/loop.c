/*
** loop.c: the event loop: a ring of ready tasks drained in batches from a
** uv_idle handle (active only while tasks are ready, so libuv polls
** without blocking then), and the deadline heap behind one uv_timer.
** When neither is active and no I/O is pending, uv_run returns: that is
** how the binding knows nothing can ever wake a waiting task (deadlock).
** The clock is the real one plus an offset that only tests move
** (corio_loop_advance, and autojump's uv_prepare).
*/
#include <stdlib.h>
#include <string.h>
#include "corio-internal.h"


void corio__loop_idle_cb(uv_idle_t *idle) {
  corio_loop_t *loop = corio__container_of(idle, corio_loop_t, idle);
  corio_loop_run_ready(loop);
}

int corio_loop_init(corio_loop_t *loop, uv_loop_t *uv) {
  int err;
  memset(loop, 0, sizeof *loop);
  if (uv == NULL) {
    err = uv_loop_init(&loop->own);
    if (err) return err;
    uv = &loop->own;
    loop->owns_uv = 1;
  }
  loop->uv = uv;
  uv_idle_init(uv, &loop->idle);
  uv_timer_init(uv, &loop->timer);
  uv_prepare_init(uv, &loop->jump);
  uv_unref((uv_handle_t *)&loop->jump);  /* never keeps the loop alive */
  loop->jump.data = loop;
  corio_loop_update_time(loop);
  return 0;
}

void corio_loop_update_time(corio_loop_t *loop) {
  loop->now = uv_hrtime() + loop->offset;
}

void corio_loop_advance(corio_loop_t *loop, uint64_t ns) {
  loop->offset += ns;
  corio_loop_update_time(loop);
  loop->armed = 0;  /* the uv timer's delay was counted on the old clock */
  corio__timers_rearm(loop);
}

static void find_closing(uv_handle_t *h, void *arg) {
  if (uv_is_closing(h)) *(int *)arg = 1;
}

/* Runs before each poll. Jump only when waiting could end in nothing but
   a corio timer: no ready task, no request in flight (a write, a
   connect, a file operation, a thread's job, a DNS lookup...), the only
   active handle that keeps the loop alive is corio's timer, and no handle
   is waiting for its close callback. Jump again while that stays true (a
   timer whose callback wakes nothing), since libuv would otherwise block
   in its poll until the next deadline in real time. */
static void jump_cb(uv_prepare_t *h) {
  corio_loop_t *loop = (corio_loop_t *)h->data;
  for (;;) {
    corio_timer_t *first = corio__timers_first(loop);
    int closing = 0;
    if (first == NULL || loop->rcount > 0) return;
    if (loop->uv->active_reqs.count != 0) return;
    if (loop->uv->active_handles != 1 || !uv_is_active((uv_handle_t *)&loop->timer))
      return;
    uv_walk(loop->uv, find_closing, &closing);
    if (closing) return;
    corio_loop_update_time(loop);
    if (first->when > loop->now) loop->offset += first->when - loop->now;
    corio__timers_fire(loop);  /* a woken task makes libuv poll without blocking */
  }
}

void corio_loop_set_autojump(corio_loop_t *loop, int on) {
  loop->autojump = on != 0;
  if (on) uv_prepare_start(&loop->jump, jump_cb);
  else uv_prepare_stop(&loop->jump);
}

/* Each task that is ready when the batch starts runs once; tasks made
   ready during the batch wait for the next one, after libuv has polled. */
void corio_loop_run_ready(corio_loop_t *loop) {
  size_t n;
  uint64_t start;
  if (loop->before_batch != NULL) loop->before_batch(loop);  /* may reorder them */
  n = loop->rcount;
  corio_loop_update_time(loop);
  start = loop->now;
  while (n-- > 0 && loop->rcount > 0) {
    corio_task_t *t;
    if (loop->budget != 0 && uv_hrtime() - start >= loop->budget)
      break;  /* the rest stay ready: the host's iteration goes on */
    t = loop->ready[loop->rhead];
    loop->rhead = (loop->rhead + 1) & (loop->rcap - 1);
    loop->rcount--;
    if (t->done.state != CORIO_PENDING) continue;  /* finished while ready */
    t->wait_kind = CORIO_WAIT_NONE;
    loop->step(loop, t);
  }
  if (loop->rcount == 0) uv_idle_stop(&loop->idle);
  if (loop->after_batch != NULL) loop->after_batch(loop);
}

int corio_loop_run(corio_loop_t *loop, uv_run_mode mode) {
  corio_loop_update_time(loop);
  return uv_run(loop->uv, mode);
}

static void on_close(uv_handle_t *h) { (void)h; }

int corio_loop_close(corio_loop_t *loop) {
  int err = 0;
  loop->closing = 1;
  uv_idle_stop(&loop->idle);
  uv_timer_stop(&loop->timer);
  uv_prepare_stop(&loop->jump);
  if (!uv_is_closing((uv_handle_t *)&loop->jump))
    uv_close((uv_handle_t *)&loop->jump, on_close);
  if (!uv_is_closing((uv_handle_t *)&loop->idle))
    uv_close((uv_handle_t *)&loop->idle, on_close);
  if (!uv_is_closing((uv_handle_t *)&loop->timer))
    uv_close((uv_handle_t *)&loop->timer, on_close);
  corio__array_free(loop->ready, loop->rcap * sizeof *loop->ready);
  loop->ready = NULL;
  loop->rcount = loop->rcap = 0;
  corio__array_free(loop->heap, loop->hcap * sizeof *loop->heap);
  loop->heap = NULL;
  loop->hcount = loop->hcap = 0;
  corio__array_free(loop->run, loop->rncap * sizeof *loop->run);
  loop->run = NULL;
  loop->rnhead = loop->rntail = loop->rncap = loop->rnlive = 0;
  if (loop->owns_uv) {
    uv_run(loop->uv, UV_RUN_DEFAULT);  /* runs the close callbacks */
    err = uv_loop_close(loop->uv);
    loop->owns_uv = 0;
  }
  return err;
}
