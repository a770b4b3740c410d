/* err.c: names and messages of enum sl_err, generated from SL_ERR_MAP,
 * and how long to wait before retrying after SL_DISCONNECTED. */
#include "sluice.h"

/* Half of the delay is jittered: the clients of a restarted server must
 * not all come back in the same millisecond. */
int64_t sl_retry_delay_ms(int tries, uint64_t seed) {
  int64_t d = 100;
  uint64_t x = seed * 6364136223846793005ULL + (uint64_t)tries;
  while (--tries > 0 && d < 30000)
    d *= 2;
  if (d > 30000)
    d = 30000;
  x ^= x >> 29;
  return d / 2 + (int64_t)(x % (uint64_t)(d / 2 + 1));
}

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
