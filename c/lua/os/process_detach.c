/*
** process_detach.c: a detached child (corio.exec with detach = true).
** It runs in a session of its own and is never our zombie: a first fork
** makes the session and forks the child proper, then exits at once; we
** reap that one here, and the child, an orphan from its start, belongs
** to init (or the nearest subreaper), which reaps it whenever it ends.
** Nothing of it is left for the run's end to wait for.
**
** A close-on-exec pipe carries back the child's pid (from the middle
** process) and, if the exec fails, its errno (from the child); its end
** of file means the exec succeeded. Between fork and exec only
** async-signal-safe calls are made.
*/
#define _GNU_SOURCE  /* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "os.h"

static void report(int fd, int pid, int err) {
  int msg[2];
  msg[0] = pid;
  msg[1] = err;
  while (write(fd, msg, sizeof msg) < 0 && errno == EINTR) {}
}

/* in the child: its fds, default signal handling, cwd, env, exec */
static void child_exec(char **argv, char **env, const char *cwd,
                       const int fds[3], int errfd) {
  int tmp[3], i;
  sigset_t none;
  for (i = 0; i < 3; i++) {  /* above 2 first, so the dup2s cannot clash */
    int src = fds[i] >= 0 ? fds[i] : open("/dev/null", i == 0 ? O_RDONLY : O_RDWR);
    tmp[i] = src < 0 ? -1 : fcntl(src, F_DUPFD_CLOEXEC, 3);
    if (tmp[i] < 0) {
      report(errfd, 0, -errno);
      _exit(127);
    }
  }
  for (i = 0; i < 3; i++) {
    if (dup2(tmp[i], i) < 0) {
      report(errfd, 0, -errno);
      _exit(127);
    }
    fcntl(i, F_SETFL, fcntl(i, F_GETFL) & ~O_NONBLOCK);  /* as programs expect */
  }
  for (i = 1; i < 32; i++)
    if (i != SIGKILL && i != SIGSTOP) signal(i, SIG_DFL);
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  if (cwd != NULL && chdir(cwd) != 0) {
    report(errfd, 0, -errno);
    _exit(127);
  }
  if (env != NULL) environ = env;
  execvp(argv[0], argv);
  report(errfd, 0, -errno);
  _exit(127);
}

int corio__spawn_detached(char **argv, char **env, const char *cwd,
                          const int fds[3]) {
  int pfd[2], msg[2], pid = 0, err = 0, status;
  pid_t mid;
  ssize_t n;
  if (pipe2(pfd, O_CLOEXEC) != 0) return -errno;
  mid = fork();
  if (mid < 0) {
    err = -errno;
    close(pfd[0]);
    close(pfd[1]);
    return err;
  }
  if (mid == 0) {  /* the middle process */
    pid_t child;
    close(pfd[0]);
    setsid();
    child = fork();
    if (child == 0) child_exec(argv, env, cwd, fds, pfd[1]);
    report(pfd[1], child > 0 ? (int)child : 0, child > 0 ? 0 : -errno);
    _exit(0);
  }
  close(pfd[1]);
  for (;;) {  /* the pid, then maybe the exec's error, then end of file */
    n = read(pfd[0], msg, sizeof msg);
    if (n < 0 && errno == EINTR) continue;
    if (n != (ssize_t)sizeof msg) break;
    if (msg[0] > 0) pid = msg[0];
    if (msg[1] < 0) err = msg[1];
  }
  close(pfd[0]);
  while (waitpid(mid, &status, 0) < 0 && errno == EINTR) {}
  if (err < 0) return err;
  return pid > 0 ? pid : -ECHILD;
}
