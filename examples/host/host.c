/*
** A plugin host: a C program that embeds Lua and runs plugins as corio
** tasks, built against the installed library:
**
**   cc -o plugin-host host.c $(pkg-config --cflags --libs corio lua5.4)
**   ./plugin-host plugins/
**
** Every plugins/NAME.lua is a plugin: a chunk returning {main = fn}. Each
** plugin's main(host) runs in a group of its own. host.work(n) is the
** host's asynchronous function: a worker thread computes n * n and the
** result comes back through corio_post to the Future the plugin awaits.
** Commands on stdin: "reload NAME", "unload NAME", "load NAME", "list".
** SIGINT or SIGTERM: every plugin is unloaded (cancelled, its cleanup
** waited for with a deadline), corio detaches, everything closes.
*/
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include <corio.h>

#define MAX_PLUGINS 32
#define UNLOAD_MS 2000

typedef struct plugin {
  char name[64];
  corio_hostgroup_t *group;   /* NULL: not loaded */
  int reload;                 /* load again once unloaded */
} plugin;

static uv_loop_t loop;
static lua_State *L;
static const char *dir;
static plugin plugins[MAX_PLUGINS];
static int nplugins, shutting_down, unloading;
static uv_signal_t sigint, sigterm;
static uv_pipe_t input;

/* ------------------------------------------------ the worker thread */
typedef struct job {
  struct job *next;
  corio_promise_t *promise;
  lua_Integer n, result;
} job;

static uv_thread_t worker;
static uv_mutex_t jobs_lock;
static uv_cond_t jobs_cond;
static job *jobs;
static int worker_stop;
static corio_state_t *posting;   /* retained for the worker */

static void deliver(lua_State *Lp, void *payload) {   /* on the loop thread */
  job *j = (job *)payload;
  lua_pushinteger(Lp, j->result);
  corio_future_resolve(Lp, j->promise, 1);  /* CORIO_EDONE if the plugin left */
  corio_release(corio_state(Lp));
  free(j);
}

static void drop(corio_post_cb cb, void *payload) { (void)cb; free(payload); }

static void work_loop(void *arg) {
  (void)arg;
  uv_mutex_lock(&jobs_lock);
  for (;;) {
    job *j;
    while (jobs == NULL && !worker_stop) uv_cond_wait(&jobs_cond, &jobs_lock);
    if (jobs == NULL) break;
    j = jobs;
    jobs = j->next;
    uv_mutex_unlock(&jobs_lock);
    uv_sleep(20);                                /* the slow part */
    j->result = j->n * j->n;
    if (corio_post(posting, deliver, j) != 0) free(j);  /* corio closed */
    uv_mutex_lock(&jobs_lock);
  }
  uv_mutex_unlock(&jobs_lock);
}

/* host.work(n) -> Future (resolved with n * n) */
static int l_work(lua_State *Lw) {
  job *j = (job *)malloc(sizeof *j);
  if (j == NULL) return luaL_error(Lw, "host.work: out of memory");
  j->n = luaL_checkinteger(Lw, 1);
  j->promise = corio_future_new(Lw);             /* pushes the Future */
  corio_hold(corio_state(Lw));                   /* a post is on its way */
  uv_mutex_lock(&jobs_lock);
  j->next = jobs;
  jobs = j;
  uv_cond_signal(&jobs_cond);
  uv_mutex_unlock(&jobs_lock);
  return 1;
}

/* ------------------------------------------------ plugins */
static plugin *find(const char *name) {
  int i;
  for (i = 0; i < nplugins; i++)
    if (strcmp(plugins[i].name, name) == 0) return &plugins[i];
  return NULL;
}

static void load(plugin *p) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s.lua", dir, p->name);
  if (luaL_loadfile(L, path) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK) {
    printf("cannot load %s: %s\n", p->name, lua_tostring(L, -1));
    lua_pop(L, 1);
    return;
  }
  if (lua_getfield(L, -1, "main") != LUA_TFUNCTION) {
    printf("cannot load %s: no main function\n", p->name);
    lua_pop(L, 2);
    return;
  }
  lua_remove(L, -2);
  /* the plugin's host table: its name, log, work */
  lua_getglobal(L, "make_host");
  lua_pushstring(L, p->name);
  lua_call(L, 1, 1);
  p->group = corio_hostgroup_new(L, p->name);
  corio_hostgroup_spawn(L, p->group, 1);         /* main(host) in its group */
  lua_pop(L, 1);
  printf("loaded %s\n", p->name);
}

static void shutdown_next(void);

static void on_unloaded(lua_State *Lu, corio_hostgroup_t *g, int status,
                        const char *unfinished, void *ud) {
  plugin *p = (plugin *)ud;
  (void)g;
  if (status == 0) printf("unloaded %s (cleanup done)\n", p->name);
  else printf("unloaded %s: %s\n", p->name, unfinished);
  corio_hostgroup_free(Lu, p->group);
  p->group = NULL;
  unloading--;
  if (shutting_down) shutdown_next();
  else if (p->reload) {
    p->reload = 0;
    load(p);
  }
  fflush(stdout);
}

static void unload(plugin *p) {
  if (p->group == NULL) return;
  unloading++;
  corio_hostgroup_cancel(L, p->group);           /* its <close> cleanup runs */
  corio_hostgroup_wait(L, p->group, UNLOAD_MS, on_unloaded, p);
}

/* plugin errors, with the plugin's name: error, traceback, source */
static void on_error(lua_State *Le, void *ud) {
  const char *who = lua_isuserdata(Le, -1) ? corio_hostgroup_name_of(Le, -1) : NULL;
  (void)ud;
  printf("error in plugin %s: %s\n", who ? who : "?",
         lua_isstring(Le, -3) ? lua_tostring(Le, -3) : luaL_typename(Le, -3));
  fflush(stdout);
}

/* ------------------------------------------------ commands, signals, shutdown */
static void on_detached(lua_State *Ld, int status, const char *unfinished, void *ud) {
  (void)ud;
  if (status != 0) printf("detach: %s\n", unfinished);
  lua_close(Ld);
  uv_mutex_lock(&jobs_lock);
  worker_stop = 1;
  uv_cond_signal(&jobs_cond);
  uv_mutex_unlock(&jobs_lock);
  uv_thread_join(&worker);
  corio_state_release(posting);
  printf("shut down\n");
  fflush(stdout);
}

static void shutdown_next(void) {   /* once every plugin is unloaded: detach */
  int i;
  for (i = 0; i < nplugins; i++) unload(&plugins[i]);
  if (unloading == 0) corio_detach_async(L, UNLOAD_MS, on_detached, NULL);
}

static void on_signal(uv_signal_t *h, int signum) {
  (void)h;
  if (shutting_down) return;
  shutting_down = 1;
  printf("signal %d: shutting down\n", signum);
  uv_close((uv_handle_t *)&sigint, NULL);
  uv_close((uv_handle_t *)&sigterm, NULL);
  uv_close((uv_handle_t *)&input, NULL);
  shutdown_next();
}

static void command(char *line) {
  char verb[16], name[64];
  plugin *p;
  int i;
  if (sscanf(line, "%15s %63s", verb, name) < 1 || shutting_down) return;
  if (strcmp(verb, "list") == 0) {
    for (i = 0; i < nplugins; i++)
      printf("%s %s\n", plugins[i].name, plugins[i].group ? "loaded" : "unloaded");
    return;
  }
  if ((p = find(name)) == NULL) { printf("no plugin %s\n", name); return; }
  if (strcmp(verb, "unload") == 0) unload(p);
  else if (strcmp(verb, "load") == 0 && p->group == NULL) load(p);
  else if (strcmp(verb, "reload") == 0) {
    if (p->group == NULL) load(p);
    else { p->reload = 1; unload(p); }
  }
  else printf("unknown command: %s\n", line);
}

static char linebuf[256];
static size_t linelen;

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  static char chunk[256];
  (void)h; (void)hint;
  *buf = uv_buf_init(chunk, sizeof chunk);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  ssize_t i;
  (void)s;
  if (n < 0) { uv_close((uv_handle_t *)s, NULL); return; }  /* EOF: no more commands */
  for (i = 0; i < n; i++) {
    if (buf->base[i] == '\n' || linelen == sizeof linebuf - 1) {
      linebuf[linelen] = '\0';
      linelen = 0;
      command(linebuf);
      fflush(stdout);
    }
    else linebuf[linelen++] = buf->base[i];
  }
}

/* ------------------------------------------------ main */
static const char MAKE_HOST[] =
  "local work = ...\n"
  "function make_host(name)\n"
  "  return { name = name, work = work,\n"
  "           log = function(...) print('[' .. name .. '] ' .. string.format(...)) end }\n"
  "end\n";

int main(int argc, char **argv) {
  DIR *d;
  struct dirent *e;
  if (argc != 2) { fprintf(stderr, "usage: %s plugin-dir\n", argv[0]); return 2; }
  dir = argv[1];
  setvbuf(stdout, NULL, _IOLBF, 0);
  uv_loop_init(&loop);
  L = luaL_newstate();
  luaL_openlibs(L);
  luaL_requiref(L, "corio.core", luaopen_corio_core, 0);
  lua_pop(L, 1);
  if (luaL_dostring(L, "corio = require 'corio'") != LUA_OK ||
      luaL_loadstring(L, MAKE_HOST) != LUA_OK) {
    fprintf(stderr, "%s\n", lua_tostring(L, -1));
    return 1;
  }
  lua_pushcfunction(L, l_work);
  lua_call(L, 1, 0);
  corio_attach(L, &loop);
  corio_set_error_hook(L, on_error, NULL);
  posting = corio_state_retain(corio_state(L));
  corio_set_post_drop(posting, drop);
  uv_mutex_init(&jobs_lock);
  uv_cond_init(&jobs_cond);
  uv_thread_create(&worker, work_loop, NULL);

  if ((d = opendir(dir)) == NULL) { perror(dir); return 1; }
  while ((e = readdir(d)) != NULL && nplugins < MAX_PLUGINS) {
    size_t len = strlen(e->d_name);
    if (len > 4 && len - 4 < sizeof plugins[0].name &&
        strcmp(e->d_name + len - 4, ".lua") == 0) {
      memcpy(plugins[nplugins].name, e->d_name, len - 4);
      plugins[nplugins++].name[len - 4] = '\0';
    }
  }
  closedir(d);
  qsort(plugins, (size_t)nplugins, sizeof plugins[0],
        (int (*)(const void *, const void *))strcmp);
  {
    int i;
    for (i = 0; i < nplugins; i++) load(&plugins[i]);
  }

  uv_signal_init(&loop, &sigint);
  uv_signal_start(&sigint, on_signal, SIGINT);
  uv_signal_init(&loop, &sigterm);
  uv_signal_start(&sigterm, on_signal, SIGTERM);
  uv_pipe_init(&loop, &input, 0);
  if (uv_pipe_open(&input, 0) == 0) uv_read_start((uv_stream_t *)&input, on_alloc, on_read);

  uv_run(&loop, UV_RUN_DEFAULT);
  uv_mutex_destroy(&jobs_lock);
  uv_cond_destroy(&jobs_cond);
  return uv_loop_close(&loop) == 0 ? 0 : 1;
}
