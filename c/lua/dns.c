/*
** dns.c: name resolution (getaddrinfo, getnameinfo) on libuv's thread pool.
*/
#include "net.h"

const luaL_Reg corio__dns_funcs[] = {
  {NULL, NULL}
};
