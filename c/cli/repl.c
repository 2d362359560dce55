/*
** repl.c: the interactive prompt (corio -i, or corio alone on a terminal).
** The command becomes a host of its own: a uv loop lent to corio
** (corio_attach), a reader thread that reads one line per request (with
** libedit when it was built in: line editing and history) and hands it
** over through corio_post, so tasks spawned from the prompt keep running
** while it waits. Each line or block runs as a task (it may wait at top
** level); Ctrl-C cancels the running line; Ctrl-D (end of input) detaches,
** which cancels what is left and lets its cleanup run.
*/
#if !defined(_POSIX_C_SOURCE) && !defined(_GNU_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <termios.h>
#include <unistd.h>

#include <uv.h>

#include "lua.h"
#include "lauxlib.h"

#include "corio.h"
#include "repl.h"
#include "repl_lua.h"

#if defined(CORIO_HAVE_LIBEDIT)
#include <editline/readline.h>
#endif

#define DETACH_MS 2000  /* Ctrl-D: how long the tasks left get for their cleanup */
#define MAXLINE 4096    /* plain input: longer lines come in pieces */

static struct {
  uv_loop_t loop;
  uv_signal_t sigint;
  uv_timer_t quit;
  lua_State *L;
  corio_state_t *S;     /* retained: the reader thread posts to it */
  int R;                /* registry reference of the Lua half */
  uv_thread_t reader;
  uv_mutex_t lock;      /* requested, prompt, stop */
  uv_cond_t cond;
  int requested, stop;
  char prompt[8];
  int edit;             /* libedit reads the lines */
} repl;

/* ------------------------------------------------ the reader thread */

static char *read_plain(const char *prompt) {
  char *line = (char *)malloc(MAXLINE);
  size_t len;
  if (line == NULL) return NULL;
  fputs(prompt, stdout);
  fflush(stdout);
  if (fgets(line, MAXLINE, stdin) == NULL) {
    free(line);
    return NULL;
  }
  len = strlen(line);
  if (len > 0 && line[len - 1] == '\n') line[len - 1] = '\0';
  return line;
}

#if defined(CORIO_HAVE_LIBEDIT)
/* libedit writes the prompt before it takes the terminal out of line mode,
   so a key typed the moment the prompt shows would meet the terminal's own
   line editing: echoed twice, and a Ctrl-D there turns into a NUL byte and
   is lost. This hook runs after readline has taken the user's settings and
   before it writes the prompt: leaving line mode here closes that gap, and
   readline restores the user's settings when the line is read. */
static int leave_line_mode(void) {
  struct termios t;
  if (tcgetattr(STDIN_FILENO, &t) == 0 && (t.c_lflag & ICANON)) {
    t.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    tcsetattr(STDIN_FILENO, TCSADRAIN, &t);
  }
  return 0;
}
#endif

static void deliver(lua_State *L, void *payload);

static void reader(void *arg) {
  sigset_t set;
  (void)arg;
  sigemptyset(&set);  /* Ctrl-C is the loop thread's (a uv_signal) */
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  uv_mutex_lock(&repl.lock);
  for (;;) {
    char prompt[8], *line;
    while (!repl.requested && !repl.stop) uv_cond_wait(&repl.cond, &repl.lock);
    if (repl.stop) break;
    repl.requested = 0;
    memcpy(prompt, repl.prompt, sizeof prompt);
    uv_mutex_unlock(&repl.lock);
#if defined(CORIO_HAVE_LIBEDIT)
    if (repl.edit) {
      line = readline(prompt);
      if (line != NULL && line[0] != '\0') add_history(line);
    }
    else
#endif
      line = read_plain(prompt);
    if (corio_post(repl.S, deliver, line) != 0) free(line);
    uv_mutex_lock(&repl.lock);
  }
  uv_mutex_unlock(&repl.lock);
}

/* ------------------------------------------------ the loop thread */

/* R[name](args on top of L), protected; an error is printed */
static int call_r(lua_State *L, const char *name, int nargs, int nres) {
  int base = lua_gettop(L) - nargs;
  lua_rawgeti(L, LUA_REGISTRYINDEX, repl.R);
  lua_getfield(L, -1, name);
  lua_remove(L, -2);
  lua_insert(L, base + 1);
  if (lua_pcall(L, nargs, nres, 0) != LUA_OK) {
    fprintf(stderr, "corio: %s\n", lua_tostring(L, -1));
    fflush(stderr);
    lua_pop(L, 1);
    return 0;
  }
  return 1;
}

static void deliver(lua_State *L, void *payload) {
  char *line = (char *)payload;
  corio_release(repl.S);
  if (line != NULL) lua_pushstring(L, line);
  else lua_pushnil(L);
  free(line);  /* malloc'ed by read_plain or by libedit's readline */
  call_r(L, "line", 1, 0);
}

/* C.request(prompt): read the next line */
static int l_request(lua_State *L) {
  const char *prompt = luaL_checkstring(L, 1);
  corio_hold(repl.S);  /* the post that brings it keeps the loop */
  uv_mutex_lock(&repl.lock);
  snprintf(repl.prompt, sizeof repl.prompt, "%s", prompt);
  repl.requested = 1;
  uv_cond_signal(&repl.cond);
  uv_mutex_unlock(&repl.lock);
  return 0;
}

static void on_detached(lua_State *L, int status, const char *unfinished,
                        void *ud) {
  (void)L; (void)status; (void)ud;
  if (unfinished != NULL) fprintf(stderr, "corio: %s\n", unfinished);
  uv_close((uv_handle_t *)&repl.sigint, NULL);
}

static void on_quit(uv_timer_t *t) {
  uv_close((uv_handle_t *)t, NULL);
  if (corio_detach_async(repl.L, DETACH_MS, on_detached, NULL) != 0)
    uv_close((uv_handle_t *)&repl.sigint, NULL);
}

/* C.done(): end of input, the line's task handled: detach (from the loop,
   not from inside the task's callback) */
static int l_done(lua_State *L) {
  (void)L;
  uv_timer_start(&repl.quit, on_quit, 0, 0);
  return 0;
}

static void on_sigint(uv_signal_t *h, int signum) {
  lua_State *L = repl.L;
  (void)h; (void)signum;
  if (call_r(L, "interrupt", 0, 1)) {
    int running = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (!running) {  /* at the prompt: the input so far is dropped */
      uv_mutex_lock(&repl.lock);
      fputs("\n(Ctrl-D exits)\n", stdout);
      if (!repl.edit) fputs(repl.prompt, stdout);
      fflush(stdout);
      uv_mutex_unlock(&repl.lock);
    }
  }
}

int corio_cli_repl(lua_State *L, int first) {
  static const luaL_Reg cfuncs[] = {
    {"request", l_request}, {"done", l_done}, {NULL, NULL}
  };
  int status = EXIT_SUCCESS, err;
  memset(&repl, 0, sizeof repl);
  repl.L = L;
#if defined(CORIO_HAVE_LIBEDIT)
  repl.edit = isatty(0) && isatty(1);
  if (repl.edit) {
    rl_readline_name = "corio";
    rl_catch_signals = 0;
    rl_pre_input_hook = leave_line_mode;
    rl_initialize();
  }
#endif
  if (first) lua_insert(L, 1);                   /* keep it below */
  lua_getglobal(L, "require");
  lua_pushliteral(L, "corio");
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    fprintf(stderr, "corio: %s\n", lua_tostring(L, -1));
    return EXIT_FAILURE;
  }
  lua_pushvalue(L, -1);
  lua_setglobal(L, "corio");                     /* as python -m asyncio has asyncio */
  if ((err = uv_loop_init(&repl.loop)) != 0 ||
      (err = corio_attach(L, &repl.loop)) != 0) {
    fprintf(stderr, "corio: cannot start the loop (%s)\n", corio_strerror(err));
    return EXIT_FAILURE;
  }
  repl.S = corio_state_retain(corio_state(L));
  luaL_loadbuffer(L, repl_lua, sizeof repl_lua - 1, "=corio.repl");
  lua_insert(L, -2);                             /* chunk, corio */
  luaL_newlib(L, cfuncs);
  lua_call(L, 2, 1);
  repl.R = luaL_ref(L, LUA_REGISTRYINDEX);
  uv_mutex_init(&repl.lock);
  uv_cond_init(&repl.cond);
  uv_timer_init(&repl.loop, &repl.quit);
  uv_signal_init(&repl.loop, &repl.sigint);
  uv_signal_start(&repl.sigint, on_sigint, SIGINT);
  uv_unref((uv_handle_t *)&repl.sigint);
  uv_thread_create(&repl.reader, reader, NULL);
  if (first) lua_pushvalue(L, 1);
  else lua_pushnil(L);
  call_r(L, "start", 1, 0);
  uv_run(&repl.loop, UV_RUN_DEFAULT);
  if (!uv_is_closing((uv_handle_t *)&repl.sigint)) {  /* os.exit aside, not reached */
    uv_close((uv_handle_t *)&repl.sigint, NULL);
    corio_detach(L);
  }
  uv_mutex_lock(&repl.lock);
  repl.stop = 1;
  uv_cond_signal(&repl.cond);
  uv_mutex_unlock(&repl.lock);
  uv_thread_join(&repl.reader);
  uv_run(&repl.loop, UV_RUN_DEFAULT);            /* the closes */
  corio_state_release(repl.S);
  luaL_unref(L, LUA_REGISTRYINDEX, repl.R);
  if (uv_loop_close(&repl.loop) != 0) status = EXIT_FAILURE;
  uv_mutex_destroy(&repl.lock);
  uv_cond_destroy(&repl.cond);
  return status;
}
