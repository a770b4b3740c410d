/*
 * output_check.h: does a 2xx answer hold the output its request asked for?
 * A request that carries a JSON schema (chat: response_format, responses:
 * text.format, of type json_schema) must come back with valid JSON that
 * was neither cut off (finish_reason "length", status "incomplete") nor
 * refused. Anything else is class invalid_output (classify.h): retried
 * SL_INVALID_OUTPUT_RETRIES time(s), then failed, to be replayed by class
 * after a schema fix. It never loops. Both routes check: online.c on the
 * response, batch.c on each output line (reading the request back).
 */
#ifndef SL_OUTPUT_CHECK_H
#define SL_OUTPUT_CHECK_H

#include <stddef.h>

/* Retries of an invalid output before the job fails (by default one). */
#define SL_INVALID_OUTPUT_RETRIES 1

/*
 * 0 when the output is acceptable (or the request asked for no schema), 1
 * when it is not, with the reason in why. The request body is only parsed
 * when it mentions "json_schema", so plain requests cost a substring scan.
 */
int sl_output_invalid(const char *endpoint, const char *request_body,
                      const char *response_body, size_t response_len,
                      char *why, size_t whylen);

#endif
