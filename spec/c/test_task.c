/*
** test_task.c: tasks as plain C steps: the ready queue, sleeping, awaiting,
** cancellation, cancel scopes (shields, deadlines) and task groups.
**
** loop.step calls the task's own step function (ttask.fn) after recording
** the task's id in the loop's trace; a step function looks at t->nsteps to
** know where it is, as a coroutine would resume.
*/
#include "corio.h"
#include "test_core.h"

#define MAXSTEPS 64

typedef struct ttask ttask;
typedef void (*tfn)(corio_loop_t *loop, ttask *t);

struct ttask {
  corio_task_t core;
  int id;
  int nsteps;            /* steps run so far, this one included */
  tfn fn;
  uint64_t when;         /* a deadline the step uses */
  corio_future_t *fut;   /* a future the step awaits */
  corio_scope_t scope;   /* a scope the step enters */
  corio_scope_t scope2;
  uint8_t wakes[8];      /* task->wake seen by each step */
};

typedef struct trace {
  int ids[MAXSTEPS];
  int n;
  void *ctx;             /* per-test data for the step functions */
} trace;

static void step_cb(corio_loop_t *loop, corio_task_t *task) {
  ttask *t = CONTAINER_OF(task, ttask, core);
  trace *tr = (trace *)loop->data;
  CHECK(task->wait_kind == CORIO_WAIT_NONE);
  CHECK(task->done.state == CORIO_PENDING);  /* never stepped once finished */
  CHECK(tr->n < MAXSTEPS);
  tr->ids[tr->n++] = t->id;
  if (t->nsteps < 8) t->wakes[t->nsteps] = task->wake;
  t->nsteps++;
  CHECK(t->fn != NULL);
  t->fn(loop, t);
}

static void setup(corio_loop_t *loop, trace *tr) {
  CHECK(corio_loop_init(loop, NULL) == 0);
  memset(tr, 0, sizeof *tr);
  loop->data = tr;
  loop->step = step_cb;
}

static void task_new(corio_loop_t *loop, ttask *t, int id, tfn fn) {
  memset(t, 0, sizeof *t);
  t->id = id;
  t->fn = fn;
  corio_scope_init(&t->scope);
  corio_scope_init(&t->scope2);
  corio_task_init(loop, &t->core);
  CHECK(t->core.done.state == CORIO_PENDING);
  CHECK(t->core.scope == NULL);
  CHECK(t->core.group == NULL);
}

static void spawn(corio_loop_t *loop, ttask *t, int id, tfn fn) {
  task_new(loop, t, id, fn);
  CHECK(corio_task_schedule(loop, &t->core) == 0);
  CHECK(t->core.wait_kind == CORIO_WAIT_READY);
}

static void teardown(corio_loop_t *loop) {
  CHECK(loop->ntasks == 0);
  CHECK(corio_loop_close(loop) == 0);
}

static void check_trace(const trace *tr, const int *expect, int n) {
  int i;
  CHECK(tr->n == n);
  for (i = 0; i < n; i++) CHECK(tr->ids[i] == expect[i]);
}

/* ---------------------------------------------------------------- steps */

static void fn_finish(corio_loop_t *loop, ttask *t) {
  CHECK(corio_task_finish(loop, &t->core, CORIO_DONE) == 0);
}

/* runs three steps, rescheduling itself in between */
static void fn_resched3(corio_loop_t *loop, ttask *t) {
  if (t->nsteps < 3) {
    CHECK(corio_task_schedule(loop, &t->core) == 0);
    CHECK(t->core.wait_kind == CORIO_WAIT_READY);
  } else {
    CHECK(corio_task_finish(loop, &t->core, CORIO_DONE) == 0);
  }
}

/* sleeps until t->when, then checks it woke normally, after the deadline */
static void fn_sleep(corio_loop_t *loop, ttask *t) {
  if (t->nsteps == 1) {
    CHECK(corio_task_sleep_until(loop, &t->core, t->when) == 0);
    CHECK(t->core.wait_kind == CORIO_WAIT_TIMER);
    CHECK(corio_timer_active(&t->core.wait.timer));
  } else {
    CHECK(t->nsteps == 2);
    CHECK(t->core.wake == CORIO_WAKE_NORMAL);
    CHECK(loop->now >= t->when);
    CHECK(uv_hrtime() >= t->when);
    CHECK(!corio_timer_active(&t->core.wait.timer));
    CHECK(corio_task_finish(loop, &t->core, CORIO_DONE) == 0);
  }
}

/* sleeps for a long time; expects to be woken by a cancellation */
static void fn_sleep_long_cancel(corio_loop_t *loop, ttask *t) {
  if (t->nsteps == 1 && corio_task_cancelled_by(&t->core) != NULL) {
    /* the cancel came before the first step (a slow start, under a
       sanitizer): a checkpoint would raise at once; so do we */
    t->core.wake = CORIO_WAKE_CANCEL;
    CHECK(corio_task_schedule(loop, &t->core) == 0);
  } else if (t->nsteps == 1) {
    CHECK(corio_task_sleep_until(loop, &t->core, loop->now + MS(10000)) == 0);
  } else {
    CHECK(t->nsteps == 2);
    CHECK(t->core.wake == CORIO_WAKE_CANCEL);
    CHECK(corio_task_cancelled_by(&t->core) != NULL);
    CHECK(!corio_timer_active(&t->core.wait.timer));
    CHECK(corio_task_finish(loop, &t->core, CORIO_CANCELLED) == 0);
  }
}

/* a later step that expects a cancellation (whatever the task waited on) */
static void fn_cancelled_finish(corio_loop_t *loop, ttask *t) {
  CHECK(t->core.wake == CORIO_WAKE_CANCEL);
  CHECK(corio_task_cancelled_by(&t->core) != NULL);
  CHECK(corio_task_finish(loop, &t->core, CORIO_CANCELLED) == 0);
}

/* awaits t->fut; finishes once it is done */
static void fn_await(corio_loop_t *loop, ttask *t) {
  if (t->nsteps == 1) {
    corio_task_await(loop, &t->core, t->fut);
    CHECK(t->core.wait_kind == CORIO_WAIT_FUTURE);
  } else {
    CHECK(t->nsteps == 2);
    CHECK(t->core.wake == CORIO_WAKE_NORMAL);
    CHECK(t->fut->state != CORIO_PENDING);
    CHECK(corio_task_finish(loop, &t->core, CORIO_DONE) == 0);
  }
}

/* a timer that finishes a future or cancels a task when it fires */
typedef struct actor {
  corio_timer_t t;
  corio_future_t *finish;
  corio_task_t *cancel;
  corio_scope_t *cancel_scope;
  int fired;
} actor;

static void actor_cb(corio_loop_t *loop, corio_timer_t *timer) {
  actor *a = CONTAINER_OF(timer, actor, t);
  a->fired++;
  if (a->finish != NULL) CHECK(corio_future_finish(loop, a->finish, CORIO_DONE) == 0);
  if (a->cancel != NULL) CHECK(corio_task_cancel(loop, a->cancel) == 0);
  if (a->cancel_scope != NULL) corio_scope_cancel(loop, a->cancel_scope);
}

static void actor_start(corio_loop_t *loop, actor *a, uint64_t when) {
  corio_timer_init(&a->t, actor_cb);
  CHECK(corio_timer_start(loop, &a->t, when) == 0);
}

/* ---------------------------------------------------------------- ready queue */

/* scheduled tasks run in FIFO order, each once, in one batch */
static void test_fifo_one_batch(void) {
  static const int expect[6] = {0, 1, 2, 3, 4, 5};
  corio_loop_t loop;
  trace tr;
  ttask t[6];
  int i;
  setup(&loop, &tr);
  for (i = 0; i < 6; i++) spawn(&loop, &t[i], i, fn_finish);
  CHECK(loop.ntasks == 6);
  corio_loop_run_ready(&loop);   /* one batch */
  check_trace(&tr, expect, 6);
  for (i = 0; i < 6; i++) {
    CHECK(t[i].nsteps == 1);
    CHECK(t[i].core.done.state == CORIO_DONE);
    CHECK(t[i].core.wait_kind == CORIO_WAIT_NONE);
  }
  CHECK(loop.ntasks == 0);
  CHECK(corio_loop_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(tr.n == 6);
  teardown(&loop);
}

/* before_batch sees the batch as the first rcount slots of the ready ring
   and may reorder them (the binding's shuffled mode): here it reverses them */
static int before_calls;
static void reverse_batch(corio_loop_t *loop) {
  size_t i, n = loop->rcount, mask = loop->rcap - 1;
  before_calls++;
  for (i = 0; i < n / 2; i++) {
    corio_task_t **a = &loop->ready[(loop->rhead + i) & mask];
    corio_task_t **b = &loop->ready[(loop->rhead + n - 1 - i) & mask];
    corio_task_t *tmp = *a;
    *a = *b;
    *b = tmp;
  }
}

static void test_before_batch_reorders(void) {
  static const int expect[5] = {4, 3, 2, 1, 0};
  corio_loop_t loop;
  trace tr;
  ttask t[5];
  int i;
  setup(&loop, &tr);
  CHECK(loop.before_batch == NULL);  /* off by default */
  loop.before_batch = reverse_batch;
  before_calls = 0;
  for (i = 0; i < 5; i++) spawn(&loop, &t[i], i, fn_finish);
  corio_loop_run_ready(&loop);
  CHECK(before_calls == 1);
  check_trace(&tr, expect, 5);
  CHECK(loop.ntasks == 0);
  teardown(&loop);
}

/* a task finished while it waits in the ready ring (a host may finish a
   task from C) is dropped from the ring, never stepped */
static void test_finished_while_ready(void) {
  static const int expect[1] = {1};
  corio_loop_t loop;
  trace tr;
  ttask t[2];
  setup(&loop, &tr);
  spawn(&loop, &t[0], 0, fn_finish);
  spawn(&loop, &t[1], 1, fn_finish);
  CHECK(corio_task_finish(&loop, &t[0].core, CORIO_CANCELLED) == 0);
  CHECK(corio_loop_run(&loop, UV_RUN_DEFAULT) == 0);
  check_trace(&tr, expect, 1);
  CHECK(t[0].nsteps == 0);
  teardown(&loop);
}

/* the same through corio_loop_run, with more tasks than the ring's first
   capacity (it grows while keeping the order) */
typedef struct many_ctx {
  int next;   /* the id expected at the next step */
} many_ctx;

static void many_step(corio_loop_t *loop, corio_task_t *task) {
  ttask *t = CONTAINER_OF(task, ttask, core);
  many_ctx *mc = (many_ctx *)loop->data;
  CHECK(task->wait_kind == CORIO_WAIT_NONE);
  CHECK(t->id == mc->next);
  mc->next++;
  CHECK(corio_task_finish(loop, task, CORIO_DONE) == 0);
}

static void test_fifo_many(void) {
  enum { N = 1000 };
  corio_loop_t loop;
  many_ctx mc;
  ttask *t = (ttask *)calloc(N, sizeof *t);
  int i;
  CHECK(t != NULL);
  CHECK(corio_loop_init(&loop, NULL) == 0);
  mc.next = 0;
  loop.data = &mc;
  loop.step = many_step;
  for (i = 0; i < N; i++) spawn(&loop, &t[i], i, fn_finish);
  CHECK(loop.ntasks == N);
  CHECK(corio_loop_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(mc.next == N);
  for (i = 0; i < N; i++) CHECK(t[i].core.done.state == CORIO_DONE);
  teardown(&loop);
  free(t);
}

/* a task that reschedules itself runs again in the next batch, not in the
   current one */
static void test_reschedule_next_batch(void) {
  corio_loop_t loop;
  trace tr;
  ttask a, b, c;
  setup(&loop, &tr);
  spawn(&loop, &a, 1, fn_resched3);
  spawn(&loop, &b, 2, fn_finish);
  spawn(&loop, &c, 3, fn_finish);
  corio_loop_run_ready(&loop);
  {
    static const int expect[3] = {1, 2, 3};
    check_trace(&tr, expect, 3);
  }
  CHECK(a.nsteps == 1);
  CHECK(a.core.wait_kind == CORIO_WAIT_READY);
  corio_loop_run_ready(&loop);
  CHECK(tr.n == 4 && tr.ids[3] == 1);
  CHECK(a.nsteps == 2);
  CHECK(corio_loop_run(&loop, UV_RUN_DEFAULT) == 0);
  {
    static const int expect[5] = {1, 2, 3, 1, 1};
    check_trace(&tr, expect, 5);
  }
  CHECK(a.core.done.state == CORIO_DONE);
  teardown(&loop);
}

/* two tasks rescheduling themselves alternate, batch by batch */
static void test_reschedule_interleaves(void) {
  static const int expect[6] = {1, 2, 1, 2, 1, 2};
  corio_loop_t loop;
  trace tr;
  ttask a, b;
  setup(&loop, &tr);
  spawn(&loop, &a, 1, fn_resched3);
  spawn(&loop, &b, 2, fn_resched3);
  CHECK(corio_loop_run(&loop, UV_RUN_DEFAULT) == 0);
  check_trace(&tr, expect, 6);
  teardown(&loop);
}

/* ---------------------------------------------------------------- sleep */

/* sleeping tasks wake after their deadlines, in deadline order (FIFO among
   equal ones), with wake == CORIO_WAKE_NORMAL */
static void test_sleep_until(void) {
  static const int expect[6] = {1, 2, 3, 2, 3, 1};
  corio_loop_t loop;
  trace tr;
  ttask a, b, c;
  uint64_t base;
  setup(&loop, &tr);
  base = loop.now;
  spawn(&loop, &a, 1, fn_sleep);
  spawn(&loop, &b, 2, fn_sleep);
  spawn(&loop, &c, 3, fn_sleep);
  a.when = base + MS(6);
  b.when = base + MS(3);
  c.when = base + MS(3);
  CHECK(corio_loop_run(&loop, UV_RUN_DEFAULT) == 0);
  check_trace(&tr, expect, 6);
  CHECK(a.wakes[1] == CORIO_WAKE_NORMAL);
  CHECK(b.wakes[1] == CORIO_WAKE_NORMAL);
  CHECK(c.wakes[1] == CORIO_WAKE_NORMAL);
  CHECK(uv_hrtime() >= base + MS(6));
  teardown(&loop);
}

/* sleeping until 0 (what the binding's core.sleep_until passes for a time
   <= 0) wakes at once, like any past deadline */
static void fn_sleep_zero(corio_loop_t *loop, ttask *t) {
  if (t->nsteps == 1) {
    CHECK(corio_task_sleep_until(loop, &t->core, 0) == 0);
    CHECK(t->core.wait_kind == CORIO_WAIT_TIMER);
  } else {
    CHECK(t->core.wake == CORIO_WAKE_NORMAL);
    CHECK(corio_task_finish(loop, &t->core, CORIO_DONE) == 0);
  }
}

static void test_sleep_until_zero(void) {
  corio_loop_t loop;
  trace tr;
  ttask a;
  setup(&loop, &tr);
  spawn(&loop, &a, 1, fn_sleep_zero);
  CHECK(corio_loop_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(a.nsteps == 2);
  CHECK(a.core.done.state == CORIO_DONE);
  teardown(&loop);
}

/* the ready ring grows while it wraps around: the order stays FIFO. Every
   schedule is mirrored in a plain queue; each step must pop its task */
typedef struct wrap_ctx {
  int q[4096];
  int head, tail;
  ttask *tasks;
  int nspawned;
} wrap_ctx;

static void wrap_schedule(corio_loop_t *loop, wrap_ctx *wc, ttask *t) {
  CHECK(wc->tail < 4096);
  wc->q[wc->tail++] = t->id;
  CHECK(corio_task_schedule(loop, &t->core) == 0);
}

static void wrap_step(corio_loop_t *loop, corio_task_t *task) {
  ttask *t = CONTAINER_OF(task, ttask, core);
  wrap_ctx *wc = (wrap_ctx *)loop->data;
  CHECK(wc->head < wc->tail);
  CHECK(wc->q[wc->head++] == t->id);
  t->nsteps++;
  /* the first 200 tasks each spawn two more on their first step */
  if (t->nsteps == 1 && t->id < 200) {
    int k;
    for (k = 0; k < 2; k++) {
      ttask *c = &wc->tasks[wc->nspawned];
      memset(c, 0, sizeof *c);
      c->id = wc->nspawned++;
      corio_task_init(loop, &c->core);
      wrap_schedule(loop, wc, c);
    }
  }
  if (t->nsteps < 3) wrap_schedule(loop, wc, t);
  else CHECK(corio_task_finish(loop, task, CORIO_DONE) == 0);
}

static void test_ready_ring_wraps_and_grows(void) {
  enum { N = 600 };
  corio_loop_t loop;
  wrap_ctx *wc = (wrap_ctx *)calloc(1, sizeof *wc);
  int i;
  CHECK(wc != NULL);
  wc->tasks = (ttask *)calloc(N, sizeof *wc->tasks);
  CHECK(wc->tasks != NULL);
  CHECK(corio_loop_init(&loop, NULL) == 0);
  loop.data = wc;
  loop.step = wrap_step;
  for (i = 0; i < 200; i++) {
    ttask *t = &wc->tasks[wc->nspawned];
    t->id = wc->nspawned++;
    corio_task_init(&loop, &t->core);
    wrap_schedule(&loop, wc, t);
  }
  CHECK(corio_loop_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(wc->nspawned == N);
  CHECK(wc->head == wc->tail && wc->tail == 3 * N);
  for (i = 0; i < N; i++) CHECK(wc->tasks[i].nsteps == 3);
  teardown(&loop);
  free(wc->tasks);
  free(wc);
}

/* ---------------------------------------------------------------- await */

/* a task awaiting a future wakes when the future finishes; a task awaiting
   another task's done future wakes when that task finishes */
static void test_await_future(void) {
  static const int expect[4] = {1, 2, 1, 2};
  corio_loop_t loop;
  trace tr;
  ttask a, b;
  corio_future_t f;
  actor act;
  setup(&loop, &tr);
  corio_future_init(&f);
  memset(&act, 0, sizeof act);
  spawn(&loop, &a, 1, fn_await);
  spawn(&loop, &b, 2, fn_await);
  a.fut = &f;
  b.fut = &a.core.done;
  corio_loop_run_ready(&loop);
  CHECK(a.core.wait_kind == CORIO_WAIT_FUTURE);
  CHECK(b.core.wait_kind == CORIO_WAIT_FUTURE);
  act.finish = &f;
  actor_start(&loop, &act, loop.now + MS(2));
  CHECK(corio_loop_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(act.fired == 1);
  check_trace(&tr, expect, 4);
  CHECK(f.state == CORIO_DONE);
  CHECK(a.core.done.state == CORIO_DONE);
  CHECK(b.core.done.state == CORIO_DONE);
  CHECK(a.wakes[1] == CORIO_WAKE_NORMAL && b.wakes[1] == CORIO_WAKE_NORMAL);
  teardown(&loop);
}

/* a future that is already finished before the task steps: the task is
   woken by the finish (in the same run) */
static void test_await_finished_in_step_order(void) {
  static const int expect[4] = {1, 2, 1, 2};
  corio_loop_t loop;
  trace tr;
  ttask a, b;
  corio_future_t f;
  setup(&loop, &tr);
  corio_future_init(&f);
  spawn(&loop, &a, 1, fn_await);
  spawn(&loop, &b, 2, fn_await);
  a.fut = &f;
  b.fut = &f;
  corio_loop_run_ready(&loop);
  CHECK(corio_future_finish(&loop, &f, CORIO_DONE) == 0);
  /* both ready again, in the order they started waiting */
  CHECK(a.core.wait_kind == CORIO_WAIT_READY);
  CHECK(b.core.wait_kind == CORIO_WAIT_READY);
  CHECK(corio_loop_run(&loop, UV_RUN_DEFAULT) == 0);
  check_trace(&tr, expect, 4);
  teardown(&loop);
}

/* ---------------------------------------------------------------- cancel */

/* cancelling a sleeping task wakes it at once with CORIO_WAKE_CANCEL and
   removes its timer; the loop does not wait for the old deadline */
static void test_cancel_sleeping(void) {
  static const int expect[2] = {1, 1};
  corio_loop_t loop;
  trace tr;
  ttask a;
  uint64_t t0;
  setup(&loop, &tr);
  spawn(&loop, &a, 1, fn_sleep_long_cancel);
  corio_loop_run_ready(&loop);
  CHECK(a.core.wait_kind == CORIO_WAIT_TIMER);
  CHECK(corio_timer_active(&a.core.wait.timer));
  CHECK(corio_task_cancelled_by(&a.core) == NULL);
  CHECK(corio_task_cancel(&loop, &a.core) == 0);
  /* at once, before the loop runs */
  CHECK(a.core.wait_kind == CORIO_WAIT_READY);
  CHECK(a.core.wake == CORIO_WAKE_CANCEL);
  CHECK(!corio_timer_active(&a.core.wait.timer));
  CHECK(a.core.flags & CORIO_TASK_CANCEL_REQUESTED);
  CHECK(corio_task_cancelled_by(&a.core) == (void *)&a.core);
  t0 = uv_hrtime();
  CHECK(corio_loop_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(uv_hrtime() - t0 < MS(2000));
  check_trace(&tr, expect, 2);
  CHECK(a.core.done.state == CORIO_CANCELLED);
  CHECK(corio_task_cancel(&loop, &a.core) == CORIO_EDONE);
  teardown(&loop);
}

/* the same, cancelled from a timer callback while the loop runs */
static void test_cancel_from_timer(void) {
  corio_loop_t loop;
  trace tr;
  ttask a;
  actor act;
  uint64_t t0;
  setup(&loop, &tr);
  memset(&act, 0, sizeof act);
  spawn(&loop, &a, 1, fn_sleep_long_cancel);
  act.cancel = &a.core;
  actor_start(&loop, &act, loop.now + MS(2));
  t0 = uv_hrtime();
  CHECK(corio_loop_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(uv_hrtime() - t0 < MS(2000));
  CHECK(act.fired == 1);
  CHECK(a.nsteps == 2);
  CHECK(a.wakes[1] == CORIO_WAKE_CANCEL);
  CHECK(a.core.done.state == CORIO_CANCELLED);
  teardown(&loop);
}

/* cancelling a task that awaits a future unlinks its waiter: finishing the
   future later does not wake the (finished) task again */
static void test_cancel_awaiting(void) {
  corio_loop_t loop;
  trace tr;
  ttask a;
  corio_future_t f;
  setup(&loop, &tr);
  corio_future_init(&f);
  spawn(&loop, &a, 1, fn_await);
  a.fut = &f;
  corio_loop_run_ready(&loop);
  CHECK(a.core.wait_kind == CORIO_WAIT_FUTURE);
  CHECK(corio_waiter_active(&a.core.wait.waiter));
  a.fn = fn_cancelled_finish;    /* its second step expects the cancel */
  CHECK(corio_task_cancel(&loop, &a.core) == 0);
  CHECK(a.core.wait_kind == CORIO_WAIT_READY);
  CHECK(a.core.wake == CORIO_WAKE_CANCEL);
  CHECK(!corio_waiter_active(&a.core.wait.waiter));
  CHECK(corio_loop_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(a.core.done.state == CORIO_CANCELLED);
  CHECK(corio_future_finish(&loop, &f, CORIO_DONE) == 0);
  CHECK(corio_loop_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(a.nsteps == 2);
  teardown(&loop);
}

/* cancelling a task that is ready (not started) wakes nothing: its first
   step sees the cancellation */
static void fn_expect_cancelled(corio_loop_t *loop, ttask *t) {
  CHECK(t->core.wake == CORIO_WAKE_NORMAL);
  CHECK(corio_task_cancelled_by(&t->core) == (void *)&t->core);
  CHECK(corio_task_finish(loop, &t->core, CORIO_CANCELLED) == 0);
}

static void test_cancel_ready_task(void) {
  corio_loop_t loop;
  trace tr;
  ttask a;
  setup(&loop, &tr);
  spawn(&loop, &a, 1, fn_expect_cancelled);
  CHECK(corio_task_cancel(&loop, &a.core) == 0);
  CHECK(a.core.wait_kind == CORIO_WAIT_READY);
  CHECK(corio_task_wake(&loop, &a.core, CORIO_WAKE_CANCEL) == CORIO_EBUSY);
  CHECK(corio_loop_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(a.nsteps == 1);
  CHECK(a.core.done.state == CORIO_CANCELLED);
  teardown(&loop);
}

/* ---------------------------------------------------------------- scopes */

/* enter t->scope, then await t->fut; the second step expects the scope's
   cancellation, leaves the scope and finishes */
static void fn_scope_await(corio_loop_t *loop, ttask *t) {
  if (t->nsteps == 1) {
    CHECK(corio_scope_enter(&t->scope, &t->core) == 0);
    CHECK(t->core.scope == &t->scope);
    CHECK(t->scope.task == &t->core && t->scope.entered);
    corio_task_await(loop, &t->core, t->fut);
  } else {
    CHECK(t->nsteps == 2);
    CHECK(t->core.wake == CORIO_WAKE_CANCEL);
    CHECK(corio_task_cancelled_by(&t->core) == (void *)&t->scope);
    CHECK(corio_scope_leave(loop, &t->scope) == 0);
    CHECK(t->core.scope == NULL);
    CHECK(corio_task_cancelled_by(&t->core) == NULL);  /* caught */
    CHECK(corio_task_finish(loop, &t->core, CORIO_DONE) == 0);
  }
}

/* a task inside an entered scope is woken when the scope is cancelled;
   cancelling a scope it is not in wakes nothing */
static void test_scope_cancel_wakes_task(void) {
  corio_loop_t loop;
  trace tr;
  ttask a;
  corio_future_t never;
  corio_scope_t other;
  setup(&loop, &tr);
  corio_future_init(&never);
  corio_scope_init(&other);
  spawn(&loop, &a, 1, fn_scope_await);
  a.fut = &never;
  corio_loop_run_ready(&loop);
  CHECK(a.core.wait_kind == CORIO_WAIT_FUTURE);
  corio_scope_cancel(&loop, &other);
  CHECK(other.cancelled);
  CHECK(a.core.wait_kind == CORIO_WAIT_FUTURE);
  corio_scope_cancel(&loop, &a.scope);
  CHECK(a.scope.cancelled && !a.scope.expired);
  CHECK(a.core.wait_kind == CORIO_WAIT_READY);
  CHECK(a.core.wake == CORIO_WAKE_CANCEL);
  CHECK(!(a.core.flags & CORIO_TASK_CANCEL_REQUESTED));
  corio_scope_cancel(&loop, &a.scope);   /* again: no effect */
  CHECK(corio_loop_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(a.nsteps == 2);
  CHECK(a.core.done.state == CORIO_DONE);
  CHECK(corio_future_finish(&loop, &never, CORIO_DONE) == 0);  /* no waiter left */
  CHECK(corio_loop_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(a.nsteps == 2);
  teardown(&loop);
}

/* scopes nest; they must be left innermost first; a used scope cannot be
   entered again; an outer cancellation is seen through an inner scope */
static void test_scope_nesting(void) {
  corio_loop_t loop;
  trace tr;
  ttask a;
  corio_scope_t outer, inner;
  setup(&loop, &tr);
  task_new(&loop, &a, 1, fn_finish);
  corio_scope_init(&outer);
  corio_scope_init(&inner);
  CHECK(corio_scope_leave(&loop, &outer) == CORIO_EINVAL);  /* not entered */
  CHECK(corio_scope_enter(&outer, &a.core) == 0);
  CHECK(corio_scope_enter(&outer, &a.core) == CORIO_EBUSY);
  CHECK(corio_scope_enter(&inner, &a.core) == 0);
  CHECK(inner.parent == &outer && outer.parent == NULL);
  CHECK(a.core.scope == &inner);
  corio_scope_cancel(&loop, &outer);
  CHECK(corio_task_cancelled_by(&a.core) == (void *)&outer);
  CHECK(corio_scope_leave(&loop, &outer) == CORIO_EINVAL);  /* not innermost */
  CHECK(corio_scope_leave(&loop, &inner) == 0);
  CHECK(a.core.scope == &outer);
  CHECK(corio_task_cancelled_by(&a.core) == (void *)&outer);
  CHECK(corio_scope_leave(&loop, &outer) == 0);
  CHECK(a.core.scope == NULL);
  CHECK(corio_task_cancelled_by(&a.core) == NULL);
  CHECK(corio_scope_enter(&inner, &a.core) == CORIO_EBUSY);  /* used */
  CHECK(corio_task_finish(&loop, &a.core, CORIO_DONE) == 0);
  CHECK(corio_task_finish(&loop, &a.core, CORIO_DONE) == CORIO_EDONE);
  teardown(&loop);
}

/* enters a shield scope, sleeps until t->when; wakes normally, still
   shielded from its own cancel until it leaves the shield */
static void fn_shield_sleep(corio_loop_t *loop, ttask *t) {
  if (t->nsteps == 1) {
    t->scope.shield = 1;
    CHECK(corio_scope_enter(&t->scope, &t->core) == 0);
    CHECK(corio_task_sleep_until(loop, &t->core, t->when) == 0);
  } else {
    CHECK(t->nsteps == 2);
    CHECK(t->core.wake == CORIO_WAKE_NORMAL);
    CHECK(loop->now >= t->when);
    CHECK(t->core.flags & CORIO_TASK_CANCEL_REQUESTED);
    CHECK(corio_task_cancelled_by(&t->core) == NULL);
    CHECK(corio_scope_leave(loop, &t->scope) == 0);
    CHECK(corio_task_cancelled_by(&t->core) == (void *)&t->core);
    CHECK(corio_task_finish(loop, &t->core, CORIO_CANCELLED) == 0);
  }
}

/* a shield holds off the task's own cancel until it is left */
static void test_shield_holds_off_cancel(void) {
  corio_loop_t loop;
  trace tr;
  ttask a;
  setup(&loop, &tr);
  spawn(&loop, &a, 1, fn_shield_sleep);
  a.when = loop.now + MS(3);
  corio_loop_run_ready(&loop);
  CHECK(a.core.wait_kind == CORIO_WAIT_TIMER);
  CHECK(corio_task_cancel(&loop, &a.core) == 0);
  CHECK(a.core.flags & CORIO_TASK_CANCEL_REQUESTED);
  CHECK(corio_task_cancelled_by(&a.core) == NULL);
  CHECK(a.core.wait_kind == CORIO_WAIT_TIMER);     /* not woken */
  CHECK(corio_timer_active(&a.core.wait.timer));
  CHECK(corio_loop_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(a.nsteps == 2);
  CHECK(a.core.done.state == CORIO_CANCELLED);
  teardown(&loop);
}

/* a shield holds off an outer scope's cancellation too, but not its own */
static void fn_wake_cancel_finish(corio_loop_t *loop, ttask *t) {
  CHECK(t->core.wake == CORIO_WAKE_CANCEL);
  CHECK(corio_task_cancelled_by(&t->core) == (void *)&t->scope2);
  CHECK(corio_scope_leave(loop, &t->scope2) == 0);
  CHECK(corio_task_cancelled_by(&t->core) == (void *)&t->scope);  /* uncovered */
  CHECK(corio_scope_leave(loop, &t->scope) == 0);
  CHECK(corio_task_cancelled_by(&t->core) == NULL);
  CHECK(corio_task_finish(loop, &t->core, CORIO_CANCELLED) == 0);
}

static void test_shield_own_cancel(void) {
  corio_loop_t loop;
  trace tr;
  ttask a;
  setup(&loop, &tr);
  task_new(&loop, &a, 1, fn_wake_cancel_finish);
  /* as if a first step had entered the scopes and parked */
  CHECK(corio_scope_enter(&a.scope, &a.core) == 0);
  a.scope2.shield = 1;
  CHECK(corio_scope_enter(&a.scope2, &a.core) == 0);
  corio_task_park(&loop, &a.core);
  CHECK(a.core.wait_kind == CORIO_WAIT_PARKED);
  corio_scope_cancel(&loop, &a.scope);          /* outside the shield */
  CHECK(a.core.wait_kind == CORIO_WAIT_PARKED);
  CHECK(corio_task_cancelled_by(&a.core) == NULL);
  corio_scope_cancel(&loop, &a.scope2);         /* the shield itself */
  CHECK(a.core.wait_kind == CORIO_WAIT_READY);
  CHECK(a.core.wake == CORIO_WAKE_CANCEL);
  CHECK(corio_loop_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(a.nsteps == 1);
  CHECK(a.core.done.state == CORIO_CANCELLED);
  teardown(&loop);
}

/* a deadline already past cancels the scope at once (expired), wakes a
   suspended task inside it at once, and arms no timer */
static void fn_deadline_woken(corio_loop_t *loop, ttask *t) {
  CHECK(t->core.wake == CORIO_WAKE_CANCEL);
  CHECK(corio_task_cancelled_by(&t->core) == (void *)&t->scope);
  CHECK(corio_scope_leave(loop, &t->scope) == 0);
  CHECK(corio_task_finish(loop, &t->core, CORIO_CANCELLED) == 0);
}

static void test_deadline_already_past(void) {
  corio_loop_t loop;
  trace tr;
  ttask a;
  corio_scope_t loose;
  setup(&loop, &tr);
  task_new(&loop, &a, 1, fn_deadline_woken);
  CHECK(corio_scope_enter(&a.scope, &a.core) == 0);
  corio_task_park(&loop, &a.core);
  CHECK(corio_scope_set_deadline(&loop, &a.scope, loop.now) == 0);
  CHECK(a.scope.cancelled);
  CHECK(a.scope.expired);
  CHECK(!corio_timer_active(&a.scope.deadline));
  CHECK(a.core.wait_kind == CORIO_WAIT_READY);   /* woken at once */
  CHECK(a.core.wake == CORIO_WAKE_CANCEL);
  /* a second deadline on a cancelled scope changes nothing */
  CHECK(corio_scope_set_deadline(&loop, &a.scope, loop.now + MS(1000)) == 0);
  CHECK(!corio_timer_active(&a.scope.deadline));
  /* a scope not entered yet: cancelled and expired, nothing to wake */
  corio_scope_init(&loose);
  CHECK(corio_scope_set_deadline(&loop, &loose, loop.now - MS(1)) == 0);
  CHECK(loose.cancelled && loose.expired);
  CHECK(corio_loop_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(a.nsteps == 1);
  teardown(&loop);
}

/* a deadline in the future cancels a sleeping task when it passes */
static void fn_deadline_sleep(corio_loop_t *loop, ttask *t) {
  if (t->nsteps == 1) {
    t->when = loop->now + MS(3);  /* from the step: a slow start must not pass it */
    CHECK(corio_scope_enter(&t->scope, &t->core) == 0);
    CHECK(corio_scope_set_deadline(loop, &t->scope, t->when) == 0);
    CHECK(corio_timer_active(&t->scope.deadline));
    CHECK(corio_task_sleep_until(loop, &t->core, loop->now + MS(10000)) == 0);
  } else {
    CHECK(t->core.wake == CORIO_WAKE_CANCEL);
    CHECK(loop->now >= t->when);
    CHECK(t->scope.cancelled && t->scope.expired);
    CHECK(!corio_timer_active(&t->core.wait.timer));
    CHECK(corio_scope_leave(loop, &t->scope) == 0);
    CHECK(corio_task_finish(loop, &t->core, CORIO_CANCELLED) == 0);
  }
}

static void test_deadline_expires(void) {
  corio_loop_t loop;
  trace tr;
  ttask a;
  uint64_t t0;
  setup(&loop, &tr);
  spawn(&loop, &a, 1, fn_deadline_sleep);
  t0 = uv_hrtime();
  CHECK(corio_loop_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(uv_hrtime() - t0 < MS(2000));
  CHECK(a.nsteps == 2);
  CHECK(a.core.done.state == CORIO_CANCELLED);
  teardown(&loop);
}

/* leaving a scope before its deadline stops the deadline */
static void fn_deadline_left(corio_loop_t *loop, ttask *t) {
  switch (t->nsteps) {
    case 1:
      CHECK(corio_scope_enter(&t->scope, &t->core) == 0);
      /* room between the two for a loaded machine */
      CHECK(corio_scope_set_deadline(loop, &t->scope, loop->now + MS(300)) == 0);
      CHECK(corio_task_sleep_until(loop, &t->core, loop->now + MS(2)) == 0);
      break;
    case 2:
      CHECK(t->core.wake == CORIO_WAKE_NORMAL);
      CHECK(!t->scope.cancelled);
      CHECK(corio_scope_leave(loop, &t->scope) == 0);
      CHECK(!corio_timer_active(&t->scope.deadline));
      CHECK(corio_task_sleep_until(loop, &t->core, loop->now + MS(350)) == 0);
      break;
    default:
      CHECK(t->core.wake == CORIO_WAKE_NORMAL);
      CHECK(!t->scope.cancelled && !t->scope.expired);
      CHECK(corio_task_finish(loop, &t->core, CORIO_DONE) == 0);
      break;
  }
}

static void test_deadline_left_early(void) {
  corio_loop_t loop;
  trace tr;
  ttask a;
  setup(&loop, &tr);
  spawn(&loop, &a, 1, fn_deadline_left);
  CHECK(corio_loop_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(a.nsteps == 3);
  CHECK(a.core.done.state == CORIO_DONE);
  teardown(&loop);
}

/* ---------------------------------------------------------------- groups */

/* a child's failure cancels its siblings and the group's body scope;
   nfailed counts every failure; the first one alone cancels */
static void test_group_failure_cancels(void) {
  corio_loop_t loop;
  trace tr;
  ttask owner, c[3];
  corio_group_t g;
  int i;
  setup(&loop, &tr);
  task_new(&loop, &owner, 0, fn_finish);
  corio_group_init(&g);
  CHECK(corio_group_enter(&g, &owner.core) == 0);
  CHECK(owner.core.scope == &g.body);
  for (i = 0; i < 3; i++) {
    task_new(&loop, &c[i], i + 1, fn_finish);
    CHECK(corio_group_add(&g, &c[i].core) == 0);
    CHECK(c[i].core.group == &g);
  }
  CHECK(g.nchildren == 3 && g.nfailed == 0);
  CHECK(corio_task_finish(&loop, &c[0].core, CORIO_FAILED) == 0);
  CHECK(c[0].core.group == NULL);
  CHECK(g.nchildren == 2);
  CHECK(g.nfailed == 1);
  CHECK(g.body.cancelled);
  CHECK(corio_task_cancelled_by(&owner.core) == (void *)&g.body);
  CHECK(!(owner.core.flags & CORIO_TASK_CANCEL_REQUESTED));
  CHECK(!(c[0].core.flags & CORIO_TASK_CANCEL_REQUESTED));
  CHECK(c[1].core.flags & CORIO_TASK_CANCEL_REQUESTED);
  CHECK(c[2].core.flags & CORIO_TASK_CANCEL_REQUESTED);
  CHECK(corio_task_finish(&loop, &c[1].core, CORIO_FAILED) == 0);
  CHECK(g.nfailed == 2 && g.nchildren == 1);
  CHECK(corio_task_finish(&loop, &c[2].core, CORIO_CANCELLED) == 0);
  CHECK(g.nfailed == 2 && g.nchildren == 0);
  CHECK(corio_scope_leave(&loop, &g.body) == 0);
  CHECK(corio_task_cancelled_by(&owner.core) == NULL);
  CHECK(corio_task_finish(&loop, &owner.core, CORIO_FAILED) == 0);
  corio_group_free(&g);  /* its children array */
  teardown(&loop);
}

/* children finish out of order: holes, then compaction when the array is
   full, keep spawn order and every child's index right */
static void test_group_holes_and_compaction(void) {
  enum { N = 64 };
  corio_loop_t loop;
  trace tr;
  corio_group_t g;
  ttask *c = (ttask *)calloc(2 * N, sizeof *c);
  int i;
  size_t k, prev;
  CHECK(c != NULL);
  setup(&loop, &tr);
  corio_group_init(&g);
  for (i = 0; i < N; i++) {
    task_new(&loop, &c[i], i, fn_finish);
    CHECK(corio_group_add(&g, &c[i].core) == 0);
  }
  for (i = 0; i < N; i += 2)  /* every other one finishes: holes */
    CHECK(corio_task_finish(&loop, &c[i].core, CORIO_DONE) == 0);
  CHECK(g.nchildren == N / 2);
  for (i = N; i < 2 * N; i++) {  /* more children: the array compacts */
    task_new(&loop, &c[i], i, fn_finish);
    CHECK(corio_group_add(&g, &c[i].core) == 0);
  }
  CHECK(g.nchildren == N / 2 + N);
  /* the live children sit in spawn order, each at its own index */
  prev = 0;
  for (k = 0; k < g.nslots; k++) {
    ttask *t;
    if (g.children[k] == NULL) continue;
    t = CONTAINER_OF(g.children[k], ttask, core);
    CHECK(t->core.member == k);
    CHECK(k == 0 || (size_t)t->id > prev);
    prev = (size_t)t->id;
  }
  corio_group_cancel(&loop, &g);
  for (i = 1; i < 2 * N; i++)
    if (i < N ? i % 2 == 1 : 1) CHECK(c[i].core.flags & CORIO_TASK_CANCEL_REQUESTED);
  for (i = 2 * N - 1; i >= 0; i--)  /* finish the rest, last first */
    if (c[i].core.done.state == CORIO_PENDING)
      CHECK(corio_task_finish(&loop, &c[i].core, CORIO_CANCELLED) == 0);
  CHECK(g.nchildren == 0 && g.nslots == 0);
  corio_group_free(&g);
  teardown(&loop);
  free(c);
}

/* a closed group takes no more children */
static void test_group_closed(void) {
  corio_loop_t loop;
  trace tr;
  ttask owner, child;
  corio_group_t g;
  setup(&loop, &tr);
  task_new(&loop, &owner, 0, fn_finish);
  task_new(&loop, &child, 1, fn_finish);
  corio_group_init(&g);
  CHECK(corio_group_enter(&g, &owner.core) == 0);
  g.closed = 1;   /* as the binding does when the body ends */
  CHECK(corio_group_add(&g, &child.core) == CORIO_ECLOSED);
  CHECK(child.core.group == NULL && g.nchildren == 0);
  CHECK(corio_task_finish(&loop, &child.core, CORIO_DONE) == 0);
  CHECK(corio_scope_leave(&loop, &g.body) == 0);
  CHECK(corio_task_finish(&loop, &owner.core, CORIO_DONE) == 0);
  corio_group_free(&g);  /* its children array */
  teardown(&loop);
}

typedef struct group_ctx {
  corio_group_t g;
  ttask c[3];
  int children_done_at_wake;
} group_ctx;

/* child i sleeps (i + 1) ms and finishes DONE */
static void fn_child_sleep_done(corio_loop_t *loop, ttask *t) {
  if (t->nsteps == 1) {
    CHECK(corio_task_sleep_until(loop, &t->core, loop->now + MS(t->id)) == 0);
  } else {
    CHECK(t->core.wake == CORIO_WAKE_NORMAL);
    CHECK(corio_task_finish(loop, &t->core, CORIO_DONE) == 0);
  }
}

/* the owner: enters the group, spawns the children, parks as the group's
   waiter; woken only when the last child has finished */
static void fn_owner_wait(corio_loop_t *loop, ttask *t) {
  group_ctx *gc = (group_ctx *)((trace *)loop->data)->ctx;
  int i;
  if (t->nsteps == 1) {
    corio_group_init(&gc->g);
    CHECK(corio_group_enter(&gc->g, &t->core) == 0);
    for (i = 0; i < 3; i++) {
      spawn(loop, &gc->c[i], i + 1, fn_child_sleep_done);
      CHECK(corio_group_add(&gc->g, &gc->c[i].core) == 0);
    }
    gc->g.waiter = &t->core;
    corio_task_park(loop, &t->core);
    CHECK(t->core.wait_kind == CORIO_WAIT_PARKED);
  } else {
    CHECK(t->nsteps == 2);
    CHECK(t->core.wake == CORIO_WAKE_NORMAL);
    CHECK(gc->g.nchildren == 0 && gc->g.nfailed == 0);
    CHECK(gc->g.waiter == NULL);
    CHECK(!gc->g.body.cancelled);
    for (i = 0; i < 3; i++) CHECK(gc->c[i].core.done.state == CORIO_DONE);
    CHECK(corio_scope_leave(loop, &gc->g.body) == 0);
    CHECK(corio_task_finish(loop, &t->core, CORIO_DONE) == 0);
  }
}

static void test_group_owner_woken_by_last_child(void) {
  corio_loop_t loop;
  trace tr;
  ttask owner;
  group_ctx gc;
  setup(&loop, &tr);
  memset(&gc, 0, sizeof gc);
  tr.ctx = &gc;
  spawn(&loop, &owner, 0, fn_owner_wait);
  CHECK(corio_loop_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(owner.nsteps == 2);
  CHECK(tr.n == 8);
  CHECK(tr.ids[0] == 0 && tr.ids[7] == 0);   /* first and last */
  CHECK(tr.ids[1] == 1 && tr.ids[2] == 2 && tr.ids[3] == 3);
  CHECK(owner.core.done.state == CORIO_DONE);
  corio_group_free(&gc.g);  /* its children array */
  teardown(&loop);
}

/* child 1 fails after 2 ms; 2 and 3 sleep long and are cancelled */
static void fn_child_fail(corio_loop_t *loop, ttask *t) {
  if (t->nsteps == 1) {
    CHECK(corio_task_sleep_until(loop, &t->core, loop->now + MS(2)) == 0);
  } else {
    CHECK(corio_task_finish(loop, &t->core, CORIO_FAILED) == 0);
  }
}

/* the owner, in the group body, is woken by the body's cancellation; it
   then waits shielded (as the binding does) until the last child is gone */
static void fn_owner_failing_group(corio_loop_t *loop, ttask *t) {
  group_ctx *gc = (group_ctx *)((trace *)loop->data)->ctx;
  int i;
  switch (t->nsteps) {
    case 1:
      corio_group_init(&gc->g);
      CHECK(corio_group_enter(&gc->g, &t->core) == 0);
      spawn(loop, &gc->c[0], 1, fn_child_fail);
      spawn(loop, &gc->c[1], 2, fn_sleep_long_cancel);
      spawn(loop, &gc->c[2], 3, fn_sleep_long_cancel);
      for (i = 0; i < 3; i++) CHECK(corio_group_add(&gc->g, &gc->c[i].core) == 0);
      gc->g.waiter = &t->core;
      corio_task_park(loop, &t->core);
      break;
    case 2:
      CHECK(t->core.wake == CORIO_WAKE_CANCEL);
      CHECK(corio_task_cancelled_by(&t->core) == (void *)&gc->g.body);
      CHECK(gc->g.nfailed == 1);
      CHECK(gc->g.nchildren == 2);
      CHECK(gc->c[1].core.flags & CORIO_TASK_CANCEL_REQUESTED);
      CHECK(gc->c[2].core.flags & CORIO_TASK_CANCEL_REQUESTED);
      t->scope.shield = 1;
      CHECK(corio_scope_enter(&t->scope, &t->core) == 0);
      CHECK(corio_task_cancelled_by(&t->core) == NULL);
      gc->g.waiter = &t->core;
      corio_task_park(loop, &t->core);
      break;
    default:
      CHECK(t->nsteps == 3);
      CHECK(t->core.wake == CORIO_WAKE_NORMAL);
      CHECK(gc->g.nchildren == 0);
      CHECK(gc->g.nfailed == 1);
      CHECK(gc->c[0].core.done.state == CORIO_FAILED);
      CHECK(gc->c[1].core.done.state == CORIO_CANCELLED);
      CHECK(gc->c[2].core.done.state == CORIO_CANCELLED);
      CHECK(corio_scope_leave(loop, &t->scope) == 0);
      CHECK(corio_task_cancelled_by(&t->core) == (void *)&gc->g.body);
      CHECK(corio_scope_leave(loop, &gc->g.body) == 0);
      CHECK(corio_task_cancelled_by(&t->core) == NULL);
      CHECK(corio_task_finish(loop, &t->core, CORIO_FAILED) == 0);
      break;
  }
}

static void test_group_failure_in_loop(void) {
  /* owner | children | child 1 fails | owner, 2, 3 woken by the cancel |
     owner woken by the last child */
  static const int expect[9] = {0, 1, 2, 3, 1, 0, 2, 3, 0};
  corio_loop_t loop;
  trace tr;
  ttask owner;
  group_ctx gc;
  uint64_t t0;
  setup(&loop, &tr);
  memset(&gc, 0, sizeof gc);
  tr.ctx = &gc;
  spawn(&loop, &owner, 0, fn_owner_failing_group);
  t0 = uv_hrtime();
  CHECK(corio_loop_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(uv_hrtime() - t0 < MS(2000));
  check_trace(&tr, expect, 9);
  CHECK(owner.core.done.state == CORIO_FAILED);
  corio_group_free(&gc.g);  /* its children array */
  teardown(&loop);
}

/* corio_group_cancel cancels the body and every child */
static void test_group_cancel(void) {
  corio_loop_t loop;
  trace tr;
  ttask owner, c[2];
  corio_group_t g;
  int i;
  setup(&loop, &tr);
  task_new(&loop, &owner, 0, fn_finish);
  corio_group_init(&g);
  CHECK(corio_group_enter(&g, &owner.core) == 0);
  for (i = 0; i < 2; i++) {
    task_new(&loop, &c[i], i + 1, fn_sleep_long_cancel);
    CHECK(corio_group_add(&g, &c[i].core) == 0);
    c[i].nsteps = 1;   /* as if its first step had run */
    corio_task_park(&loop, &c[i].core);
  }
  corio_group_cancel(&loop, &g);
  CHECK(g.body.cancelled);
  CHECK(g.nfailed == 0);
  for (i = 0; i < 2; i++) {
    CHECK(c[i].core.flags & CORIO_TASK_CANCEL_REQUESTED);
    CHECK(c[i].core.wait_kind == CORIO_WAIT_READY);
    CHECK(c[i].core.wake == CORIO_WAKE_CANCEL);
  }
  CHECK(corio_loop_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(g.nchildren == 0);
  CHECK(corio_scope_leave(&loop, &g.body) == 0);
  CHECK(corio_task_finish(&loop, &owner.core, CORIO_DONE) == 0);
  corio_group_free(&g);  /* its children array */
  teardown(&loop);
}

int main(void) {
  TEST_MAIN_BEGIN();
  RUN(test_fifo_one_batch);
  RUN(test_before_batch_reorders);
  RUN(test_fifo_many);
  RUN(test_finished_while_ready);
  RUN(test_reschedule_next_batch);
  RUN(test_reschedule_interleaves);
  RUN(test_sleep_until);
  RUN(test_sleep_until_zero);
  RUN(test_ready_ring_wraps_and_grows);
  RUN(test_await_future);
  RUN(test_await_finished_in_step_order);
  RUN(test_cancel_sleeping);
  RUN(test_cancel_from_timer);
  RUN(test_cancel_awaiting);
  RUN(test_cancel_ready_task);
  RUN(test_scope_cancel_wakes_task);
  RUN(test_scope_nesting);
  RUN(test_shield_holds_off_cancel);
  RUN(test_shield_own_cancel);
  RUN(test_deadline_already_past);
  RUN(test_deadline_expires);
  RUN(test_deadline_left_early);
  RUN(test_group_failure_cancels);
  RUN(test_group_closed);
  RUN(test_group_holes_and_compaction);
  RUN(test_group_owner_woken_by_last_child);
  RUN(test_group_failure_in_loop);
  RUN(test_group_cancel);
  TEST_MAIN_END();
}
