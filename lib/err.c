/* err.c: names and messages of enum sl_err, generated from SL_ERR_MAP. */
#include "sluice.h"

const char *sl_strerror(int err) {
  switch (err) {
#define XX(name, value, msg) \
  case SL_##name:            \
    return msg;
    SL_ERR_MAP(XX)
#undef XX
  }
  return "unknown error";
}

const char *sl_err_name(int err) {
  switch (err) {
#define XX(name, value, msg) \
  case SL_##name:            \
    return "SL_" #name;
    SL_ERR_MAP(XX)
#undef XX
  }
  return "SL_UNKNOWN";
}
