/* fuzz_batch_line.c: libFuzzer target for one line of a Batch API output
 * or error file: custom_id mapping, response/error shapes, classification.
 * A malformed line must be an error with a reason, never a crash. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct sl_batch_parsed p;
  char err[256];
  int64_t id, gen;
  char *s = malloc(size + 1);
  if (!s)
    return 0;
  memcpy(s, data, size);
  s[size] = '\0';
  memset(&p, 0, sizeof p);
  err[0] = '\0';
  if (sl_batch_parse_line(s, size, 1700000000000LL, &p, err, sizeof err) !=
          0 &&
      err[0] == '\0')
    abort(); /* a refused line must say why */
  sl_batch_parsed_free(&p);
  (void)sl_batch_parse_custom_id(s, &id, &gen);
  free(s);
  return 0;
}
