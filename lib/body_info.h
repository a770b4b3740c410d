/*
 * body_info.h: what the journal's door derives from a request body (model
 * and output cap), read in C by the library's enqueue on both backends
 * (lib/body_info.c). Internal to lib/.
 *
 * The doors differ in two ways, named here by what they do:
 * - a key given twice: PostgreSQL's json reads the last value, SQLite's
 *   json_extract the first (SL_BODY_FIRST_DUP);
 * - a cap with a fraction or an exponent: PostgreSQL's numeric truncates
 *   it exactly, SQLite goes through a double (SL_BODY_INT_CAPS: such a
 *   positive cap is not vouched for; the door computes it).
 */
#ifndef SL_BODY_INFO_H
#define SL_BODY_INFO_H

#include <stddef.h>
#include <stdint.h>

#define SL_BODY_FIRST_DUP 1u /* a duplicate key's first value counts */
#define SL_BODY_INT_CAPS 2u  /* vouch only for integer caps (or negative) */

/* Filled when sl__body_info returns 1: model is a span of the body, not
 * NUL-terminated; out_tokens the output cap (max_output_tokens,
 * max_completion_tokens or max_tokens, the first >= 1, truncated, at most
 * INT64_MAX; 0 none). */
struct sl_body_info {
  const char *model;
  size_t model_len;
  int64_t out_tokens;
};

/* 1 and out filled when body is valid JSON, an object naming a string
 * model that the door would read the same, with its output cap; 0 when
 * the door must judge the body itself. */
int sl__body_info(const char *body, unsigned flags, struct sl_body_info *out);

#endif
