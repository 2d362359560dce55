/*
** fs_watch.c: corio.fs.watch(path) -> Watcher, a receiver of the changes
** libuv's uv_fs_event reports (inotify on Linux) under a directory or
** on a file. Events queue in the watcher (at most WATCH_QUEUE; later
** ones are counted and dropped) until a task takes them with wait() or
** a for loop. One task waits at a time.
**
** The handle keeps the loop alive only while a task waits on it, so a
** watcher nobody waits on never holds a run open; the run's end closes
** the watchers nobody closed. The malloc'd struct lives until both its
** close callback has run and its userdata is gone.
*/
#include <stdlib.h>
#include <string.h>
#include "fs.h"

#define WATCH_QUEUE 4096

typedef struct fsevent {
  char *name;
  int events;
} fsevent;

typedef struct fswatch {
  uv_fs_event_t h;
  corio_list_t node;     /* in the fs state's list while open */
  corio_State *S;
  luatask *waiter;       /* the task in wait(), or NULL */
  fsevent *q;            /* a ring of qcap */
  size_t qhead, qlen, qcap, dropped;
  int err;               /* an error libuv reported */
  uint8_t open;
  uint8_t gone;          /* the userdata was collected */
  uint8_t hclosed;       /* the close callback ran */
} fswatch;

static void watch_free(fswatch *w) {
  while (w->qlen > 0) {
    free(w->q[w->qhead].name);
    w->qhead = (w->qhead + 1) % w->qcap;
    w->qlen--;
  }
  free(w->q);
  free(w);
}

static void on_closed(uv_handle_t *h) {
  fswatch *w = (fswatch *)h->data;
  w->hclosed = 1;
  if (w->gone) watch_free(w);
}

static void wake(fswatch *w) {
  if (w->waiter != NULL) corio_task_wake(&w->S->loop, &w->waiter->core, CORIO_WAKE_NORMAL);
}

static void watch_close(fswatch *w) {
  if (!w->open) return;
  w->open = 0;
  corio__list_remove(&w->node);
  uv_close((uv_handle_t *)&w->h, on_closed);
  wake(w);
}

static void on_event(uv_fs_event_t *h, const char *name, int events, int status) {
  fswatch *w = (fswatch *)h->data;
  if (status < 0) {
    w->err = status;
    wake(w);
    return;
  }
  if (w->qlen == w->qcap) {
    size_t cap = w->qcap ? w->qcap * 2 : 16, i;
    fsevent *nq;
    if (cap > WATCH_QUEUE || (nq = (fsevent *)malloc(cap * sizeof *nq)) == NULL) {
      w->dropped++;
      return;
    }
    for (i = 0; i < w->qlen; i++) nq[i] = w->q[(w->qhead + i) % w->qcap];
    free(w->q);
    w->q = nq;
    w->qcap = cap;
    w->qhead = 0;
  }
  {
    fsevent *e = &w->q[(w->qhead + w->qlen) % w->qcap];
    e->name = strdup(name != NULL ? name : "");
    if (e->name == NULL) {
      w->dropped++;
      return;
    }
    e->events = events;
    w->qlen++;
  }
  wake(w);
}

static fswatch *check(lua_State *L, const char *method) {
  return *(fswatch **)corio__check_self(L, 1, WATCH_MT, method, "Watcher");
}

/* the next event (name, "rename" or "change"), the error, or nil once
   closed; -1 when there is none yet */
static int take(lua_State *L, fswatch *w) {
  if (w->qlen > 0) {
    fsevent *e = &w->q[w->qhead];
    lua_pushstring(L, e->name);
    lua_pushstring(L, (e->events & UV_RENAME) ? "rename" : "change");
    free(e->name);
    w->qhead = (w->qhead + 1) % w->qcap;
    w->qlen--;
    return 2;
  }
  if (w->err) {
    int err = w->err;
    char path[4096];
    size_t n = sizeof path;
    w->err = 0;
    if (uv_fs_event_getpath(&w->h, path, &n) != 0) path[0] = '\0';
    return corio__fs_error(L, err, path, NULL);
  }
  if (!w->open) {
    lua_pushnil(L);
    return 1;
  }
  return -1;
}

static int wait_k(lua_State *L, int status, lua_KContext ctx) {
  corio_State *S = (corio_State *)ctx;
  luatask *t = S->current;
  fswatch *w = *(fswatch **)lua_touserdata(L, 1);
  int n;
  (void)status;
  w->waiter = NULL;
  if (w->open) uv_unref((uv_handle_t *)&w->h);
  corio__wake_check(L, S, t);
  n = take(L, w);
  if (n >= 0) return n;
  w->waiter = t;
  uv_ref((uv_handle_t *)&w->h);
  corio_task_park(&S->loop, &t->core);
  t->what = W_OTHER;
  return corio__suspend(L, S, wait_k);
}

/* watcher:wait() (suspends) -> name, "rename" or "change"; nil once
   the watcher is closed; nil, msg, code on an error */
static int w_wait(lua_State *L) {
  corio_State *S = corio__state(L);
  fswatch *w = check(L, "watcher:wait");
  luatask *t;
  int n;
  lua_settop(L, 1);
  if (w == NULL) {
    lua_pushnil(L);
    return 1;
  }
  if (w->waiter != NULL)
    return luaL_error(L, "watcher:wait: another task is already waiting");
  t = corio__checkpoint(L, S, "watcher:wait");
  n = take(L, w);
  if (n >= 0) return n;
  w->waiter = t;
  uv_ref((uv_handle_t *)&w->h);
  corio_task_park(&S->loop, &t->core);
  t->what = W_OTHER;
  return corio__suspend(L, S, wait_k);
}

/* watcher:close() -> true; a waiting task wakes with nil */
static int w_close(lua_State *L) {
  fswatch *w = check(L, "watcher:close");
  if (w != NULL) watch_close(w);
  lua_pushboolean(L, 1);
  return 1;
}

/* watcher:dropped() -> how many events did not fit in the queue */
static int w_dropped(lua_State *L) {
  fswatch *w = check(L, "watcher:dropped");
  lua_pushinteger(L, w != NULL ? (lua_Integer)w->dropped : 0);
  return 1;
}

static int w_gc(lua_State *L) {
  fswatch **box = (fswatch **)lua_touserdata(L, 1);
  fswatch *w = *box;
  if (w == NULL) return 0;
  *box = NULL;
  w->gone = 1;
  w->waiter = NULL;
  if (w->open) watch_close(w);
  else if (w->hclosed) watch_free(w);
  return 0;
}

static int w_tostring(lua_State *L) {
  fswatch *w = *(fswatch **)lua_touserdata(L, 1);
  char path[4096];
  size_t n = sizeof path;
  if (w == NULL || !w->open || uv_fs_event_getpath(&w->h, path, &n) != 0)
    lua_pushliteral(L, "watcher (closed)");
  else lua_pushfstring(L, "watcher %s (open)", path);
  return 1;
}

/* fs.watch(path [, opts]) -> Watcher, or nil, msg, code. opts:
   recursive (where the platform can; not on Linux) */
static int l_watch(lua_State *L) {
  corio_State *S = corio__state(L);
  const char *p = luaL_checkstring(L, 1);
  unsigned int flags = 0;
  fswatch **box;
  fswatch *w;
  int err;
  if (!S->running)
    return luaL_error(L, "corio.fs.watch: no running loop (start one with corio.run)");
  if (!lua_isnoneornil(L, 2)) {
    if (!lua_istable(L, 2))
      return luaL_error(L, "corio.fs.watch: bad argument #2 (an options table "
                        "expected, got %s)", luaL_typename(L, 2));
    lua_getfield(L, 2, "recursive");
    if (lua_toboolean(L, -1)) flags |= UV_FS_EVENT_RECURSIVE;
    lua_pop(L, 1);
  }
  box = (fswatch **)lua_newuserdatauv(L, sizeof *box, 0);
  *box = NULL;
  luaL_setmetatable(L, WATCH_MT);
  w = (fswatch *)calloc(1, sizeof *w);
  if (w == NULL) return luaL_error(L, "corio.fs.watch: out of memory");
  w->S = S;
  corio__list_init(&w->node);
  err = uv_fs_event_init(S->loop.uv, &w->h);
  if (err == 0) {
    w->h.data = w;
    err = uv_fs_event_start(&w->h, on_event, p, flags);
    if (err) {
      w->gone = 1;
      uv_close((uv_handle_t *)&w->h, on_closed);
      return corio__fs_error(L, err, p, NULL);
    }
  }
  else {
    free(w);
    return corio__fs_error(L, err, p, NULL);
  }
  uv_unref((uv_handle_t *)&w->h);
  w->open = 1;
  corio__list_push(&((fsstate *)lua_touserdata(L, lua_upvalueindex(2)))->watchers, &w->node);
  *box = w;
  return 1;
}

void corio__watch_abandon(corio_list_t *watchers, luatask *t) {
  corio_list_t *n;
  for (n = watchers->next; n != watchers; n = n->next) {
    fswatch *w = corio__container_of(n, fswatch, node);
    if (w->waiter == t) {
      w->waiter = NULL;
      uv_unref((uv_handle_t *)&w->h);
    }
  }
}

void corio__watch_shutdown(corio_list_t *watchers) {
  while (!corio__list_empty(watchers))
    watch_close(corio__container_of(watchers->next, fswatch, node));
}

static const luaL_Reg watch_methods[] = {
  {"wait", w_wait},
  {"close", w_close},
  {"dropped", w_dropped},
  {NULL, NULL}
};

/* stack: the state, the fs state. The Watcher metatable. */
void corio__open_watch(lua_State *L) {
  luaL_newmetatable(L, WATCH_MT);
  lua_newtable(L);
  lua_pushvalue(L, -4);
  lua_pushvalue(L, -4);
  luaL_setfuncs(L, watch_methods, 2);
  lua_setfield(L, -2, "__index");
  lua_pushvalue(L, -3);
  lua_pushvalue(L, -3);
  lua_pushcclosure(L, w_close, 2);
  lua_setfield(L, -2, "__close");
  lua_pushvalue(L, -3);
  lua_pushvalue(L, -3);
  lua_pushcclosure(L, w_wait, 2);
  lua_setfield(L, -2, "__call");
  lua_pushcfunction(L, w_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, w_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
}

const luaL_Reg corio__fs_watch_funcs[] = {
  {"watch", l_watch},
  {NULL, NULL}
};
