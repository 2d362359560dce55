/*
** test_timer.c: the loop's deadline heap (corio_timer_t) on a real uv loop.
*/
#include "corio.h"
#include "test_core.h"

typedef struct rec rec;
struct rec {
  corio_timer_t t;
  int id;
  int fired;
  rec *victim[2];   /* timers this one's callback stops */
  int restarts;     /* how many more times the callback restarts it */
};

/* the order timers fired in; loop->data points at it */
typedef struct tlog {
  int *ids;
  int n, cap;
} tlog;

/* lg records, in ids[0..cap), the timers of loop as they fire */
static void log_init(corio_loop_t *loop, tlog *lg, int *ids, int cap) {
  lg->ids = ids;
  lg->n = 0;
  lg->cap = cap;
  loop->data = lg;
}

static void rec_init(rec *r, int id) {
  memset(r, 0, sizeof *r);
  r->id = id;
}

static void log_cb(corio_loop_t *loop, corio_timer_t *timer) {
  rec *r = CONTAINER_OF(timer, rec, t);
  tlog *lg = (tlog *)loop->data;
  int i;
  CHECK(!corio_timer_active(timer));   /* unlinked before its callback */
  CHECK(timer->when <= loop->now);     /* never early */
  CHECK(timer->when <= uv_hrtime());
  CHECK(lg->n < lg->cap);
  lg->ids[lg->n++] = r->id;
  r->fired++;
  for (i = 0; i < 2; i++)
    if (r->victim[i] != NULL) corio_timer_stop(loop, &r->victim[i]->t);
  if (r->restarts > 0) {
    r->restarts--;
    CHECK(corio_timer_start(loop, timer, loop->now + MS(1)) == 0);
  }
}

static void start(corio_loop_t *loop, rec *r, uint64_t when) {
  corio_timer_init(&r->t, log_cb);
  CHECK(!corio_timer_active(&r->t));
  CHECK(corio_timer_start(loop, &r->t, when) == 0);
  CHECK(corio_timer_active(&r->t));
  CHECK(r->t.when == when);
}

/* deadlines fire in order of when, whatever order they were set in */
static void test_deadline_order(void) {
  static const int ms[6] = {5, 1, 4, 2, 6, 3};
  static const int expect[6] = {1, 3, 5, 2, 0, 4};
  corio_loop_t loop;
  rec r[6];
  int ids[6];
  tlog lg;
  uint64_t base;
  int i;
  CHECK(corio_loop_init(&loop, NULL) == 0);
  log_init(&loop, &lg, ids, 6);
  base = loop.now;
  for (i = 0; i < 6; i++) {
    rec_init(&r[i], i);
    start(&loop, &r[i], base + MS(ms[i]));
  }
  CHECK(corio_loop_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(lg.n == 6);
  for (i = 0; i < 6; i++) {
    CHECK(ids[i] == expect[i]);
    CHECK(r[i].fired == 1);
    CHECK(!corio_timer_active(&r[i].t));
  }
  CHECK(uv_hrtime() >= base + MS(6));
  CHECK(corio_loop_close(&loop) == 0);
}

/* equal deadlines fire in the order they were set; restarting a timer puts
   it behind the others with the same deadline; earlier deadlines set later
   still fire first */
static void test_equal_deadlines_fifo(void) {
  corio_loop_t loop;
  rec r[12];
  int ids[12];
  tlog lg;
  uint64_t base;
  int i;
  CHECK(corio_loop_init(&loop, NULL) == 0);
  log_init(&loop, &lg, ids, 12);
  base = loop.now;
  for (i = 0; i < 10; i++) {
    rec_init(&r[i], i);
    start(&loop, &r[i], base + MS(3));
  }
  /* restart 0 and 4 with the same deadline: they go to the back */
  CHECK(corio_timer_start(&loop, &r[0].t, base + MS(3)) == 0);
  CHECK(corio_timer_start(&loop, &r[4].t, base + MS(3)) == 0);
  /* set last, due first */
  rec_init(&r[10], 10);
  start(&loop, &r[10], base + MS(2));
  rec_init(&r[11], 11);
  start(&loop, &r[11], base + MS(2));
  CHECK(corio_loop_run(&loop, UV_RUN_DEFAULT) == 0);
  {
    static const int expect[12] = {10, 11, 1, 2, 3, 5, 6, 7, 8, 9, 0, 4};
    CHECK(lg.n == 12);
    for (i = 0; i < 12; i++) {
      CHECK(ids[i] == expect[i]);
      CHECK(r[i].fired == 1);
    }
  }
  CHECK(corio_loop_close(&loop) == 0);
}

/* a stopped timer never fires; stopping twice, or a timer never started, is
   harmless */
static void test_stopped_never_fires(void) {
  corio_loop_t loop;
  rec r[6];
  int ids[6];
  tlog lg;
  uint64_t base;
  int i;
  CHECK(corio_loop_init(&loop, NULL) == 0);
  log_init(&loop, &lg, ids, 6);
  base = loop.now;
  for (i = 0; i < 5; i++) {
    rec_init(&r[i], i);
    start(&loop, &r[i], base + MS(i + 1));
  }
  rec_init(&r[5], 5);
  corio_timer_init(&r[5].t, log_cb);
  corio_timer_stop(&loop, &r[5].t);         /* never started */
  corio_timer_stop(&loop, &r[1].t);
  corio_timer_stop(&loop, &r[3].t);
  corio_timer_stop(&loop, &r[3].t);         /* again */
  corio_timer_stop(&loop, &r[0].t);         /* the earliest, the armed one */
  CHECK(!corio_timer_active(&r[0].t));
  CHECK(!corio_timer_active(&r[1].t));
  CHECK(!corio_timer_active(&r[3].t));
  CHECK(corio_timer_active(&r[2].t));
  CHECK(corio_loop_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(lg.n == 2);
  CHECK(ids[0] == 2);
  CHECK(ids[1] == 4);
  CHECK(r[0].fired == 0 && r[1].fired == 0 && r[3].fired == 0);
  CHECK(r[5].fired == 0);
  CHECK(corio_loop_close(&loop) == 0);
}

/* with every timer stopped, the loop has nothing to wait for: run returns
   at once instead of sleeping until the old deadline */
static void test_all_stopped_run_returns(void) {
  corio_loop_t loop;
  rec r[3];
  int ids[3];
  tlog lg;
  uint64_t t0;
  int i;
  CHECK(corio_loop_init(&loop, NULL) == 0);
  log_init(&loop, &lg, ids, 3);
  for (i = 0; i < 3; i++) {
    rec_init(&r[i], i);
    start(&loop, &r[i], loop.now + MS(2000 + i));
  }
  for (i = 0; i < 3; i++) corio_timer_stop(&loop, &r[i].t);
  t0 = uv_hrtime();
  CHECK(corio_loop_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(uv_hrtime() - t0 < MS(1000));
  CHECK(lg.n == 0);
  CHECK(corio_loop_close(&loop) == 0);
}

/* a deadline already past fires on the next run */
static void test_past_deadline_fires(void) {
  corio_loop_t loop;
  rec r[2];
  int ids[2];
  tlog lg;
  CHECK(corio_loop_init(&loop, NULL) == 0);
  log_init(&loop, &lg, ids, 2);
  rec_init(&r[0], 0);
  rec_init(&r[1], 1);
  start(&loop, &r[0], loop.now + MS(1));
  start(&loop, &r[1], loop.now - 1);
  CHECK(corio_loop_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(lg.n == 2);
  CHECK(ids[0] == 1 && ids[1] == 0);
  CHECK(corio_loop_close(&loop) == 0);
}

/* a deadline of 0 (the clock's origin, long past) fires like any other past
   deadline; 0 must not be mistaken for "the uv timer is not armed" */
static void test_zero_deadline_fires(void) {
  corio_loop_t loop;
  rec r;
  int ids[1];
  tlog lg;
  uint64_t t0;
  CHECK(corio_loop_init(&loop, NULL) == 0);
  log_init(&loop, &lg, ids, 1);
  rec_init(&r, 0);
  start(&loop, &r, 0);
  t0 = uv_hrtime();
  CHECK(corio_loop_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(uv_hrtime() - t0 < MS(2000));
  CHECK(r.fired == 1);
  CHECK(!corio_timer_active(&r.t));
  CHECK(corio_loop_close(&loop) == 0);
}

/* a callback may stop timers that are due in the same pass (equal deadline,
   later in FIFO order) or later; a callback may restart its own timer */
static void test_stop_inside_callback(void) {
  corio_loop_t loop;
  rec a, b, c, d, e;
  int ids[16];
  tlog lg;
  uint64_t base;
  CHECK(corio_loop_init(&loop, NULL) == 0);
  log_init(&loop, &lg, ids, 16);
  base = loop.now;
  rec_init(&a, 1);
  rec_init(&b, 2);
  rec_init(&c, 3);
  rec_init(&d, 4);
  rec_init(&e, 5);
  start(&loop, &a, base + MS(1));
  start(&loop, &c, base + MS(1));   /* same deadline as a, after it */
  start(&loop, &d, base + MS(2));
  start(&loop, &b, base + MS(4));
  start(&loop, &e, base + MS(3));
  a.victim[0] = &b;
  a.victim[1] = &c;
  e.restarts = 3;                    /* fires 4 times in all */
  CHECK(corio_loop_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(a.fired == 1);
  CHECK(b.fired == 0);
  CHECK(c.fired == 0);
  CHECK(d.fired == 1);
  CHECK(e.fired == 4);
  CHECK(lg.n == 6);
  CHECK(ids[0] == 1 && ids[1] == 4 && ids[2] == 5);
  CHECK(ids[3] == 5 && ids[4] == 5 && ids[5] == 5);
  CHECK(!corio_timer_active(&e.t));
  CHECK(corio_loop_close(&loop) == 0);
}

/* a callback that stops itself (already unlinked) is harmless */
static void stop_self_cb(corio_loop_t *loop, corio_timer_t *timer) {
  rec *r = CONTAINER_OF(timer, rec, t);
  corio_timer_stop(loop, timer);
  r->fired++;
}

static void test_stop_self_in_callback(void) {
  corio_loop_t loop;
  rec r[3];
  int i;
  CHECK(corio_loop_init(&loop, NULL) == 0);
  for (i = 0; i < 3; i++) {
    rec_init(&r[i], i);
    corio_timer_init(&r[i].t, stop_self_cb);
    CHECK(corio_timer_start(&loop, &r[i].t, loop.now + MS(1 + i)) == 0);
  }
  CHECK(corio_loop_run(&loop, UV_RUN_DEFAULT) == 0);
  for (i = 0; i < 3; i++) CHECK(r[i].fired == 1);
  CHECK(corio_loop_close(&loop) == 0);
}

/* the n timers that fired (ids, in firing order, index r) came by
   (when, start order); ids were given in start order */
static void check_fired_in_order(const rec *r, const int *ids, int n) {
  int i;
  for (i = 1; i < n; i++) {
    const rec *p = &r[ids[i - 1]], *q = &r[ids[i]];
    CHECK(p->t.when < q->t.when || (p->t.when == q->t.when && p->id < q->id));
  }
}

static uint32_t rng_state = 12345u;

static uint32_t rng(void) {  /* xorshift32: the same sequence every run */
  uint32_t x = rng_state;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  rng_state = x;
  return x;
}

/* 10,000 timers with random deadlines (many equal) fire sorted by
   (when, start order); every 10th is stopped and never fires */
static void test_many_random(void) {
  enum { N = 10000 };
  corio_loop_t loop;
  rec *r = (rec *)calloc(N, sizeof *r);
  int *ids = (int *)calloc(N, sizeof *ids);
  tlog lg;
  uint64_t base;
  int i, nstopped = 0;
  CHECK(r != NULL && ids != NULL);
  CHECK(corio_loop_init(&loop, NULL) == 0);
  log_init(&loop, &lg, ids, N);
  base = loop.now;
  for (i = 0; i < N; i++) {
    rec_init(&r[i], i);
    /* 1 ms .. 5 ms in steps of 0.1 ms: about 250 timers per deadline */
    start(&loop, &r[i], base + MS(1) + (uint64_t)(rng() % 40) * 100000u);
  }
  for (i = 0; i < N; i += 10) {
    corio_timer_stop(&loop, &r[i].t);
    nstopped++;
  }
  CHECK(corio_loop_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(lg.n == N - nstopped);
  check_fired_in_order(r, ids, lg.n);
  for (i = 0; i < N; i++) {
    CHECK(r[i].fired == (i % 10 == 0 ? 0 : 1));
    CHECK(!corio_timer_active(&r[i].t));
  }
  CHECK(corio_loop_close(&loop) == 0);
  free(r);
  free(ids);
}

/* mostly in order, as sleeps of one length are: ascending deadlines with
   runs of equal ones, every 7th set out of order, every 5th stopped (the
   run's head among them): all fire sorted by (when, start order) */
static void test_mostly_in_order(void) {
  enum { N = 5000 };
  corio_loop_t loop;
  rec *r = (rec *)calloc(N, sizeof *r);
  int *ids = (int *)calloc(N, sizeof *ids);
  tlog lg;
  uint64_t base;
  int i, nstopped = 0;
  CHECK(r != NULL && ids != NULL);
  CHECK(corio_loop_init(&loop, NULL) == 0);
  log_init(&loop, &lg, ids, N);
  base = loop.now;
  for (i = 0; i < N; i++) {
    uint64_t when = base + MS(1) + (uint64_t)(i / 4) * 1000u;  /* 4 equal */
    if (i % 7 == 3) when = base + MS(1) + (uint64_t)(rng() % (unsigned)(i + 1)) * 250u;
    rec_init(&r[i], i);
    start(&loop, &r[i], when);
  }
  for (i = 0; i < N; i += 5) {
    corio_timer_stop(&loop, &r[i].t);
    nstopped++;
  }
  CHECK(corio_loop_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(lg.n == N - nstopped);
  check_fired_in_order(r, ids, lg.n);
  for (i = 0; i < N; i++) CHECK(r[i].fired == (i % 5 == 0 ? 0 : 1));
  CHECK(corio_loop_close(&loop) == 0);
  free(r);
  free(ids);
}

/* one long timer at the run's head, and 100,000 later deadlines set and
   cancelled behind it (timeouts that never fire): the run does not grow
   without bound, and what is left still fires in order */
static void test_run_holes_bounded(void) {
  enum { N = 100000 };
  corio_loop_t loop;
  rec head, tail[3], churn;
  int ids[4];
  tlog lg;
  uint64_t base;
  int i;
  CHECK(corio_loop_init(&loop, NULL) == 0);
  log_init(&loop, &lg, ids, 4);
  base = loop.now;
  rec_init(&head, 100);
  start(&loop, &head, base + MS(5));
  rec_init(&churn, 200);
  for (i = 0; i < N; i++) {
    start(&loop, &churn, base + MS(10) + (uint64_t)i);
    corio_timer_stop(&loop, &churn.t);
  }
  CHECK(loop.rncap <= 1024);
  for (i = 0; i < 3; i++) {
    rec_init(&tail[i], i);
    start(&loop, &tail[i], base + MS(6 + i));
  }
  CHECK(corio_loop_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(lg.n == 4);
  CHECK(ids[0] == 100 && ids[1] == 0 && ids[2] == 1 && ids[3] == 2);
  CHECK(churn.fired == 0);
  CHECK(corio_loop_close(&loop) == 0);
}

/* 10,000 random starts, restarts and stops before running: the heap keeps
   its order through removals from the middle */
static void test_many_random_churn(void) {
  enum { N = 10000 };
  corio_loop_t loop;
  rec *r = (rec *)calloc(N, sizeof *r);
  int *ids = (int *)calloc(N, sizeof *ids);
  tlog lg;
  uint64_t base;
  int i, j, nactive = 0;
  CHECK(r != NULL && ids != NULL);
  CHECK(corio_loop_init(&loop, NULL) == 0);
  log_init(&loop, &lg, ids, N);
  base = loop.now;
  for (i = 0; i < N; i++) {
    rec_init(&r[i], i);
    corio_timer_init(&r[i].t, log_cb);
  }
  for (j = 0; j < 3 * N; j++) {
    rec *x = &r[rng() % N];
    if (rng() % 3 == 0)
      corio_timer_stop(&loop, &x->t);
    else
      CHECK(corio_timer_start(&loop, &x->t,
                              base + MS(1) + (uint64_t)(rng() % 2000) * 2000u) == 0);
  }
  for (i = 0; i < N; i++) nactive += corio_timer_active(&r[i].t) ? 1 : 0;
  CHECK(corio_loop_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(lg.n == nactive);
  for (i = 1; i < lg.n; i++) {
    const rec *p = &r[ids[i - 1]], *q = &r[ids[i]];
    CHECK(p->t.when < q->t.when || (p->t.when == q->t.when && p->t.seq < q->t.seq));
  }
  for (i = 0; i < N; i++) CHECK(r[i].fired <= 1);
  CHECK(corio_loop_close(&loop) == 0);
  free(r);
  free(ids);
}

/* a loop with nothing to do returns at once and closes cleanly */
static void test_empty_loop(void) {
  corio_loop_t loop;
  CHECK(corio_loop_init(&loop, NULL) == 0);
  CHECK(loop.uv != NULL);
  CHECK(loop.now > 0);
  CHECK(corio_loop_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(corio_loop_close(&loop) == 0);
}

/* the virtual clock: no "never early" check against uv_hrtime() here */
static void vlog_cb(corio_loop_t *loop, corio_timer_t *timer) {
  rec *r = CONTAINER_OF(timer, rec, t);
  tlog *lg = (tlog *)loop->data;
  CHECK(timer->when <= loop->now);
  CHECK(lg->n < lg->cap);
  lg->ids[lg->n++] = r->id;
  r->fired++;
}

/* autojump: an hour of timers in no real time, in deadline order */
static void test_autojump(void) {
  corio_loop_t loop;
  tlog lg;
  int ids[3];
  rec r[3];
  uint64_t t0, real0 = uv_hrtime();
  int i;
  CHECK(corio_loop_init(&loop, NULL) == 0);
  log_init(&loop, &lg, ids, 3);
  corio_loop_set_autojump(&loop, 1);
  t0 = loop.now;
  for (i = 0; i < 3; i++) {
    rec_init(&r[i], i);
    corio_timer_init(&r[i].t, vlog_cb);
  }
  CHECK(corio_timer_start(&loop, &r[0].t, t0 + MS(3600000)) == 0);
  CHECK(corio_timer_start(&loop, &r[1].t, t0 + MS(60000)) == 0);
  CHECK(corio_timer_start(&loop, &r[2].t, t0 + MS(1800000)) == 0);
  CHECK(corio_loop_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(lg.n == 3 && ids[0] == 1 && ids[1] == 2 && ids[2] == 0);
  CHECK(loop.now >= t0 + MS(3600000));
  CHECK(loop.offset >= MS(3600000) - MS(5000));
  CHECK(uv_hrtime() - real0 < MS(5000));
  CHECK(corio_loop_close(&loop) == 0);
}

/* advance: the clock moves by hand; due timers fire on the next turn */
static void test_advance(void) {
  corio_loop_t loop;
  tlog lg;
  int ids[2];
  rec r[2];
  uint64_t t0;
  int i;
  CHECK(corio_loop_init(&loop, NULL) == 0);
  log_init(&loop, &lg, ids, 2);
  t0 = loop.now;
  for (i = 0; i < 2; i++) {
    rec_init(&r[i], i);
    corio_timer_init(&r[i].t, vlog_cb);
  }
  CHECK(corio_timer_start(&loop, &r[0].t, t0 + MS(10000)) == 0);
  CHECK(corio_timer_start(&loop, &r[1].t, t0 + MS(20000)) == 0);
  corio_loop_advance(&loop, MS(15000));
  CHECK(loop.now >= t0 + MS(15000));
  for (i = 0; i < 10 && lg.n == 0; i++) corio_loop_run(&loop, UV_RUN_NOWAIT);
  CHECK(lg.n == 1 && ids[0] == 0);
  corio_loop_advance(&loop, MS(5000));
  for (i = 0; i < 10 && lg.n == 1; i++) corio_loop_run(&loop, UV_RUN_NOWAIT);
  CHECK(lg.n == 2 && ids[1] == 1);
  CHECK(corio_loop_close(&loop) == 0);
}

int main(void) {
  TEST_MAIN_BEGIN();
  RUN(test_empty_loop);
  RUN(test_deadline_order);
  RUN(test_equal_deadlines_fifo);
  RUN(test_stopped_never_fires);
  RUN(test_all_stopped_run_returns);
  RUN(test_past_deadline_fires);
  RUN(test_zero_deadline_fires);
  RUN(test_stop_inside_callback);
  RUN(test_stop_self_in_callback);
  RUN(test_many_random);
  RUN(test_many_random_churn);
  RUN(test_mostly_in_order);
  RUN(test_run_holes_bounded);
  RUN(test_autojump);
  RUN(test_advance);
  TEST_MAIN_END();
}
