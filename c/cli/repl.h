/*
** repl.h: the interactive prompt of the corio command (repl.c).
*/
#ifndef CORIO_CLI_REPL_H
#define CORIO_CLI_REPL_H

#include "lua.h"

/* Runs the prompt on L (libraries open, corio's paths set). If first is
   true, the function on top of L's stack runs first, as a line (a script
   given with -i). Returns the exit status. */
int corio_cli_repl(lua_State *L, int first);

#endif
