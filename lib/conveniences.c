/*
 * conveniences.c: public functions built on other public ones alone, above
 * the storage seam, so that a backend implements each operation once.
 */
#include "backend.h"

int sl_enqueue_many(struct sl_journal *j, const struct sl_job_spec *specs,
                    size_t n, int64_t *ids, size_t *bad_index) {
  return sl_enqueue_many_created(j, specs, n, ids, NULL, bad_index);
}

int sl_record_result(struct sl_journal *j, int64_t id, int64_t token,
                     int http_status, const char *body,
                     const char *request_id) {
  struct sl_completion c = {0};
  int rc;
  c.job_id = id;
  c.lease_token = token;
  c.outcome = SL_OUTCOME_SUCCESS;
  c.http_status = http_status;
  c.body = body;
  c.request_id = request_id;
  c.input_tokens = c.output_tokens = c.total_tokens = -1;
  c.t.dns_ms = c.t.connect_ms = c.t.tls_ms = c.t.first_byte_ms =
      c.t.total_ms = -1;
  rc = sl_complete(j, &c, 1);
  return rc != SL_OK ? rc : c.rc;
}

int sl_record_failure(struct sl_journal *j, int64_t id, int64_t token,
                      const char *failure_class, const char *error, int retry,
                      int64_t run_after_ms) {
  struct sl_completion c = {0};
  int rc;
  if (!failure_class)
    return SL_INVAL;
  c.job_id = id;
  c.lease_token = token;
  c.outcome = retry ? SL_OUTCOME_RETRY : SL_OUTCOME_FAIL;
  c.failure_class = failure_class;
  c.error = error;
  c.run_after_ms = run_after_ms;
  c.t.dns_ms = c.t.connect_ms = c.t.tls_ms = c.t.first_byte_ms =
      c.t.total_ms = -1;
  rc = sl_complete(j, &c, 1);
  return rc != SL_OK ? rc : c.rc;
}

int sl_release(struct sl_journal *j, int64_t id, int64_t token) {
  struct sl_completion c = {0};
  int rc;
  c.job_id = id;
  c.lease_token = token;
  c.outcome = SL_OUTCOME_RELEASE;
  rc = sl_complete(j, &c, 1);
  return rc != SL_OK ? rc : c.rc;
}
