/*
** error.c: names and messages of corio's error codes.
*/
#include "corio.h"

const char *corio_err_name(int err) {
  switch (err) {
    case CORIO_EDONE: return "EDONE";
    case CORIO_ECLOSED: return "ECLOSED";
    default: return uv_err_name(err);
  }
}

const char *corio_strerror(int err) {
  switch (err) {
    case CORIO_EDONE: return "already done";
    case CORIO_ECLOSED: return "closed";
    default: return uv_strerror(err);
  }
}
