/*
** modes.c: the runtime's test modes, read from the environment at a
** state's first run (docs/testing.md, "Test modes of the runtime"):
** CORIO_SHUFFLE runs each batch of ready tasks in a shuffled order (the
** loop's before_batch), CORIO_GC_STRESS collects before every step (in
** corio__step). Off, they cost a branch per batch and per step.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "binding.h"

/* splitmix64: a small generator of our own, the same sequence everywhere */
static uint64_t rng_next(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* The orders corio documents survive the shuffle. Four classes of tasks
   keep their order among themselves: the loop's callbacks (call_soon,
   call_later, call_at: in the order made), those a timer woke (deadline
   order, ties in the order asked), those a future or an awaited task woke
   (its waiters fire in order: a File's turns rely on it), and those a
   lock, event, condition, semaphore, barrier, queue or channel woke (FIFO
   wake-up). The rest are free: new tasks, I/O, cancellations. */
#define SHUFFLE_CLASSES 4
static int shuffle_class(corio_task_t *ct) {
  luatask *t = (luatask *)ct;
  if (ct->done.state != CORIO_PENDING) return 0;
  if (t->bits & TASK_HIDDEN) return 4;
  if (ct->wake != CORIO_WAKE_NORMAL) return 0;
  if (TASK_SUSP(t) == CORIO_WAIT_TIMER) return 1;
  if (TASK_SUSP(t) == CORIO_WAIT_FUTURE) return 2;
  if (TASK_SUSP(t) == CORIO_WAIT_PARKED && t->what >= W_LOCK && t->what <= W_CHANNEL)
    return 3;
  return 0;
}

/* A task that yielded (corio.sleep(0)) goes on only after every task that
   was ready before it has run once: it stays where it is in the batch, as
   a wall that nothing crosses. */
static int shuffle_wall(corio_task_t *ct) {
  return TASK_SUSP((luatask *)ct) == CORIO_WAIT_READY && ct->done.state == CORIO_PENDING;
}

/* positions lo..hi-1 of the batch (orig holds them as they were): a
   Fisher-Yates shuffle, then each ordered class put back in its order in
   the places its members drew */
static void shuffle_range(corio_loop_t *loop, corio_task_t **orig, size_t lo, size_t hi) {
  corio_State *S = (corio_State *)loop->data;
  corio_task_t **r = loop->ready;
  size_t mask = loop->rcap - 1, i, j, k;
  int c;
#define AT(i) r[(loop->rhead + (i)) & mask]
  if (hi - lo < 2) return;
  for (i = hi - 1; i > lo; i--) {
    corio_task_t *tmp;
    j = lo + (size_t)(rng_next(&S->shuffle_rng) % (i - lo + 1));
    tmp = AT(i);
    AT(i) = AT(j);
    AT(j) = tmp;
  }
  for (c = 1; c <= SHUFFLE_CLASSES; c++) {
    for (i = lo, k = lo; i < hi; i++) {
      if (shuffle_class(AT(i)) != c) continue;
      while (shuffle_class(orig[k]) != c) k++;
      AT(i) = orig[k++];
    }
  }
#undef AT
}

/* the loop's before_batch under CORIO_SHUFFLE: each stretch between two
   yielded tasks is shuffled */
static void shuffle_batch(corio_loop_t *loop) {
  size_t n = loop->rcount, mask = loop->rcap - 1, i, lo = 0;
  corio_task_t **orig;
  if (n < 2 || (orig = (corio_task_t **)malloc(n * sizeof *orig)) == NULL) return;
  for (i = 0; i < n; i++) orig[i] = loop->ready[(loop->rhead + i) & mask];
  for (i = 0; i <= n; i++) {
    if (i < n && !shuffle_wall(orig[i])) continue;
    shuffle_range(loop, orig, lo, i);
    lo = i + 1;
  }
  free(orig);
}

/* Called as each run opens its loop. The environment is read at the
   first run: CORIO_GC_STRESS=1, CORIO_SHUFFLE=<seed> or "random" (the
   seed is printed once, so a failing run can be repeated). Every run
   starts its generator from the seed. The environment is written only
   here, at a first run, and only in this test mode. */
void corio__modes_open(corio_State *S) {
  if (!S->modes_read) {
    const char *v = getenv("CORIO_GC_STRESS");
    S->modes_read = 1;
    S->gc_stress = v != NULL && *v != '\0' && strcmp(v, "0") != 0;
    v = getenv("CORIO_SHUFFLE");
    if (v != NULL && strcmp(v, "random") == 0) {
      uint64_t x = uv_hrtime() ^ ((uint64_t)uv_os_getpid() << 32);
      S->shuffle_seed = rng_next(&x) % 1000000000u + 1;
    }
    else if (v != NULL && *v != '\0') {
      char *end;
      S->shuffle_seed = (uint64_t)strtoull(v, &end, 10);
      if (*end != '\0') {
        fprintf(stderr, "corio: CORIO_SHUFFLE=%s is not a number nor \"random\": "
                "not shuffling\n", v);
        S->shuffle_seed = 0;
      }
    }
    /* said once per process tree: the processes it starts inherit the
       seed (a random one too) and keep quiet, so their stderr stays theirs */
    if (S->shuffle_seed != 0 && getenv("CORIO_SHUFFLE_SHOWN") == NULL) {
      char seed[24];
      snprintf(seed, sizeof seed, "%llu", (unsigned long long)S->shuffle_seed);
      fprintf(stderr, "corio: CORIO_SHUFFLE=%s\n", seed);
      setenv("CORIO_SHUFFLE", seed, 1);
      setenv("CORIO_SHUFFLE_SHOWN", "1", 1);
    }
  }
  if (S->shuffle_seed != 0) {
    S->shuffle_rng = S->shuffle_seed;
    S->loop.before_batch = shuffle_batch;
  }
}
