/*
** test_future.c: futures and their waiters, and the error names.
*/
#include "corio.h"
#include "test_core.h"

typedef struct wrec wrec;
struct wrec {
  corio_waiter_t w;
  int id;
  int fired;
  int seen_state;           /* f->state inside the callback */
  corio_waiter_t *victim;   /* a waiter the callback cancels */
  corio_future_t *chain;    /* a future the callback finishes */
};

typedef struct flog {
  int ids[32];
  int n;
} flog;

static void wcb(corio_loop_t *loop, corio_waiter_t *w, corio_future_t *f) {
  wrec *r = CONTAINER_OF(w, wrec, w);
  flog *lg = (flog *)loop->data;
  CHECK(!corio_waiter_active(w));  /* unlinked before its callback */
  CHECK(f->state != CORIO_PENDING);
  CHECK(lg->n < 32);
  lg->ids[lg->n++] = r->id;
  r->fired++;
  r->seen_state = f->state;
  if (r->victim != NULL) corio_waiter_cancel(r->victim);
  if (r->chain != NULL) CHECK(corio_future_finish(loop, r->chain, CORIO_DONE) == 0);
}

static void wrec_init(wrec *r, int id) {
  memset(r, 0, sizeof *r);
  r->id = id;
  corio_waiter_init(&r->w, wcb);
  CHECK(!corio_waiter_active(&r->w));
}

static void setup(corio_loop_t *loop, flog *lg) {
  CHECK(corio_loop_init(loop, NULL) == 0);
  memset(lg, 0, sizeof *lg);
  loop->data = lg;
}

/* waiters fire once each, in the order they arrived, after finish */
static void test_waiters_fire_in_order_once(void) {
  corio_loop_t loop;
  flog lg;
  corio_future_t f;
  wrec r[5];
  int i;
  setup(&loop, &lg);
  corio_future_init(&f);
  CHECK(f.state == CORIO_PENDING);
  for (i = 0; i < 5; i++) {
    wrec_init(&r[i], i);
    corio_future_wait(&f, &r[i].w);
    CHECK(corio_waiter_active(&r[i].w));
  }
  CHECK(lg.n == 0);  /* waiting fires nothing */
  CHECK(corio_future_finish(&loop, &f, CORIO_DONE) == 0);
  CHECK(f.state == CORIO_DONE);
  CHECK(lg.n == 5);
  for (i = 0; i < 5; i++) {
    CHECK(lg.ids[i] == i);
    CHECK(r[i].fired == 1);
    CHECK(r[i].seen_state == CORIO_DONE);  /* state is set before firing */
    CHECK(!corio_waiter_active(&r[i].w));
  }
  CHECK(corio_loop_close(&loop) == 0);
}

/* the second finish is CORIO_EDONE, keeps the first state, fires nothing */
static void test_finish_twice_edone(void) {
  corio_loop_t loop;
  flog lg;
  corio_future_t f;
  wrec r;
  setup(&loop, &lg);
  corio_future_init(&f);
  wrec_init(&r, 1);
  corio_future_wait(&f, &r.w);
  CHECK(corio_future_finish(&loop, &f, CORIO_FAILED) == 0);
  CHECK(r.fired == 1 && r.seen_state == CORIO_FAILED);
  CHECK(corio_future_finish(&loop, &f, CORIO_DONE) == CORIO_EDONE);
  CHECK(corio_future_finish(&loop, &f, CORIO_FAILED) == CORIO_EDONE);
  CHECK(f.state == CORIO_FAILED);
  CHECK(r.fired == 1);
  CHECK(lg.n == 1);
  CHECK(corio_loop_close(&loop) == 0);
}

/* finishing with no waiters; each final state is kept */
static void test_finish_states_no_waiters(void) {
  corio_loop_t loop;
  flog lg;
  corio_future_t a, b, c;
  setup(&loop, &lg);
  corio_future_init(&a);
  corio_future_init(&b);
  corio_future_init(&c);
  CHECK(corio_future_finish(&loop, &a, CORIO_DONE) == 0);
  CHECK(corio_future_finish(&loop, &b, CORIO_FAILED) == 0);
  CHECK(corio_future_finish(&loop, &c, CORIO_CANCELLED) == 0);
  CHECK(a.state == CORIO_DONE);
  CHECK(b.state == CORIO_FAILED);
  CHECK(c.state == CORIO_CANCELLED);
  CHECK(corio_future_finish(&loop, &c, CORIO_DONE) == CORIO_EDONE);
  CHECK(lg.n == 0);
  CHECK(corio_loop_close(&loop) == 0);
}

/* a cancelled waiter does not fire; cancelling twice, or a waiter that
   never waited, is harmless */
static void test_cancelled_waiter_not_fired(void) {
  corio_loop_t loop;
  flog lg;
  corio_future_t f;
  wrec r[4], idle;
  int i;
  setup(&loop, &lg);
  corio_future_init(&f);
  for (i = 0; i < 4; i++) {
    wrec_init(&r[i], i);
    corio_future_wait(&f, &r[i].w);
  }
  wrec_init(&idle, 99);
  corio_waiter_cancel(&idle.w);
  CHECK(!corio_waiter_active(&idle.w));
  corio_waiter_cancel(&r[1].w);
  CHECK(!corio_waiter_active(&r[1].w));
  corio_waiter_cancel(&r[1].w);
  corio_waiter_cancel(&r[3].w);   /* the last one */
  corio_waiter_cancel(&r[0].w);   /* the first one */
  CHECK(corio_waiter_active(&r[2].w));
  CHECK(corio_future_finish(&loop, &f, CORIO_DONE) == 0);
  CHECK(lg.n == 1);
  CHECK(lg.ids[0] == 2);
  CHECK(r[0].fired == 0 && r[1].fired == 0 && r[3].fired == 0);
  CHECK(idle.fired == 0);
  CHECK(corio_loop_close(&loop) == 0);
}

/* all waiters cancelled: finishing fires nothing */
static void test_all_cancelled(void) {
  corio_loop_t loop;
  flog lg;
  corio_future_t f;
  wrec r[3];
  int i;
  setup(&loop, &lg);
  corio_future_init(&f);
  for (i = 0; i < 3; i++) {
    wrec_init(&r[i], i);
    corio_future_wait(&f, &r[i].w);
  }
  for (i = 2; i >= 0; i--) corio_waiter_cancel(&r[i].w);
  CHECK(corio_future_finish(&loop, &f, CORIO_CANCELLED) == 0);
  CHECK(lg.n == 0);
  CHECK(corio_loop_close(&loop) == 0);
}

/* a callback cancels a later waiter of the same future: it never fires;
   cancelling an earlier (already fired) one is harmless */
static void test_callback_cancels_later_waiter(void) {
  corio_loop_t loop;
  flog lg;
  corio_future_t f;
  wrec r[5];
  int i;
  setup(&loop, &lg);
  corio_future_init(&f);
  for (i = 0; i < 5; i++) {
    wrec_init(&r[i], i);
    corio_future_wait(&f, &r[i].w);
  }
  r[1].victim = &r[3].w;   /* later */
  r[2].victim = &r[0].w;   /* earlier, already fired */
  r[4].victim = &r[4].w;   /* itself, already unlinked */
  CHECK(corio_future_finish(&loop, &f, CORIO_DONE) == 0);
  CHECK(lg.n == 4);
  CHECK(lg.ids[0] == 0 && lg.ids[1] == 1 && lg.ids[2] == 2 && lg.ids[3] == 4);
  CHECK(r[3].fired == 0);
  CHECK(r[0].fired == 1 && r[4].fired == 1);
  CHECK(corio_loop_close(&loop) == 0);
}

/* a callback cancels the very next waiter, then the one after is next */
static void test_callback_cancels_next_waiter(void) {
  corio_loop_t loop;
  flog lg;
  corio_future_t f;
  wrec r[3];
  int i;
  setup(&loop, &lg);
  corio_future_init(&f);
  for (i = 0; i < 3; i++) {
    wrec_init(&r[i], i);
    corio_future_wait(&f, &r[i].w);
  }
  r[0].victim = &r[1].w;
  CHECK(corio_future_finish(&loop, &f, CORIO_DONE) == 0);
  CHECK(lg.n == 2);
  CHECK(lg.ids[0] == 0 && lg.ids[1] == 2);
  CHECK(r[1].fired == 0);
  CHECK(corio_loop_close(&loop) == 0);
}

/* a callback finishes another future: its waiters fire inside, before the
   first future's remaining waiters */
static void test_callback_finishes_other_future(void) {
  corio_loop_t loop;
  flog lg;
  corio_future_t f, g;
  wrec a, b, c;
  setup(&loop, &lg);
  corio_future_init(&f);
  corio_future_init(&g);
  wrec_init(&a, 1);
  wrec_init(&b, 2);
  wrec_init(&c, 3);
  corio_future_wait(&f, &a.w);
  corio_future_wait(&f, &b.w);
  corio_future_wait(&g, &c.w);
  a.chain = &g;
  CHECK(corio_future_finish(&loop, &f, CORIO_DONE) == 0);
  CHECK(lg.n == 3);
  CHECK(lg.ids[0] == 1 && lg.ids[1] == 3 && lg.ids[2] == 2);
  CHECK(g.state == CORIO_DONE);
  CHECK(corio_loop_close(&loop) == 0);
}

/* a waiter, once fired, may wait on another future and fires again there */
static void test_waiter_reused(void) {
  corio_loop_t loop;
  flog lg;
  corio_future_t f, g;
  wrec a;
  setup(&loop, &lg);
  corio_future_init(&f);
  corio_future_init(&g);
  wrec_init(&a, 7);
  corio_future_wait(&f, &a.w);
  CHECK(corio_future_finish(&loop, &f, CORIO_DONE) == 0);
  corio_future_wait(&g, &a.w);
  CHECK(corio_waiter_active(&a.w));
  CHECK(corio_future_finish(&loop, &g, CORIO_CANCELLED) == 0);
  CHECK(a.fired == 2);
  CHECK(a.seen_state == CORIO_CANCELLED);
  CHECK(corio_loop_close(&loop) == 0);
}

static void test_error_names(void) {
  CHECK(strcmp(corio_err_name(CORIO_EDONE), "EDONE") == 0);
  CHECK(strcmp(corio_strerror(CORIO_EDONE), "already done") == 0);
  CHECK(strcmp(corio_err_name(CORIO_ECLOSED), "ECLOSED") == 0);
  CHECK(strcmp(corio_strerror(CORIO_ECLOSED), "closed") == 0);
  /* libuv's codes pass through */
  CHECK(strcmp(corio_err_name(UV_ECANCELED), "ECANCELED") == 0);
  CHECK(strcmp(corio_strerror(UV_ECANCELED), uv_strerror(UV_ECANCELED)) == 0);
  CHECK(strcmp(corio_err_name(CORIO_EBUSY), "EBUSY") == 0);
  CHECK(strcmp(corio_err_name(CORIO_ENOMEM), uv_err_name(UV_ENOMEM)) == 0);
  CHECK(strcmp(corio_strerror(CORIO_EINVAL), uv_strerror(UV_EINVAL)) == 0);
  /* corio's two codes differ */
  CHECK(CORIO_EDONE != CORIO_ECLOSED);
}

int main(void) {
  TEST_MAIN_BEGIN();
  RUN(test_waiters_fire_in_order_once);
  RUN(test_finish_twice_edone);
  RUN(test_finish_states_no_waiters);
  RUN(test_cancelled_waiter_not_fired);
  RUN(test_all_cancelled);
  RUN(test_callback_cancels_later_waiter);
  RUN(test_callback_cancels_next_waiter);
  RUN(test_callback_finishes_other_future);
  RUN(test_waiter_reused);
  RUN(test_error_names);
  TEST_MAIN_END();
}
