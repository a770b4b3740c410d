/* fuzz_response.c: libFuzzer target for the response side of an attempt:
 * usage parsing and classification of arbitrary bodies and statuses. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "classify.h"
#include "online.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const long statuses[] = {200, 201, 400, 401, 403, 404, 409, 413,
                                  422, 429, 500, 502, 503, 504, 0,   302};
  struct sl_attempt_view v = {0};
  int64_t in, out, total;
  char why[256], *body;
  int override;

  if (size < 2)
    return 0;
  body = malloc(size - 1);
  if (!body)
    return 0;
  memcpy(body, data + 2, size - 2);
  body[size - 2] = '\0';
  v.http_status = statuses[data[0] & 15];
  v.curl_code = (data[1] & 7) == 7 ? 28 : (data[1] & 7) == 6 ? 56 : 0;
  v.request_sent = data[1] >> 3 & 1;
  v.response_started = data[1] >> 4 & 1;
  v.body_capped = (data[1] >> 5 & 3) == 3;
  v.x_should_retry = data[1] & 0x80 ? "false" : NULL;
  v.body = body;
  v.body_len = size - 2;
  (void)sl_online_usage(body, size - 2, &in, &out, &total);
  (void)sl_classify(&v, &override, why, sizeof why);
  free(body);
  return 0;
}
