/*
** fs.h: what the files of corio.fs share (fs.c, fs_path.c, fs_whole.c,
** fs_file.c, fs_file_read.c, fs_watch.c); the rest of the binding sees
** only binding.h.
**
** Every operation is a libuv request (uv_fs_*) in a malloc'd fsreq. The
** task that made it parks until the request's callback wakes it; the
** request is in the fs state's list meanwhile, so a task abandoned by
** the run's end is forgotten (fsreq.task = NULL). A task that leaves
** early (cancelled, timed out) cancels a request the thread pool has not
** started (uv_cancel); one that has started runs to its end and its
** callback, finding no task, undoes what it made (an fd is closed, a
** temporary file or directory removed) and frees it.
**
** read_file, write_file and append_file are one job of the thread pool
** each (uv_queue_work, fsreq.work); mkdir with parents chains its
** requests in the callbacks. Either wakes the task once, at the end.
*/
#ifndef CORIO_FS_H
#define CORIO_FS_H

#include "binding.h"
#include "corio-internal.h"

#define FILE_MT   "corio.File"
#define WATCH_MT  "corio.Watcher"
#define SCANDIR_MT "corio.fs.scandir"
#define FS_REGKEY "corio.fs"

#define FS_CHUNK  65536   /* one read ahead; the default read() size */
#define FS_LIMIT  65536   /* default read_line limit */
#define FS_MAXIO  ((size_t)1 << 30)  /* the most one read or write asks */

typedef struct fsreq fsreq;
typedef struct fsfile fsfile;

/* what a request's callback does and what its task gets back */
enum {
  OP_PLAIN,     /* true, or an error */
  OP_STAT,      /* a stat table */
  OP_OPEN,      /* a File (the fd closed if nobody takes it) */
  OP_PATH,      /* a string: req.ptr (realpath, readlink) */
  OP_MKDTEMP,   /* a string: req.path (the directory removed if nobody takes it) */
  OP_SCANDIR,   /* an iterator */
  OP_ACCESS,    /* true, or false and the error */
  OP_WHOLE,     /* read_file, write_file, append_file (fs_whole.c) */
  OP_MKDIRS,    /* mkdir with parents */
  OP_FILE       /* a File's operation (fs_file.c) */
};

struct fsreq {
  uv_fs_t req;
  uv_work_t work;        /* OP_WHOLE: the job */
  corio_list_t node;     /* in the fs state's list while a task waits */
  corio_State *S;
  luatask *task;         /* the waiting task; NULL once it left */
  fsfile *file;          /* OP_FILE: the File whose lock it holds */
  uint8_t op;            /* OP_* */
  uint8_t done;          /* the last step's callback has run */
  uint8_t step;          /* a chain's step */
  uint8_t flags;         /* a chain's flags */
  int err;               /* a chain's or a job's result: 0 or the error */
  int left;              /* OP_WHOLE: the task left (atomic: the job reads it) */
  int fd;                /* a chain's fd, or -1 */
  int perm;              /* a chain's permission bits */
  char *path;            /* a chain's path (malloc'd), or NULL */
  char *tmp;             /* write_file atomic: the temporary file's name */
  char *data;            /* bytes written or read */
  size_t len, off, cap;  /* of data: length, bytes done, capacity */
  int64_t pos;           /* a File write's offset */
  size_t mark;           /* mkdir parents: the prefix being made */
};

/* fs.c: requests */
fsreq *corio__fsreq_new(lua_State *L, corio_State *S, int op, size_t extra);
void corio__fsreq_free(fsreq *r);
/* the request was issued: park the task on it (suspends) */
int corio__fsreq_wait(lua_State *L, corio_State *S, luatask *t, fsreq *r);
/* the request's last step ended: wake its task, or clean up */
void corio__fsreq_finish(fsreq *r);
void corio__fs_on_done(uv_fs_t *req);  /* a one-step request's callback */
int corio__fs_error(lua_State *L, int err, const char *path, const char *path2);
int corio__fs_push_stat(lua_State *L, const uv_stat_t *s);
int corio__fs_check_perm(lua_State *L, int idx, int dflt, const char *fname);
const char *corio__fs_check_path(lua_State *L, int idx, const char *fname);
/* issued (err 0): the task waits (suspends); else frees r, answers err */
int corio__fs_issued(lua_State *L, corio_State *S, luatask *t, fsreq *r,
                     int err, const char *path, const char *path2);

/* fs_path.c */
int corio__fs_scandir_push(lua_State *L, fsreq *r);  /* keeps r */
void corio__open_path(lua_State *L);
extern const luaL_Reg corio__fs_path_funcs[];
void corio__fs_closed_fd(uv_fs_t *req);  /* frees an fs close's request */
void corio__fs_close_fd(corio_State *S, int fd);  /* in the background */

/* fs_whole.c */
void corio__whole_start(fsreq *r);       /* OP_WHOLE: the first step */
void corio__whole_orphan(fsreq *r);      /* undo, then free */
int corio__whole_result(lua_State *L, fsreq *r);
int corio__mkdirs_start(fsreq *r);     /* 0, or the error issuing it */
extern const luaL_Reg corio__fs_whole_funcs[];

/* fs_file.c */
enum { F_OPEN, F_CLOSED };
enum { FO_READ, FO_LINE, FO_ALL, FO_WRITE, FO_SEEK, FO_SYNC, FO_STAT,
       FO_TRUNCATE, FO_CLOSE };  /* what the operation holding a File does */
struct fsstate;
struct fsfile {
  corio_list_t node;     /* in the fs state's list of open files */
  corio_State *S;
  struct fsstate *fs;
  int fd;                /* -1 once closed */
  uint8_t state;         /* F_OPEN, F_CLOSED */
  uint8_t busy;          /* an operation holds the file */
  uint8_t gone;          /* the userdata was collected */
  uint8_t append;        /* opened for appending */
  uint8_t stream;        /* no offsets (a pipe, a FIFO, a terminal) */
  uint8_t op;            /* what the operation holding it does */
  uint8_t keep;          /* read_line: keep the end of line */
  int64_t pos;           /* the position: of buf[rpos] */
  char *buf;             /* read ahead: bytes [pos, pos + rlen) */
  size_t cap, rpos, rlen, want, scanned, limit;
  int rerr;              /* UV_EOF or a read's error (this call) */
  corio_future_t idle;   /* wakes tasks waiting for the file */
  char path[1];          /* the path it was opened with */
};
/* a new File, closed, pushed; then open on fd (the File at idx) */
void corio__file_new(lua_State *L, corio_State *S, const char *path,
                     int append, size_t limit);
void corio__file_opened(lua_State *L, int idx, int fd);
void corio__file_orphan(fsreq *r);       /* ... with no task waiting */
int corio__file_resume(lua_State *L, corio_State *S, luatask *t, fsreq *r);
void corio__file_shutdown(corio_State *S, corio_list_t *files);
void corio__open_file(lua_State *L);

/* fs_file_read.c: the read-ahead buffer */
void corio__file_drop_buffer(fsfile *f);
int corio__file_make_room(fsfile *f, size_t n);  /* 0 or UV_ENOMEM */
/* the read f->op asks for, if the buffer can answer it: pushes the
   results and returns how many; -1 to read more first */
int corio__file_try_read(lua_State *L, fsfile *f);
void corio__file_set_pos(fsfile *f, int64_t pos);  /* keeps what it can */

/* fs_watch.c */
void corio__open_watch(lua_State *L);
void corio__watch_shutdown(corio_list_t *watchers);
void corio__watch_abandon(corio_list_t *watchers, luatask *t);
extern const luaL_Reg corio__fs_watch_funcs[];

/* fs.c: the fs state (registry[FS_REGKEY]) */
#define FS_SPARES 16   /* read buffers kept for the next Files */
typedef struct fsstate {
  corio_list_t waiting;  /* requests a task waits on */
  corio_list_t files;    /* open Files */
  corio_list_t watchers; /* open Watchers */
  char *spare[FS_SPARES];  /* buffers of FS_SPARE bytes, free */
  int nspare;
} fsstate;
#define FS_SPARE  16384
fsstate *corio__fs_state(lua_State *L);

#endif
