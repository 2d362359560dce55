/*
** corio: the command-line host.  Runs a Lua script (or a -e string, or
** stdin) as the main task of corio.run, so top-level code may await.
** It is also the reference host application: a plain lua_State, the
** statically linked C module in package.preload, and corio.run doing
** everything asynchronous (including Ctrl-C: the first SIGINT cancels the
** main task, a second one is the library's to handle).
*/

#if !defined(_POSIX_C_SOURCE) && !defined(_GNU_SOURCE)
#define _POSIX_C_SOURCE 200809L  /* uv.h needs POSIX types under -std=c99 */
#endif

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "lua.h"
#include "lauxlib.h"
#include "lualib.h"

#include "corio.h"  /* luaopen_corio_core, CORIO_VERSION */
#include "repl.h"   /* corio_cli_repl: the interactive prompt */

#if !defined(CORIO_VERSION)
#define CORIO_VERSION "0.1.0"
#endif

#define PROGNAME "corio"

/* exit statuses */
#define EXIT_USAGE 2        /* bad command line */
#define EXIT_INTERRUPTED 130  /* main task cancelled by Ctrl-C (128 + SIGINT) */
#define EXIT_TERMINATED 143   /* main task cancelled by SIGTERM (128 + 15) */


/* what the command line asked for */
struct options {
  int script;         /* argv index of the script ("-", -e code, file); 0: none */
  const char *code;   /* -e code, or NULL */
  int from_stdin;     /* read the chunk from stdin */
  int version;        /* -v */
  int interactive;    /* -i */
  int noenv;          /* -E */
  int warnings;       /* -W */
  const char *gc;     /* --gc=SETTING, or NULL */
};


static void l_message (const char *msg) {
  fprintf(stderr, "%s: %s\n", PROGNAME, msg);
  fflush(stderr);
}


static void print_usage (const char *badoption) {
  if (badoption[1] == 'e')
    fprintf(stderr, "%s: '%s' needs argument\n", PROGNAME, badoption);
  else
    fprintf(stderr, "%s: unrecognized option '%s'\n", PROGNAME, badoption);
  fprintf(stderr,
    "usage: %s [options] [script [args]]\n"
    "Available options are:\n"
    "  -e code  run string 'code' as the main task (the args that follow go to it)\n"
    "  -i       interactive prompt (after the script, if any)\n"
    "  -v       show version information\n"
    "  -E       ignore environment variables\n"
    "  -W       turn warnings on\n"
    "  --gc=S   the collector during the run: generational, incremental, keep,\n"
    "           or incremental,pause=N,stepmul=M (corio.run's gc option)\n"
    "  --       stop handling options\n"
    "  -        run stdin as the main task (the args that follow go to it)\n"
    "With no script (and no -e or -v), the prompt runs on a terminal;\n"
    "otherwise the script is read from stdin.\n",
    PROGNAME);
  fflush(stderr);
}


static void print_version (void) {
  printf("%s %s (%s, libuv %s)\n", PROGNAME, CORIO_VERSION, LUA_RELEASE,
         uv_version_string());
  fflush(stdout);
}


/*
** Reads the options into 'o'. Returns NULL when the command line is good,
** else the offending argument. Options end at the first argument that is
** not one: the script, "-", or the code of -e; all that follows goes to the
** main task as its arguments.
*/
static const char *collect_args (char **argv, struct options *o) {
  int i;
  memset(o, 0, sizeof(*o));
  for (i = 1; argv[i] != NULL; i++) {
    const char *a = argv[i];
    if (a[0] != '-') {  /* the script */
      o->script = i;
      return NULL;
    }
    switch (a[1]) {
      case '\0':  /* "-": stdin */
        o->script = i;
        o->from_stdin = 1;
        return NULL;
      case '-':  /* "--": the next argument, if any, is the script */
        if (strncmp(a, "--gc=", 5) == 0 && a[5] != '\0') {
          o->gc = a + 5;
          break;
        }
        if (a[2] != '\0') return a;
        if (argv[i + 1] == NULL) break;  /* no script: stdin (see below) */
        o->script = i + 1;
        return NULL;
      case 'e':  /* "-e code" or "-ecode" */
        if (a[2] != '\0') {
          o->code = a + 2;
          o->script = i;
        }
        else {
          if (argv[i + 1] == NULL) return a;
          o->code = argv[i + 1];
          o->script = i + 1;
        }
        return NULL;
      case 'v': case 'i': case 'E': case 'W':
        if (a[2] != '\0') return a;
        if (a[1] == 'v') o->version = 1;
        else if (a[1] == 'i') o->interactive = 1;
        else if (a[1] == 'E') o->noenv = 1;
        else o->warnings = 1;
        break;
      default:
        return a;
    }
  }
  if (!o->version)  /* no script: read stdin, unless only asked for -v */
    o->from_stdin = 1;
  return NULL;
}


/*
** Global 'arg' as lua5.4 builds it: arg[0] is the script (for -e, the code;
** for stdin, "-"), the command and its options get negative indices, the
** script's arguments positive ones.
*/
static void create_arg_table (lua_State *L, char **argv, int argc,
                              int script) {
  int i;
  lua_createtable(L, argc - script - 1 > 0 ? argc - script - 1 : 0,
                  script + 1);
  for (i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
}


/*
** Converts the error value on top of the stack to a message, replacing it.
** Strings stay as they are (corio.run has appended the main task's
** traceback to them); other values go through __tostring when they have
** one.
*/
static const char *error_message (lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  if (msg == NULL) {
    if (luaL_callmeta(L, -1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) {
      msg = lua_tostring(L, -1);
      if (lua_istable(L, -2) &&  /* corio.run keeps the traceback there */
          lua_getfield(L, -2, "traceback") == LUA_TSTRING) {
        lua_pushliteral(L, "\n");
        lua_insert(L, -2);
        lua_concat(L, 3);
        msg = lua_tostring(L, -1);
      }
      else lua_pop(L, 1);
    }
    else
      msg = lua_pushfstring(L, "(error object is a %s value)",
                            luaL_typename(L, -1));
    lua_remove(L, -2);  /* remove the original value */
  }
  return msg;
}


/* message handler for code run outside the main task (LUA_INIT) */
static int msghandler (lua_State *L) {
  const char *msg = error_message(L);
  luaL_traceback(L, L, msg, 1);
  return 1;
}


/* prints the error on top of the stack (if 'status' is one) and pops it */
static int report (lua_State *L, int status) {
  if (status != LUA_OK) {
    l_message(error_message(L));
    lua_pop(L, 1);
  }
  return status;
}


/* calls the function below 'narg' arguments, with a traceback on error */
static int docall (lua_State *L, int narg, int nres) {
  int status;
  int base = lua_gettop(L) - narg;
  lua_pushcfunction(L, msghandler);
  lua_insert(L, base);
  status = lua_pcall(L, narg, nres, base);
  lua_remove(L, base);
  return status;
}


/* prepends dir/?.lua;dir/?/init.lua to package.path */
static void prepend_path (lua_State *L, const char *dir) {
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "path");
  lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s", dir, dir,
                  lua_tostring(L, -1));
  lua_setfield(L, -3, "path");
  lua_pop(L, 2);  /* old path, package */
}


/*
** package.path starts with where corio's Lua files are, for require "corio":
** next to the command when it is installed (BIN/../share/lua/5.4, where
** `make install` and luarocks put them), else the directory baked in at
** build time (the source tree, or LUADIR).
*/
static void setup_path (lua_State *L) {
  char exe[4096];
  size_t len = sizeof(exe);
#if defined(CORIO_LUA_DIR)
  prepend_path(L, CORIO_LUA_DIR);
#endif
  if (uv_exepath(exe, &len) == 0) {
    char *slash = strrchr(exe, '/');
    if (slash != NULL) {
      FILE *f;
      *slash = '\0';
      lua_pushfstring(L, "%s/../share/lua/5.4", exe);
      lua_pushfstring(L, "%s/corio/init.lua", lua_tostring(L, -1));
      f = fopen(lua_tostring(L, -1), "r");
      if (f != NULL) {
        fclose(f);
        prepend_path(L, lua_tostring(L, -2));
      }
      lua_pop(L, 2);
    }
  }
}


/* package.preload["corio.core"] = luaopen_corio_core */
static void preload_core (lua_State *L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_corio_core);
  lua_setfield(L, -2, "corio.core");
  lua_pop(L, 1);
}


/* runs LUA_INIT_5_4 (or LUA_INIT): "@file" or a chunk, as lua5.4 does */
static int handle_luainit (lua_State *L) {
  const char *name = "=LUA_INIT" LUA_VERSUFFIX;
  const char *init = getenv(name + 1);
  int status;
  if (init == NULL) {
    name = "=LUA_INIT";
    init = getenv(name + 1);
  }
  if (init == NULL) return LUA_OK;
  if (init[0] == '@')
    status = luaL_loadfile(L, init + 1);
  else
    status = luaL_loadbuffer(L, init, strlen(init), name);
  if (status == LUA_OK)
    status = docall(L, 0, 0);
  return report(L, status);
}


/*
** Asks the binding to print corio.dump() on SIGUSR1. Done from Lua and
** with every failure ignored, so a binding without the function still runs
** scripts. (Until the binding has dump_on_signal, its "dump_signal" hook,
** called by the SIGUSR1 handler of corio.run, does the printing.)
*/
static void enable_dump (lua_State *L) {
  static const char code[] =
    "local ok, c = pcall(require, 'corio.core')\n"
    "if not ok or type(c) ~= 'table' then return end\n"
    "if c.dump_on_signal then c.dump_on_signal(true)\n"
    "elseif c.set_hook then\n"
    "  c.set_hook('dump_signal', function()\n"
    "    io.stderr:write(require('corio').dump(), '\\n')\n"
    "    io.stderr:flush()\n"
    "  end)\n"
    "end\n";
  if (luaL_loadbuffer(L, code, sizeof(code) - 1, "=corio") != LUA_OK ||
      lua_pcall(L, 0, 0, 0) != LUA_OK)
    lua_pop(L, 1);  /* the error */
}


/* loads the main chunk: -e code, stdin or the script file */
static int load_chunk (lua_State *L, char **argv, const struct options *o) {
  int status;
  if (o->code != NULL)
    status = luaL_loadbuffer(L, o->code, strlen(o->code), "=(command line)");
  else if (o->from_stdin)
    status = luaL_loadfile(L, NULL);
  else
    status = luaL_loadfile(L, argv[o->script]);
  return report(L, status);
}


/* calls corio.core[name]() and returns its first result as a string, or
   NULL (the binding may lack the function) */
static const char *call_core (lua_State *L, int corio, const char *name) {
  const char *r = NULL;
  int top = lua_gettop(L);
  lua_getfield(L, corio, "core");
  if (lua_type(L, -1) == LUA_TTABLE &&
      lua_getfield(L, -1, name) == LUA_TFUNCTION &&
      lua_pcall(L, 0, 1, 0) == LUA_OK && lua_type(L, -1) == LUA_TSTRING)
    r = lua_tostring(L, -1);  /* a literal kept by the binding */
  lua_settop(L, top);
  return r;
}


/* is the value at 'idx' a cancellation? (asks corio.is_cancelled) */
static int is_cancelled (lua_State *L, int corio, int idx) {
  int yes = 0;
  idx = lua_absindex(L, idx);
  if (lua_getfield(L, corio, "is_cancelled") == LUA_TFUNCTION) {
    lua_pushvalue(L, idx);
    if (lua_pcall(L, 1, 1, 0) == LUA_OK)
      yes = lua_toboolean(L, -1);
  }
  lua_pop(L, 1);  /* is_cancelled, its result or its error */
  return yes;
}


/*
** Pushes corio.run's options for --gc=S: {gc = S} for a mode word,
** {gc = {pause = N, stepmul = M}} for "[incremental,]k=v,..." (corio.run
** checks the fields and values). Returns 0 when S is of neither form.
*/
static int push_run_options (lua_State *L, const char *gc) {
  const char *p = gc;
  lua_createtable(L, 0, 1);
  if (strchr(gc, '=') == NULL) {
    if (strcmp(gc, "generational") != 0 && strcmp(gc, "incremental") != 0 &&
        strcmp(gc, "keep") != 0)
      return 0;
    lua_pushstring(L, gc);
    lua_setfield(L, -2, "gc");
    return 1;
  }
  if (strncmp(p, "incremental,", 12) == 0) p += 12;
  lua_newtable(L);
  while (*p != '\0') {
    const char *eq = strchr(p, '='), *end;
    char *numend;
    long v;
    if (eq == NULL || eq == p) return 0;
    v = strtol(eq + 1, &numend, 10);
    end = numend;
    if (end == eq + 1 || (*end != ',' && *end != '\0')) return 0;
    lua_pushlstring(L, p, (size_t)(eq - p));
    lua_pushinteger(L, v);
    lua_rawset(L, -3);
    p = *end == ',' ? end + 1 : end;
  }
  lua_setfield(L, -2, "gc");
  return 1;
}


/*
** require("corio").run([options,] chunk, args...) with the chunk on top of
** the stack (no args when there is no script, as with stdin); returns the
** exit status.
*/
static int run_main (lua_State *L, char **argv, int argc, int script,
                     const char *gc) {
  int i, status, corio;
  int chunk = lua_gettop(L);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "corio");
  status = docall(L, 1, 1);
  if (report(L, status) != LUA_OK) return EXIT_FAILURE;
  corio = lua_gettop(L);
  call_core(L, corio, "command_host");  /* SIGTERM too; corio.run nests */
  lua_getfield(L, corio, "run");
  if (gc != NULL && !push_run_options(L, gc)) {
    lua_pushfstring(L, "--gc=%s: generational, incremental, keep or "
                    "incremental,pause=N,stepmul=M expected", gc);
    l_message(lua_tostring(L, -1));
    return EXIT_USAGE;
  }
  lua_pushvalue(L, chunk);
  luaL_checkstack(L, argc - script, "too many arguments to script");
  for (i = (script > 0) ? script + 1 : argc; i < argc; i++)
    lua_pushstring(L, argv[i]);
  status = lua_pcall(L, lua_gettop(L) - corio - 1, 0, 0);
  if (status == LUA_OK) return EXIT_SUCCESS;
  if (is_cancelled(L, corio, -1)) {  /* only a signal is "interrupted" */
    const char *sig = call_core(L, corio, "interrupted");
    if (sig != NULL) {
      lua_pop(L, 1);
      l_message(sig[3] == 'T' ? "terminated" : "interrupted");
      return sig[3] == 'T' ? EXIT_TERMINATED : EXIT_INTERRUPTED;
    }
  }
  report(L, status);
  return EXIT_FAILURE;
}


/*
** Everything that touches Lua, in protected mode (as lua5.4's pmain):
** arguments 1-4 are argc, argv, the options and the place for the exit
** status.
*/
static int pmain (lua_State *L) {
  int argc = (int)lua_tointeger(L, 1);
  char **argv = (char **)lua_touserdata(L, 2);
  const struct options *o = (const struct options *)lua_touserdata(L, 3);
  int *exit_status = (int *)lua_touserdata(L, 4);
  lua_settop(L, 0);
  luaL_checkversion(L);
  if (o->noenv) {  /* tell the package library to ignore LUA_PATH & co */
    lua_pushboolean(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, "LUA_NOENV");
  }
  luaL_openlibs(L);
  if (o->warnings)
    lua_warning(L, "@on", 0);
  create_arg_table(L, argv, argc, o->script);
  setup_path(L);
  preload_core(L);
  *exit_status = EXIT_FAILURE;
  if (!o->noenv && handle_luainit(L) != LUA_OK) return 0;
  if (o->interactive) {  /* the prompt, after the script or -e code if any */
    int first = o->script != 0 && !o->from_stdin;
    if (first && load_chunk(L, argv, o) != LUA_OK) return 0;
    *exit_status = corio_cli_repl(L, first);
    return 0;
  }
  if (load_chunk(L, argv, o) != LUA_OK) return 0;
  if (o->code != NULL) {  /* -e code has `corio` as a global, as the prompt does */
    lua_getglobal(L, "require");
    lua_pushliteral(L, "corio");
    if (report(L, docall(L, 1, 1)) != LUA_OK) return 0;
    lua_setglobal(L, "corio");
  }
  enable_dump(L);
  *exit_status = run_main(L, argv, argc, o->script, o->gc);
  return 0;
}


/* A standard fd the parent closed gets /dev/null: otherwise the next
   file opened (the loop's epoll fd...) would take its number, libuv would
   abort on closing it, and corio.stdin() would be something else. */
static void open_std_fds (void) {
  int fd;
  for (fd = 0; fd <= 2; fd++)
    if (fcntl(fd, F_GETFD) == -1 && open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY) != fd)
      return;
}


int main (int argc, char **argv) {
  struct options opts;
  lua_State *L;
  int status, exit_status = EXIT_FAILURE;
  const char *bad;
  open_std_fds();
  bad = collect_args(argv, &opts);
  if (bad != NULL) {
    print_usage(bad);
    return EXIT_USAGE;
  }
  if (opts.from_stdin && opts.script == 0 && isatty(0))
    opts.interactive = 1;  /* corio alone on a terminal: the prompt */
  if (opts.version) {
    print_version();
    if (opts.script == 0) return EXIT_SUCCESS;
  }
  L = luaL_newstate();
  if (L == NULL) {
    l_message("cannot create state: not enough memory");
    return EXIT_FAILURE;
  }
  lua_pushcfunction(L, pmain);
  lua_pushinteger(L, argc);
  lua_pushlightuserdata(L, argv);
  lua_pushlightuserdata(L, &opts);
  lua_pushlightuserdata(L, &exit_status);
  status = lua_pcall(L, 4, 0, 0);
  if (status != LUA_OK) {  /* an error outside the main task (memory...) */
    report(L, status);
    exit_status = EXIT_FAILURE;
  }
  lua_close(L);  /* so every __gc runs */
  return exit_status;
}
