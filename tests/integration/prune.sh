#!/usr/bin/env bash
# sluice prune: help and usage errors, dry run, what is deleted and what is
# kept (states, age, open batches, the newest job), cascade to attempts and
# results, small transactions through --batch.
. "$(dirname "$0")/../lib/testlib.sh"

"$SLUICE" prune --help >"$T/help" 2>&1
eq "prune --help exits 0" 0 $?
check "prune --help starts with Usage" grep -q "^Usage: sluice prune" "$T/help"
for o in --journal --older-than --batch --dry-run --vacuum; do
  check "prune --help mentions $o" grep -q -- "$o" "$T/help"
done
"$SLUICE" --help | grep -q "^  prune " && pass "top-level help lists prune" ||
  fail "top-level help lists prune"

"$SLUICE" init >/dev/null
usage() { # name args...
  local name=$1
  shift
  "$SLUICE" prune "$@" >/dev/null 2>"$T/err"
  eq "usage error: $name" 2 $?
}
usage "no --older-than"
usage "bad duration" --older-than 7x
usage "negative duration" --older-than -1d
usage "zero batch" --older-than 7d --batch 0
usage "batch not a number" --older-than 7d --batch many
usage "stray argument" --older-than 7d extra
"$SLUICE" prune --older-than 7d --journal "$T/missing.db" >/dev/null 2>&1
eq "missing journal exits 3" 3 $?
check "missing journal is not created" test ! -e "$T/missing.db"

# 20 old succeeded jobs, each with an attempt and a result; 3 old failed;
# 2 old cancelled; 1 recent succeeded; old pending, running and batched
# jobs; 2 old succeeded jobs of a batch still submitted; a newest job.
for i in $(seq 1 32); do echo '{"model":"m","input":"x"}'; done |
  "$SLUICE" enqueue >/dev/null
now=$(sql "SELECT CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)")
old=$((now - 10 * 86400000))
recent=$((now - 3600000))
sql "INSERT INTO batches (id, endpoint, state) VALUES (7, '/v1/responses', 'submitted');
UPDATE jobs SET state = 'running' WHERE id <= 20 OR id IN (26, 30, 31);
UPDATE jobs SET state = 'succeeded', finished_at = $old WHERE id <= 20;
UPDATE jobs SET state = 'failed', last_class = 'invalid_request', finished_at = $old WHERE id BETWEEN 21 AND 23;
UPDATE jobs SET state = 'cancelled', finished_at = $old WHERE id IN (24, 25);
UPDATE jobs SET state = 'succeeded', finished_at = $recent WHERE id = 26;
UPDATE jobs SET created_at = $old, run_after = $old WHERE id = 27;
UPDATE jobs SET state = 'running', lease_token = 1, lease_expires = $now + 600000, attempts = 1 WHERE id = 28;
UPDATE jobs SET state = 'batched', batch_id = 7 WHERE id = 29;
UPDATE jobs SET state = 'succeeded', batch_id = 7, finished_at = $old WHERE id IN (30, 31);
INSERT INTO attempts (job_id, attempt, generation, route, finished_at, http_status)
  SELECT id, 1, 0, 'online', finished_at, 200 FROM jobs WHERE state = 'succeeded';
INSERT INTO results (job_id, generation, route, http_status, body, created_at)
  SELECT id, 0, 'online', 200, '{}', finished_at FROM jobs WHERE state = 'succeeded';"
eq "fixture: 23 results" 23 "$(sql 'SELECT count(*) FROM results')"

out=$("$SLUICE" prune --older-than 7d --dry-run)
eq "dry run exits 0" 0 $?
eq "dry run counts the old finished jobs" "would prune 25 jobs" "$out"
eq "dry run deletes nothing" 32 "$(sql 'SELECT count(*) FROM jobs')"

out=$("$SLUICE" prune --older-than 7d --batch 4)
eq "prune exits 0" 0 $?
eq "prune reports the count" "pruned 25 jobs" "$out"
eq "old finished jobs are gone" "" \
  "$(sql 'SELECT group_concat(id) FROM jobs WHERE id <= 25')"
eq "the rest is kept" "26,27,28,29,30,31,32" \
  "$(sql 'SELECT group_concat(id) FROM (SELECT id FROM jobs ORDER BY id)')"
eq "their attempts went with them" "26,30,31" \
  "$(sql 'SELECT group_concat(job_id) FROM (SELECT job_id FROM attempts ORDER BY job_id)')"
eq "their results went with them" "26,30,31" \
  "$(sql 'SELECT group_concat(job_id) FROM (SELECT job_id FROM results ORDER BY job_id)')"
eq "journal passes foreign_key_check" "" "$(sql 'PRAGMA foreign_key_check')"
eq "journal passes integrity_check" "ok" "$(sql 'PRAGMA integrity_check')"

# The batch finishes: its old jobs may go; 0s reaches the recent one too,
# but never the newest job, nor the pending, running or batched ones.
sql "UPDATE batches SET state = 'done' WHERE id = 7; UPDATE jobs SET state = 'running' WHERE id = 32; UPDATE jobs SET state = 'succeeded', finished_at = $old WHERE id IN (29, 32)"
out=$("$SLUICE" prune --older-than 0s)
eq "second prune after the batch closed" "pruned 4 jobs" "$out"
eq "what stays: pending, running, newest" "27,28,32" \
  "$(sql 'SELECT group_concat(id) FROM (SELECT id FROM jobs ORDER BY id)')"
id=$("$SLUICE" enqueue '{"model":"m"}')
eq "a new job never reuses a pruned id" 33 "$id"
out=$("$SLUICE" prune --older-than 0s)
eq "the former newest job goes once a newer one exists" "pruned 1 jobs" "$out"
out=$("$SLUICE" prune --older-than 0s)
eq "nothing left to prune" "pruned 0 jobs" "$out"

# Prune while a worker runs on the same journal: both finish, the worker's
# jobs all succeed once, the prune deletes exactly the old ones.
# A journal of its own: the one above holds a running job that keeps a
# worker with --exit-when-idle from ever being idle.
export SLUICE_JOURNAL="$T/live.db"
"$SLUICE" init >/dev/null
if start_mock; then
  # Pending, running, then succeeded: the SQL door takes only pending jobs,
  # and a job moves only along the lifecycle (migration 0013).
  sql "INSERT INTO jobs (queue, body)
    SELECT 'old', '{\"model\":\"m\"}'
    FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c
          WHERE x < 5000) SELECT x FROM c);
    UPDATE jobs SET state = 'running' WHERE queue = 'old';
    UPDATE jobs SET state = 'succeeded', finished_at = $old
     WHERE queue = 'old'"
  for i in $(seq 1 300); do printf '{"model":"m","input":"live %d"}\n' "$i"; done |
    "$SLUICE" enqueue -q live >/dev/null
  timeout 120 "$SLUICE" work --base-url "$MOCK_URL" --exit-when-idle \
    --poll 100ms --concurrency 8 2>"$T/worker.log" &
  w=$!
  PIDS+=("$w")
  out=$("$SLUICE" prune --older-than 1d --batch 50 2>"$T/prune.err")
  eq "prune beside a worker exits 0" "0 pruned 5000 jobs" "$? $out"
  wait "$w"
  eq "the worker beside it exits 0" 0 $?
  eq "the worker's 300 jobs succeeded, one result each" "300 300" \
    "$(sql "SELECT sum(state = 'succeeded') || ' ' || (SELECT count(*) FROM results
      WHERE job_id IN (SELECT id FROM jobs WHERE queue = 'live'))
      FROM jobs WHERE queue = 'live'")"
  eq "no old job left" 0 "$(sql "SELECT count(*) FROM jobs WHERE queue = 'old'")"
  stop_mock
else
  fail "sluice-mock starts"
fi

# --vacuum: an old journal (auto_vacuum NONE) is converted once and shrinks.
reset_journal
"$SLUICE" init >/dev/null
sql "PRAGMA auto_vacuum = NONE; VACUUM"
body=$(printf '{"model":"m","input":"%04000d"}' 1)
for i in $(seq 1 1000); do echo "$body"; done | "$SLUICE" enqueue >/dev/null
sql "UPDATE jobs SET state = 'cancelled', finished_at = 1
     WHERE id < (SELECT max(id) FROM jobs); PRAGMA wal_checkpoint(TRUNCATE)" >/dev/null
"$SLUICE" prune --older-than 1d >/dev/null
full=$(stat -c %s "$SLUICE_JOURNAL")
"$SLUICE" prune --vacuum >"$T/vac.out" 2>&1
eq "prune --vacuum alone exits 0" 0 $?
check "and says it converted the journal" grep -q "converted" "$T/vac.out"
small=$(stat -c %s "$SLUICE_JOURNAL")
check "the journal shrank ($full -> $small bytes)" test "$small" -lt $((full / 4))
eq "it is incremental now" 2 "$(sql 'PRAGMA auto_vacuum')"
eq "the newest job is still there" 1 "$(sql 'SELECT count(*) FROM jobs')"
"$SLUICE" prune --vacuum --dry-run >"$T/vac.out" 2>&1
eq "prune --vacuum --dry-run exits 0" 0 $?

finish
