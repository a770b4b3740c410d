/*
 * backend.h: the storage seam (DESIGN.md, "Layout"). libsluice's public
 * functions that take a journal dispatch through one table of operations,
 * and each storage backend fills one in: lib/sqlite/ today, lib/pg/ next
 * (docs/internals/postgresql.md). Nothing above lib/ sees this header, and
 * nothing in lib/ outside a backend's directory names the backend's engine.
 *
 * Names marked sl__ are lib-internal (as libuv marks uv__ and curl Curl_).
 */
#ifndef SL_BACKEND_H
#define SL_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "sluice.h"
#include "sluice_batch.h"
#include "sluice_dash.h"
#include "sluice_storm.h"
#include "sluice_worker.h"
#include "sluice_workers.h"

/*
 * X(op, (parameters), (arguments)): every public function sl_<op> that
 * takes the journal first, returns an sl_err and needs the engine. One list
 * makes the table's members, the dispatchers (lib/backend.c) and a
 * backend's prototypes (sl__sqlite_<op> in lib/sqlite/internal.h), so they
 * cannot drift apart. The public functions built on these alone live above
 * the seam: sl_wait (lib/wait.c), sl_enqueue_many, sl_record_result,
 * sl_record_failure and sl_release (lib/conveniences.c).
 */
#define SL_BACKEND_OPS(X) \
  /* sluice.h */ \
  X(set_busy_timeout, (struct sl_journal *j, int ms, int poll), (j, ms, \
    poll)) \
  X(set_answer_timeout, (struct sl_journal *j, int ms), (j, ms)) \
  X(wal_manual, (struct sl_journal *j, sl_wal_fn fn, void *arg), (j, fn, \
    arg)) \
  X(checkpoint, (struct sl_journal *j, int restart), (j, restart)) \
  X(schema_version, (struct sl_journal *j, int *version), (j, version)) \
  X(enqueue, (struct sl_journal *j, const struct sl_job_spec *spec, \
    int64_t *id, int *created), (j, spec, id, created)) \
  X(enqueue_many_created, (struct sl_journal *j, \
    const struct sl_job_spec *specs, size_t n, int64_t *ids, int *created, \
    size_t *bad_index), (j, specs, n, ids, created, bad_index)) \
  X(cancel, (struct sl_journal *j, int64_t id), (j, id)) \
  X(status, (struct sl_journal *j, struct sl_queue_status **out, size_t *n), \
    (j, out, n)) \
  X(journal_changed, (struct sl_journal *j, int64_t *mark), (j, mark)) \
  X(count_active, (struct sl_journal *j, int64_t *active), (j, active)) \
  X(count_workable, (struct sl_journal *j, const char *const *queues, \
    int64_t *n), (j, queues, n)) \
  X(job_get, (struct sl_journal *j, int64_t id, struct sl_job_info *out), \
    (j, id, out)) \
  X(jobs_find, (struct sl_journal *j, const struct sl_job_filter *f, \
    struct sl_job_row **out, size_t *n), (j, f, out, n)) \
  X(job_attempts, (struct sl_journal *j, int64_t id, \
    struct sl_attempt_info **out, size_t *n), (j, id, out, n)) \
  X(gauges, (struct sl_journal *j, enum sl_gauge_set set, sl_gauge_cb cb, \
    void *arg), (j, set, cb, arg)) \
  X(replay, (struct sl_journal *j, const struct sl_replay_filter *f, \
    const char *door, int64_t *replayed), (j, f, door, replayed)) \
  X(prune, (struct sl_journal *j, int64_t older_than_ms, size_t batch_rows, \
    int64_t *deleted), (j, older_than_ms, batch_rows, deleted)) \
  X(vacuum, (struct sl_journal *j, int *converted), (j, converted)) \
  X(prune_count, (struct sl_journal *j, int64_t older_than_ms, \
    int64_t *count), (j, older_than_ms, count)) \
  X(queue_pause, (struct sl_journal *j, const char *queue, \
    const char *reason), (j, queue, reason)) \
  X(queue_resume, (struct sl_journal *j, const char *queue), (j, queue)) \
  /* sluice_worker.h */ \
  X(claim, (struct sl_journal *j, const struct sl_claim_options *o, \
    struct sl_claimed_job **jobs, size_t *n), (j, o, jobs, n)) \
  X(lease_extend, (struct sl_journal *j, int64_t id, int64_t token, \
    int64_t lease_ms), (j, id, token, lease_ms)) \
  X(lease_extend_many, (struct sl_journal *j, const int64_t *ids, \
    const int64_t *tokens, size_t n, int64_t lease_ms, int *rcs, \
    int64_t *new_expiry), (j, ids, tokens, n, lease_ms, rcs, new_expiry)) \
  X(complete, (struct sl_journal *j, struct sl_completion *c, size_t n), (j, \
    c, n)) \
  X(rescue, (struct sl_journal *j, int64_t now_ms, int64_t *rescued), (j, \
    now_ms, rescued)) \
  X(next_due, (struct sl_journal *j, int64_t *run_after_ms), (j, \
    run_after_ms)) \
  X(journal_wake_fd, (struct sl_journal *j), (j)) \
  /* sluice_batch.h */ \
  X(batch_backlog, (struct sl_journal *j, const struct sl_batch_filter *f, \
    struct sl_batch_backlog *out, size_t max, size_t *n), (j, f, out, max, \
    n)) \
  X(batch_pack, (struct sl_journal *j, \
    const struct sl_batch_pack_options *o, int64_t *batch_id, size_t *jobs, \
    int64_t *bytes), (j, o, batch_id, jobs, bytes)) \
  X(batch_fail_too_large, (struct sl_journal *j, \
    const struct sl_batch_pack_options *o, int64_t *failed), (j, o, failed)) \
  X(batch_list_open, (struct sl_journal *j, struct sl_batch_info **out, \
    size_t *n), (j, out, n)) \
  X(batch_get, (struct sl_journal *j, int64_t id, \
    struct sl_batch_info *out), (j, id, out)) \
  X(batch_journal_id, (struct sl_journal *j, char *buf, size_t len), (j, \
    buf, len)) \
  X(batch_adopt, (struct sl_journal *j, int64_t lease_token, \
    int64_t lease_ms, int64_t now_ms, int64_t *adopted), (j, lease_token, \
    lease_ms, now_ms, adopted)) \
  X(batch_lines, (struct sl_journal *j, int64_t batch_id, \
    sl_batch_line_cb cb, void *arg), (j, batch_id, cb, arg)) \
  X(batch_set_file, (struct sl_journal *j, int64_t id, int64_t token, \
    const char *file_id), (j, id, token, file_id)) \
  X(batch_set_remote, (struct sl_journal *j, int64_t id, int64_t token, \
    const char *remote_batch_id), (j, id, token, remote_batch_id)) \
  X(batch_set_status, (struct sl_journal *j, int64_t id, int64_t token, \
    const struct sl_batch_remote *r), (j, id, token, r)) \
  X(batch_ingest, (struct sl_journal *j, int64_t id, int64_t token, \
    struct sl_batch_line *lines, size_t n), (j, id, token, lines, n)) \
  X(batch_finish, (struct sl_journal *j, int64_t id, int64_t token, \
    const struct sl_batch_end *e, int64_t *requeued, int64_t *failed), (j, \
    id, token, e, requeued, failed)) \
  X(batch_file_record, (struct sl_journal *j, int64_t batch_id, \
    const char *kind, const char *name, const char *file_id), (j, batch_id, \
    kind, name, file_id)) \
  X(batch_file_deleted, (struct sl_journal *j, const char *file_id), (j, \
    file_id)) \
  X(batch_files_unnamed_gone, (struct sl_journal *j, int64_t *n), (j, n)) \
  X(batch_files_leftover, (struct sl_journal *j, size_t max, char ***ids, \
    size_t *n), (j, max, ids, n)) \
  X(batch_token_limit_set, (struct sl_journal *j, const char *model, \
    int64_t limit, int learned), (j, model, limit, learned)) \
  X(batch_token_room, (struct sl_journal *j, int64_t batch_id, \
    struct sl_batch_room *out), (j, batch_id, out)) \
  /* sluice_storm.h */ \
  X(bucket_update, (struct sl_journal *j, const char *endpoint, \
    const char *model, sl_bucket_update_fn fn, void *arg), (j, endpoint, \
    model, fn, arg)) \
  X(breaker_update, (struct sl_journal *j, const char *endpoint, \
    const char *model, sl_breaker_update_fn fn, void *arg), (j, endpoint, \
    model, fn, arg)) \
  X(bucket_list, (struct sl_journal *j, struct sl_bucket_row **rows, \
    size_t *n), (j, rows, n)) \
  X(breaker_list, (struct sl_journal *j, struct sl_breaker_row **rows, \
    size_t *n), (j, rows, n)) \
  X(queue_online_pause, (struct sl_journal *j, const char *queue, \
    const char *reason, int *changed), (j, queue, reason, changed)) \
  X(queue_online_resume, (struct sl_journal *j, const char *queue), (j, \
    queue)) \
  X(queue_budget_set, (struct sl_journal *j, const char *queue, \
    int64_t tokens_per_day, double usd_per_mtok_in, \
    double usd_per_mtok_out), (j, queue, tokens_per_day, usd_per_mtok_in, \
    usd_per_mtok_out)) \
  X(route_update, (struct sl_journal *j, const char *endpoint, \
    const char *model, const char *key_id, sl_route_update_fn fn, \
    void *arg), (j, endpoint, model, key_id, fn, arg)) \
  X(route_list, (struct sl_journal *j, struct sl_route_row **rows, \
    size_t *n), (j, rows, n)) \
  X(route_release_held, (struct sl_journal *j, const char *endpoint, \
    const char *model, int64_t now_ms, int64_t *n), (j, endpoint, model, \
    now_ms, n)) \
  X(queue_spend_list, (struct sl_journal *j, int64_t now_ms, \
    struct sl_queue_spend **rows, size_t *n), (j, now_ms, rows, n)) \
  /* sluice_workers.h */ \
  X(worker_register, (struct sl_journal *j, \
    const struct sl_worker_ident *me, int64_t *id), (j, me, id)) \
  X(worker_heartbeat, (struct sl_journal *j, int64_t now_ms), (j, now_ms)) \
  X(worker_unregister, (struct sl_journal *j), (j)) \
  X(worker_use, (struct sl_journal *j, int64_t id), (j, id)) \
  X(worker_peers, (struct sl_journal *j, const char *host, \
    struct sl_worker_row **rows, size_t *n), (j, host, rows, n)) \
  X(worker_take_over, (struct sl_journal *j, int64_t dead_id, int64_t *jobs, \
    int64_t *batches), (j, dead_id, jobs, batches)) \
  X(worker_count, (struct sl_journal *j, int64_t *n), (j, n)) \
  /* sluice_dash.h */ \
  X(dash_list, (struct sl_journal *j, enum sl_dash_list which, \
    const struct sl_dash_args *a, sl_dash_row_fn fn, void *arg), (j, which, \
    a, fn, arg)) \
  X(dash_attempts, (struct sl_journal *j, int64_t since_ms, int64_t *cursor, \
    int limit, sl_dash_row_fn fn, void *arg), (j, since_ms, cursor, limit, \
    fn, arg)) \
  X(dash_act, (struct sl_journal *j, const struct sl_dash_action *a, \
    int64_t *affected), (j, a, affected))

struct sl_backend_ops {
  const char *name; /* "sqlite", "postgresql" */
  /* Open the journal at opts->location (already stripped of its scheme). */
  int (*open_journal)(struct sl_journal **out,
                      const struct sl_open_options *opts,
                      char *errbuf, size_t errlen);
  void (*close_journal)(struct sl_journal *j);
  const char *(*errmsg)(const struct sl_journal *j);
  int64_t (*worker_id)(const struct sl_journal *j);
  /* Set the message sl_errmsg returns (for failures found above the seam). */
  void (*set_errmsg)(struct sl_journal *j, const char *msg);
  /* sl_wait's look at n ids: c[0] distinct ids, c[1] of them that exist,
   * c[2] final (succeeded, failed, cancelled), c[3] failed or cancelled. */
  int (*wait_counts)(struct sl_journal *j, const int64_t *ids, size_t n,
                     int64_t c[4]);
#define X(op, params, args) int(*op) params;
  SL_BACKEND_OPS(X)
#undef X
};

/*
 * Every backend's connection struct begins with its table, so the seam
 * finds the table from the opaque struct sl_journal (a pointer to a struct
 * points to its first member, C11 6.7.2.1p15).
 */
struct sl__journal_head {
  const struct sl_backend_ops *ops;
};
#define SL__OPS(j) (((const struct sl__journal_head *)(const void *)(j))->ops)

/* lib/sqlite/ops.c, lib/pg/ops.c */
extern const struct sl_backend_ops sl__sqlite_ops;
extern const struct sl_backend_ops sl__pg_ops;

#endif
