/*
** udp.c: UDP sockets.
*/
#include "net.h"

const luaL_Reg corio__udp_funcs[] = {
  {NULL, NULL}
};

/* stack: state userdata at -1 */
void corio__open_udp(lua_State *L) {
  (void)L;
}
