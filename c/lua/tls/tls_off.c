/*
** tls_off.c: corio built without TLS (OpenSSL not found, or
** -DCORIO_TLS=OFF): corio.tls's functions and stream:start_tls raise
** an error that says so; stream:tls_info() answers nil.
*/
#ifndef CORIO_HAVE_TLS
#include "net/net.h"

static int l_off(lua_State *L) {
  return luaL_error(L, "corio.tls: this corio was built without TLS "
                       "(OpenSSL was not found, or CORIO_TLS=OFF)");
}

static int l_available(lua_State *L) {
  lua_pushboolean(L, 0);
  lua_pushliteral(L, "built without TLS");
  return 2;
}

static int s_tls_info(lua_State *L) {
  lua_pushnil(L);
  return 1;
}

static const luaL_Reg stream_tls_methods[] = {
  {"start_tls", l_off},
  {"tls_info", s_tls_info},
  {NULL, NULL}
};

const luaL_Reg corio__tls_funcs[] = {
  {"tls_wrap", l_off},
  {"tls_available", l_available},
  {NULL, NULL}
};

const luaL_Reg corio__tlsctx_funcs[] = {
  {"tls_context", l_off},
  {NULL, NULL}
};

void corio__open_tls(lua_State *L) {
  luaL_getmetatable(L, STREAM_MT);
  lua_getfield(L, -1, "__index");
  lua_pushvalue(L, -3);
  luaL_setfuncs(L, stream_tls_methods, 1);
  lua_pop(L, 2);
}
#endif
