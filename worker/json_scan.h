/*
 * json_scan.h: token usage from a response body without building a tree.
 *
 * Every 2xx body is checked to be JSON and its usage read before the
 * result is recorded. cJSON did that by allocating a node per value and a
 * copy per string, then freeing them all: about an eighth of the worker's
 * instructions per job at zero latency. This scanner validates the body in
 * place (no allocation) and reads only the top-level "usage" object.
 */
#ifndef SL_JSON_SCAN_H
#define SL_JSON_SCAN_H

#include <stddef.h>
#include <stdint.h>

/* The usage counts a body carries; -1 where absent, not a non-negative
 * number, or not representable. */
struct sl_json_usage {
  int64_t input_tokens, prompt_tokens;
  int64_t output_tokens, completion_tokens;
  int64_t total_tokens;
};

/*
 * Validate body[0..len) as one JSON text (RFC 8259: strict numbers and
 * escapes, no raw control characters in strings, whitespace only around the
 * value, nesting at most 1000 deep) whose value is an object, and read the
 * members of its top-level "usage" object into *u (the first occurrence of
 * a key counts, as with cJSON's lookup; keys are compared after unescaping;
 * members of nested objects such as input_tokens_details are not read).
 * Returns 0 when valid, -1 otherwise (*u then holds -1s). Bytes are not
 * checked to be UTF-8. Reads nothing past len; body need not end in NUL.
 */
int sl_json_scan_usage(const char *body, size_t len, struct sl_json_usage *u);

#endif
