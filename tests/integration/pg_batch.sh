#!/usr/bin/env bash
# The batch route on a PostgreSQL journal (lib/pg/batch*.c) against
# sluice-mock, as batch_lifecycle.sh and batch_crash.sh run it on SQLite:
# the lifecycle (pack, upload, create, poll, ingest; every job exactly one
# result), two workers on two hosts packing at once (a job in one batch, a
# remote batch per local batch), kill -9 after the create with recovery by
# metadata on another host, which waits out the dead worker's lease
# (SLUICE_TEST_HOST makes one machine present several hosts), a same-host
# restart that takes the batch back at once, and a crash mid-ingest. The
# worker's spill directory defaults to the state directory, never a path
# made from the URI, and the password never reaches a log line.
. "$(dirname "$0")/../lib/testlib.sh"
. "$SLUICE_ROOT/tests/lib/pglib.sh"
. "$SLUICE_ROOT/tests/lib/batchlib.sh"
if ! pg_available; then
  echo "SKIP: PostgreSQL is not installed"
  exit 0
fi
PG_OPTS="-c fsync=off" pg_start || { fail "pg_start"; finish; }
start_mock --batch-phase-ms 100 --log "$T/mock.log" || { fail "mock"; finish; }
export STATE_DIRECTORY="$T/state"
mkdir -p "$STATE_DIRECTORY"

# batchlib's helpers read the journal through sql and journal_id.
DB=""
N=0
sql() { PGOPTIONS="-c search_path=sluice" pg_psql -d "$DB" -c "$1"; }
journal_id() { sql "SELECT value FROM meta WHERE key = 'journal_id'"; }
# fresh_journal [pw]: a new database (a new journal id) for the next case;
# with pw, reached as the password role.
fresh_journal() {
  N=$((N + 1))
  DB="batch$N"
  pg_createdb "$DB" >/dev/null
  if [ "${1:-}" = pw ]; then
    pg_psql -d "$DB" -c "GRANT ALL ON DATABASE $DB TO $PG_PW_ROLE;
      GRANT CREATE ON SCHEMA public TO $PG_PW_ROLE" >/dev/null
    export SLUICE_JOURNAL="postgresql://$PG_PW_ROLE:$PG_PW_PASSWORD@127.0.0.1:$PGPORT/$DB"
  else
    export SLUICE_JOURNAL="postgresql://$PG_ADMIN@127.0.0.1:$PGPORT/$DB"
  fi
  "$SLUICE" init >/dev/null 2>&1
}
log_since() { tail -n +"$(($1 + 1))" "$T/mock.log" | grep -c "$2"; }

# --- the ops one by one (tests/unit/test_pg_batch.c) ------------------------
pg_createdb batch_unit >/dev/null
out=$(SLUICE_TEST_JOURNAL="postgresql://$PG_ADMIN@127.0.0.1:$PGPORT/batch_unit" \
  "$SLUICE_BUILD/tests/test_pg_batch" 2>&1)
rc=$?
echo "$out" | grep -E "^\[  (FAILED|SKIPPED|  OK) \]|PASSED" | sed 's/^/  /'
[ "$rc" -eq 0 ] || echo "$out" | grep -v "^    #\|^$" | head -30
check "unit tests of the batch ops on PostgreSQL pass (rc $rc)" test "$rc" -eq 0
case $out in *SKIPPED*) fail "... and none was skipped" ;; *) pass "... and none was skipped" ;; esac

# --- lifecycle -------------------------------------------------------------
fresh_journal pw
enq_deferrable 50
"$SLUICE" enqueue '{"model":"m","input":"urgent"}' >/dev/null
"$SLUICE" enqueue -u deferrable -d 10m '{"model":"m","input":"soon"}' >/dev/null
"$SLUICE" enqueue -u deferrable -e /v1/chat/completions \
  '{"model":"m","messages":[{"role":"user","content":"hi"}]}' >/dev/null
mark=$(wc -l <"$T/mock.log")
cd "$T" || exit 1
work
cd "$SLUICE_ROOT" || exit 1
eq "lifecycle: worker exits 0 when idle" 0 "$WORK_RC"
eq "lifecycle: every job succeeded" 53 \
  "$(sql "SELECT count(*) FROM jobs WHERE state = 'succeeded'")"
eq "lifecycle: deferrable jobs answered by the batch route" 51 \
  "$(sql "SELECT count(*) FROM results WHERE route = 'batch'")"
eq "lifecycle: urgent and near-deadline jobs went online" 2 \
  "$(sql "SELECT count(*) FROM results r JOIN jobs j ON j.id = r.job_id
    WHERE r.route = 'online' AND (j.urgency = 'urgent' OR j.deadline IS NOT
    NULL)")"
eq "lifecycle: one local batch per endpoint, done, no error" "2|done|0" \
  "$(sql "SELECT count(*), string_agg(DISTINCT state, ','), count(error)
    FROM batches")"
eq "lifecycle: request counts recorded" "50|1" \
  "$(sql "SELECT string_agg(request_count::text, '|' ORDER BY id) FROM batches")"
eq "lifecycle: token estimates recorded per batch" 2 \
  "$(sql "SELECT count(*) FROM batch_tokens WHERE est_tokens > 0")"
eq "lifecycle: batch results carry usage and a request id" 0 \
  "$(sql "SELECT count(*) FROM results WHERE route = 'batch' AND
    (total_tokens IS NULL OR request_id NOT LIKE 'req_%')")"
eq "lifecycle: one batch attempt per batched job" 51 \
  "$(sql "SELECT count(*) FROM attempts WHERE route = 'batch' AND
    failure_class IS NULL")"
eq "lifecycle: exactly one remote batch for local batch 1" 1 "$(remote_count 1)"
eq "lifecycle: exactly one remote batch for local batch 2" 1 "$(remote_count 2)"
eq "lifecycle: two uploads, two creates" "2 2" \
  "$(log_since "$mark" 'POST /v1/files ') $(log_since "$mark" 'POST /v1/batches ')"
check_exactly_once lifecycle
eq "lifecycle: every remote file recorded and deleted (ledger)" "4|0" \
  "$(sql "SELECT count(*), count(*) FILTER (WHERE deleted_at IS NULL)
    FROM batch_files")"
eq "lifecycle: input, output (x2) deleted on the API" 4 \
  "$(log_since "$mark" 'DELETE /v1/files/')"
jid=$(journal_id)
check "lifecycle: the spill dir defaults to \$STATE_DIRECTORY/<journal id>.spill" \
  test -d "$STATE_DIRECTORY/$jid.spill"
eq "lifecycle: no spill dir made from the URI" "" \
  "$(cd "$T" && ls -d postgres* 2>/dev/null)"
check "lifecycle: the worker had its spill file" \
  bash -c "! grep -q 'no spill file' '$T/work.log'"
check "lifecycle: the password never reaches a log line" \
  bash -c "! grep -q -- '$PG_PW_PASSWORD' '$T/work.log'"

# --- two hosts pack at once ------------------------------------------------
# FOR UPDATE SKIP LOCKED: each job lands in one batch; each worker drives
# its own batches and creates one remote batch per local batch.
fresh_journal
enq_deferrable 200
"$SLUICE" enqueue -u deferrable -e /v1/embeddings \
  '{"model":"text-embedding-3-small","input":"x"}' >/dev/null
SLUICE_TEST_HOST=host-a work --batch-max-lines 40 &
w1=$!
SLUICE_TEST_HOST=host-b work --batch-max-lines 40 &
w2=$!
wait "$w1"
r1=$?
wait "$w2"
eq "two hosts: both exit 0" "0 0" "$r1 $?"
eq "two hosts: every job succeeded through a batch" 201 \
  "$(sql "SELECT count(*) FROM results WHERE route = 'batch'")"
eq "two hosts: every job packed once (one attempt each)" 0 \
  "$(sql "SELECT count(*) FROM jobs WHERE attempts <> 1")"
eq "two hosts: batches of at most 40 lines, all done" "0|done" \
  "$(sql "SELECT sum((request_count > 40)::int), string_agg(DISTINCT state, ',')
    FROM batches")"
eq "two hosts: the batches' counts add up to the jobs" 201 \
  "$(sql "SELECT sum(request_count) FROM batches")"
list_remote
eq "two hosts: one remote batch per local batch" 0 \
  "$(sqlite3 :memory: "SELECT count(*) FROM (SELECT json_extract(value,
    '\$.metadata.sluice_batch') AS b, count(*) AS n FROM
    json_each(readfile('$T/batches.json'), '\$.data') WHERE
    json_extract(value, '\$.metadata.sluice_journal') = '$(journal_id)'
    GROUP BY b) WHERE n <> 1")"
eq "two hosts: as many remote batches as local ones" \
  "$(sql "SELECT count(*) FROM batches")" \
  "$(sqlite3 :memory: "SELECT count(*) FROM json_each(readfile(
    '$T/batches.json'), '\$.data') WHERE json_extract(value,
    '\$.metadata.sluice_journal') = '$(journal_id)'")"
check_exactly_once "two hosts"

# --- a packer skips the jobs another transaction holds ---------------------
# psql holds jobs 1-5 FOR UPDATE (as a claim or another packer would) until
# a batch exists: the pack must not wait for them, take the other 15, and
# leave 1-5 to a later batch.
fresh_journal
enq_deferrable 20
PGOPTIONS="-c statement_timeout=60000" pg_psql -d "$DB" >"$T/lock.out" 2>&1 <<'EOSQL' &
BEGIN;
SELECT count(*) FROM (SELECT id FROM sluice.jobs WHERE id <= 5 FOR UPDATE) x;
DO $$ BEGIN
  WHILE NOT EXISTS (SELECT 1 FROM sluice.batches) LOOP
    PERFORM pg_sleep(0.05);
  END LOOP;
END $$;
COMMIT;
EOSQL
lpid=$!
PIDS+=("$lpid")
wait_for 20 test "$(sql "SELECT count(*) FROM pg_locks l JOIN pg_class c
  ON c.oid = l.relation WHERE c.relname = 'jobs' AND l.mode = 'RowShareLock'
  AND l.pid <> pg_backend_pid()")" -ge 1
work
wait "$lpid"
eq "skip locked: the lock holder committed" "0 5" "$? $(cat "$T/lock.out")"
eq "skip locked: the first batch took the 15 free jobs, none held" "15|0" \
  "$(sql "SELECT count(*), count(*) FILTER (WHERE id <= 5) FROM jobs
    WHERE batch_id = (SELECT min(id) FROM batches)")"
eq "skip locked: the held 5 went in a later batch" "5" \
  "$(sql "SELECT count(*) FROM jobs WHERE id <= 5 AND batch_id >
    (SELECT min(id) FROM batches)")"
check_exactly_once "skip locked"

# --- kill -9 after the create; another host adopts after the lease ---------
fresh_journal
enq_deferrable 40
put_faults batch_stuck # the remote batch stays open while we look
mark=$(wc -l <"$T/mock.log")
SLUICE_TEST_HOST=host-a SLUICE_CRASH_AT=after_create work --lease 8s --poll 250ms
eq "other host: host-a died after the create" 137 "$WORK_RC"
eq "other host: created but not recorded" "uploaded|t" \
  "$(sql "SELECT state, remote_batch_id IS NULL FROM batches")"
eq "other host: one remote batch" 1 "$(remote_count 1)"
tok_a=$(sql "SELECT lease_token FROM batches WHERE id = 1")
wid_a=$(sql "SELECT worker_id FROM batches WHERE id = 1")
exp_a=$(sql "SELECT lease_expires FROM batches WHERE id = 1")
SLUICE_TEST_HOST=host-b work --lease 8s --poll 250ms &
wpid=$!
PIDS+=("$wpid")
# The adoption's own lease is (its time + 8 s): caught before host-b's
# first extension (a third of the lease later), it tells when it happened
# without timing anything here.
first=""
for _ in $(seq 1 1200); do
  row=$(sql "SELECT lease_token, lease_expires FROM batches WHERE id = 1")
  if [ "${row%%|*}" != "$tok_a" ]; then
    first=$row
    break
  fi
  sleep 0.05
done
check "other host: host-b adopted the batch" test -n "$first"
check "other host: ... only once host-a's lease had run out" \
  test "$(( ${first#*|} - 8000 ))" -ge "$exp_a"
wait_for 40 grep -q 'holding 1 batches of a stopped worker' "$T/work.log"
put_faults ""
wait "$wpid"
eq "other host: host-b exits 0" 0 "$?"
eq "other host: host-b adopted it after the lease" 0 \
  "$(sql "SELECT count(*) FROM batches WHERE id = 1 AND (lease_token = $tok_a
    OR worker_id = $wid_a)")"
eq "other host: every job succeeded" 40 \
  "$(sql "SELECT count(*) FROM jobs WHERE state = 'succeeded'")"
eq "other host: one local batch, done" "1|done" \
  "$(sql "SELECT count(*), string_agg(state, ',') FROM batches")"
eq "other host: one upload, one create in all (found by metadata)" "1 1" \
  "$(log_since "$mark" 'POST /v1/files ') $(log_since "$mark" 'POST /v1/batches ')"
eq "other host: exactly one remote batch" 1 "$(remote_count 1)"
check_exactly_once "other host"

# --- kill -9 after the upload; the same host takes it back at once ---------
fresh_journal
enq_deferrable 30
mark=$(wc -l <"$T/mock.log")
SLUICE_TEST_HOST=host-a SLUICE_CRASH_AT=after_upload work --lease 120s --poll 250ms
eq "same host: died after the upload" 137 "$WORK_RC"
SLUICE_TEST_HOST=host-a work --lease 120s --poll 250ms
eq "same host: the restart exits 0 (no 120 s lease waited out)" 0 "$WORK_RC"
check "same host: the dead predecessor's batch was taken back at once" \
  grep -q 'took back 0 leased jobs and 1 open batches' "$T/work.log"
check "same host: the uploaded file was reused" \
  grep -q 'reusing uploaded file' "$T/work.log"
eq "same host: one upload, one create" "1 1" \
  "$(log_since "$mark" 'POST /v1/files ') $(log_since "$mark" 'POST /v1/batches ')"
check_exactly_once "same host"

# --- kill -9 mid-ingest: the chunk already applied is not applied twice ----
fresh_journal
enq_deferrable 700 # more than one ingest chunk (512 lines)
SLUICE_TEST_HOST=host-a SLUICE_CRASH_AT=during_ingest work --lease 2s --poll 250ms
eq "ingest: died mid-ingest" 137 "$WORK_RC"
eq "ingest: the first chunk was recorded" "512|ingesting" \
  "$(sql "SELECT (SELECT count(*) FROM results), state FROM batches WHERE id = 1")"
SLUICE_TEST_HOST=host-c work --lease 2s --poll 250ms
eq "ingest: another host finishes it" 0 "$WORK_RC"
check "ingest: re-ingest skipped the settled lines" \
  grep -q '512 already settled' "$T/work.log"
eq "ingest: every job succeeded once" "700|700" \
  "$(sql "SELECT count(*) FILTER (WHERE state = 'succeeded'),
    (SELECT count(*) FROM results) FROM jobs")"
check_exactly_once ingest

check "no op was missing on PostgreSQL" \
  bash -c "! grep -q 'not built for PostgreSQL' '$T/work.log'"
check "no sanitizer report or crash in the logs" \
  bash -c "! grep -q 'AddressSanitizer\|runtime error' '$T/work.log'"
stop_mock
finish
