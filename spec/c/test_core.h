/*
** test_core.h: a tiny test harness for the C core's tests (spec/c/test_*.c).
**
**   CHECK(expr)   on failure prints "file:line: CHECK failed: expr" and exits 1
**
**   int main(void) {
**     TEST_MAIN_BEGIN();
**     RUN(test_something);
**     RUN(test_other);
**     TEST_MAIN_END();      prints "N passed, M failed", returns 1 if M > 0
**   }
**
** Each test runs in a child process (fork), so a failed CHECK, a crash or a
** hang (alarm) fails that test only and the others still run; under ASan the
** leak check runs at each child's exit. CORIO_TEST_NOFORK=1 runs the tests in
** the process itself (for a debugger); the first failure then stops the run.
*/
#ifndef CORIO_TEST_CORE_H
#define CORIO_TEST_CORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <unistd.h>
#include <sys/types.h>
#include <sys/wait.h>

#define CHECK(expr)                                                      \
  do {                                                                   \
    if (!(expr)) {                                                       \
      fflush(stdout);                                                    \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__,   \
              #expr);                                                    \
      fflush(stderr);                                                    \
      _exit(1);                                                          \
    }                                                                    \
  } while (0)

/* nanoseconds in n milliseconds (the loop clock is in ns) */
#define MS(n) ((uint64_t)(n) * UINT64_C(1000000))

#define CONTAINER_OF(ptr, type, field) \
  ((type *)(void *)((char *)(ptr) - offsetof(type, field)))

#define TEST_TIMEOUT_S 30  /* per test, so a hang fails one test */

typedef void (*test_fn)(void);

typedef struct test_stats {
  int passed;
  int failed;
} test_stats;

static inline void test_run(test_stats *st, const char *name, test_fn fn) {
  pid_t pid;
  int status = 0;
  const char *nofork = getenv("CORIO_TEST_NOFORK");
  fflush(stdout);
  fflush(stderr);
  if (nofork != NULL && nofork[0] != '\0' && nofork[0] != '0') {
    fn();
    st->passed++;
    printf("ok   %s\n", name);
    return;
  }
  pid = fork();
  if (pid < 0) {
    perror("fork");
    st->failed++;
    return;
  }
  if (pid == 0) {
    alarm(TEST_TIMEOUT_S);
    fn();
    fflush(stdout);
    exit(0);  /* a normal exit: LeakSanitizer checks this child */
  }
  while (waitpid(pid, &status, 0) < 0) {
    /* EINTR: try again */
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    st->passed++;
    printf("ok   %s\n", name);
  } else {
    st->failed++;
    if (WIFSIGNALED(status))
      printf("FAIL %s (signal %d%s)\n", name, WTERMSIG(status),
             WTERMSIG(status) == SIGALRM ? ": timed out" : "");
    else
      printf("FAIL %s (exit %d)\n", name, WEXITSTATUS(status));
  }
  fflush(stdout);
}

static inline int test_summary(const test_stats *st) {
  printf("%d passed, %d failed\n", st->passed, st->failed);
  fflush(stdout);
  return st->failed ? 1 : 0;
}

#define TEST_MAIN_BEGIN() test_stats test_stats_ = {0, 0}
#define RUN(fn) test_run(&test_stats_, #fn, fn)
#define TEST_MAIN_END() return test_summary(&test_stats_)

#endif
