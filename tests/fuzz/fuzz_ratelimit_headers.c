/* fuzz_ratelimit_headers.c: libFuzzer target for the header parsers that
 * decide retry delays: x-ratelimit-reset-* durations, Retry-After (seconds
 * or HTTP-date) and retry-after-ms. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "storm/backoff.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *s = malloc(size + 1), *second;
  int64_t ms, delay;
  if (!s)
    return 0;
  memcpy(s, data, size);
  s[size] = '\0';
  /* Split at the first NUL-free '|' into Retry-After and retry-after-ms. */
  second = strchr(s, '|');
  if (second)
    *second++ = '\0';
  if (sl_parse_duration_ms(s, &ms) == 0 && ms < 0)
    abort();
  if (sl_retry_after_ms(s, second, 1700000000000LL, 600000, &delay) == 0 &&
      (delay < 0 || delay > 600000))
    abort(); /* the cap is a contract */
  free(s);
  return 0;
}
