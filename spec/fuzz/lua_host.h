/*
** lua_host.h: the harness shared by the fuzz targets that embed Lua as a
** host application does (corio.h): one lua_State and one uv loop for the
** whole run, the binding's objects linked in, and each input run as a task
** of a fuzz script's function.
*/
#ifndef CORIO_FUZZ_LUA_HOST_H
#define CORIO_FUZZ_LUA_HOST_H

#include <stddef.h>
#include <stdint.h>
#include <lua.h>

/* prints "<target>: what" and aborts (libFuzzer keeps the input) */
void fuzz_host_die(const char *what);

/* fuzz_host_init(target, setup, script): the state and the loop. Opens the
   standard libraries, finds corio's Lua modules and preloads corio.core,
   sets the global `corio`, runs `setup` (Lua source, or NULL), attaches
   the loop, and keeps the function the file `script` returns as the body
   of every run. Aborts on any failure. Returns the state. */
lua_State *fuzz_host_init(const char *target, const char *setup, const char *script);

/* fuzz_host_run(data, size, path): runs the script's function with the
   input (a string) and `path` as a task, to the end of the loop. An error
   in the task, a task that does not finish, or anything left on the loop
   aborts. Collects the garbage of the run before it returns. */
void fuzz_host_run(const uint8_t *data, size_t size, const char *path);

#endif
