#!/usr/bin/env bash
# bench/scale_build (the journal of `make bench-scale`, issue 14) writes by
# set-based SQL what the library's own producers and workers write: every
# row, counter, body, attempt, result and usage total equal, but for the
# times, keys and lease tokens (the SQL route's times follow a producer of
# 10 jobs a ms). A migration that adds a column, a trigger or a row the
# library fills makes the two differ here. Its end checks refuse a journal
# whose counters do not match a recount; a stopped build goes on.
. "$(dirname "$0")/../lib/testlib.sh"

B="$SLUICE_BUILD/bench/scale_build"
check "scale_build is built (make tests)" test -x "$B"

# the columns the two routes must agree on, table by table
dump() {
  sqlite3 "$1" "
SELECT id, queue, partition, urgency, priority, deadline, state, attempts,
       max_attempts, length(idempotency_key), endpoint, body, model,
       lease_token, lease_expires, generation, last_class, last_error,
       batch_id, finished_at IS NULL, updated_at IS NULL, worker_id, metadata,
       out_tokens, run_after > created_at FROM jobs ORDER BY id;
SELECT job_id, attempt, generation, route, started_at, finished_at IS NULL,
       http_status, failure_class, request_id, dns_ms, connect_ms, tls_ms,
       first_byte_ms, total_ms, error FROM attempts ORDER BY id;
SELECT job_id, generation, route, http_status, request_id, input_tokens,
       output_tokens, total_tokens, body FROM results ORDER BY job_id;
SELECT * FROM job_bodies ORDER BY job_id;
SELECT * FROM job_counts ORDER BY 1, 2, 3, 4;
SELECT queue, sum(jobs), sum(input_tokens), sum(output_tokens),
       sum(total_tokens) FROM usage_daily GROUP BY queue ORDER BY queue;
SELECT 'usage_summed', count(*) FROM usage_summed;
SELECT 'job_metadata', count(*) FROM job_metadata;
SELECT 'batches', count(*) FROM batches;
SELECT 'workers', count(*) FROM workers;"
}

"$SLUICE" init --journal "$T/lib.db" >/dev/null
"$SLUICE" init --journal "$T/sql.db" >/dev/null
"$B" -l "$T/lib.db" 3000 1000 >/dev/null 2>"$T/lib.err"
eq "the library route builds 3,000 jobs" 0 $?
"$B" "$T/sql.db" 3000 700 >/dev/null 2>"$T/sql.err"
eq "the SQL route builds 3,000 jobs (chunks of 700)" 0 $?
dump "$T/lib.db" >"$T/lib.txt"
dump "$T/sql.db" >"$T/sql.txt"
check "the library's journal is not empty" test "$(wc -l <"$T/lib.txt")" -gt 9000
cmp -s "$T/lib.txt" "$T/sql.txt" || diff "$T/lib.txt" "$T/sql.txt" | head -10
check "both routes write the same journal" cmp -s "$T/lib.txt" "$T/sql.txt"
eq "the SQL route's journal is sound" "ok" \
  "$(sqlite3 "$T/sql.db" "PRAGMA integrity_check; PRAGMA foreign_key_check")"

# a stopped build goes on from the jobs already there
"$SLUICE" init --journal "$T/two.db" >/dev/null
"$B" "$T/two.db" 1300 500 >/dev/null 2>&1 && "$B" "$T/two.db" 3000 500 >/dev/null 2>&1
eq "a build stopped at 1,300 goes on to 3,000" 0 $?
dump "$T/two.db" >"$T/two.txt"
check "and writes the same journal" cmp -s "$T/lib.txt" "$T/two.txt"

# the checks: a counter off by one, a result missing
cp "$T/sql.db" "$T/bad.db"
sqlite3 "$T/bad.db" "UPDATE job_counts SET n = n + 1 WHERE queue = 'batch'"
"$B" "$T/bad.db" 3000 >/dev/null 2>"$T/bad.err"
eq "a counter that does not match the recount fails the build" 1 $?
check "and says so" grep -q "check failed: job_counts against a recount" "$T/bad.err"
cp "$T/sql.db" "$T/bad2.db"
sqlite3 "$T/bad2.db" "DELETE FROM results WHERE job_id = 3"
"$B" "$T/bad2.db" 3000 >/dev/null 2>"$T/bad2.err"
eq "a succeeded job without its result fails the build" 1 $?

# the library works on what the SQL route wrote
"$SLUICE" status --journal "$T/sql.db" >"$T/st"
check "sluice status counts the SQL route's jobs" \
  grep -qE "^done +0 +0 +0 +2400 " "$T/st"
finish
