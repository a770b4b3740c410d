#!/usr/bin/env bash
# The batch route against a hostile Batch API (issue 11): near-miss
# custom_ids are never taken for a job; a content 404 and a batch stuck past
# its expires_at end with a class within their bound; a batch whose jobs
# were all cancelled is cancelled remotely and ends; an output line over the
# line limit fails only its job (too_large) and the rest is ingested.
. "$SLUICE_ROOT/tests/lib/testlib.sh"
. "$SLUICE_ROOT/tests/lib/batchlib.sh"

# scenario NAME N MOCK-ARGS...: fresh mock and journal, N jobs.
scenario() {
  local name=$1 n=$2
  shift 2
  [ -n "${MOCK_PID:-}" ] && stop_mock
  : >"$T/work.log"
  start_mock --batch-phase-ms 100 --log "$T/mock.$name.log" "$@" ||
    { fail "$name: mock"; return 1; }
  fresh_journal
  enq_deferrable "$n"
}

# --- near-miss custom_ids ---------------------------------------------------
# Lines 1 and 2 come back as "sl-01-0" and "sl-2-0\u0000": neither is a
# string sluice wrote, so jobs 1 and 2 have no line in batch 1 and go to a
# second batch; no near miss becomes a result.
scenario nearmiss 6 --faults 'batch_near_miss:1#1-2'
work
eq "nearmiss: worker exits 0" 0 "$WORK_RC"
eq "nearmiss: jobs 1 and 2 got their results from batch 2" "1|2,2|2" \
  "$(sql "SELECT group_concat(id || '|' || batch_id, ',') FROM (SELECT id,
    batch_id FROM jobs WHERE id IN (1, 2) ORDER BY id)")"
eq "nearmiss: batch 1 left them without a line" 2 \
  "$(sql "SELECT count(*) FROM attempts WHERE job_id IN (1, 2) AND
    failure_class = 'server_error'")"
eq "nearmiss: logged once for the batch" 1 \
  "$(grep -c 'line [0-9]* ignored: custom_id is not one sluice wrote' \
    "$T/work.log")"
check "nearmiss: counted in the file summary" \
  grep -q '6 lines, 4 recorded, 0 already settled, 0 malformed, 2 not ours' \
  "$T/work.log"
check_exactly_once nearmiss

# --- 404 on the output file, every time ---------------------------------------
scenario c404 4 --faults 'content:404'
work
eq "c404: worker exits 0 (bounded)" 0 "$WORK_RC"
eq "c404: six downloads, then given up" 6 \
  "$(grep -c 'GET /v1/files/.*/content' "$T/mock.c404.log")"
eq "c404: jobs failed batch_failed, not sent again" "4|failed|batch_failed|1" \
  "$(sql "SELECT count(*), group_concat(DISTINCT state),
    group_concat(DISTINCT last_class), (SELECT count(*) FROM batches)
    FROM jobs")"
check_exactly_once c404

# --- every job cancelled while the batch is stuck -------------------------------
scenario allcancel 4 --faults batch_stuck
(work; exit "$WORK_RC") &
wpid=$!
wait_for 20 sh -c "[ \"\$(sqlite3 -cmd '.timeout 5000' '$SLUICE_JOURNAL' \
  \"SELECT remote_status FROM batches WHERE id = 1\")\" = finalizing ]"
for i in 1 2 3 4; do "$SLUICE" cancel "$i" >/dev/null; done
wait "$wpid"
eq "allcancel: worker exits 0" 0 "$?"
eq "allcancel: local batch cancelled" cancelled \
  "$(sql "SELECT state FROM batches WHERE id = 1")"
check "allcancel: the remote batch was cancelled" \
  grep -q "POST /v1/batches/.*/cancel - 200" "$T/mock.allcancel.log"
eq "allcancel: jobs cancelled, no result" "4|0" \
  "$(sql "SELECT count(*), (SELECT count(*) FROM results) FROM jobs WHERE
    state = 'cancelled'")"

# --- the cancel of that batch under faults ----------------------------------------
# An unanswered cancel (dropped before the headers after it took effect, a
# reset after the headers, no answer) is checked by status, not re-sent; one
# refused with a 500 (no effect) is sent again after the check; a 200 with a
# cut or non-JSON body is taken as done (the status said so). (The mock
# logs a request when it answers: a hung cancel is not in its log.)
for f in drop:1 reset:1 hangafter:0 500:2 truncate:1 nonjson:1; do
  fault=${f%:*} want=${f#*:}
  scenario "cancel$fault" 2 --faults "batch_stuck,cancel:$fault#1"
  (work --timeout 1s; exit "$WORK_RC") &
  wpid=$!
  wait_for 20 sh -c "[ \"\$(sqlite3 -cmd '.timeout 5000' '$SLUICE_JOURNAL' \
    \"SELECT remote_status FROM batches WHERE id = 1\")\" = finalizing ]"
  "$SLUICE" cancel 1 2 >/dev/null
  wait "$wpid"
  eq "cancel×$fault: worker exits 0" 0 "$?"
  eq "cancel×$fault: cancels answered" "$want" \
    "$(grep -c "POST /v1/batches/.*/cancel" "$T/mock.cancel$fault.log")"
  if [ "$fault" = drop ] || [ "$fault" = reset ] ||
    [ "$fault" = hangafter ]; then
    check "cancel×$fault: checked by status, not sent again" \
      grep -qE 'is cancel(ling|led): no cancel needed' "$T/work.log"
  fi
  eq "cancel×$fault: the remote batch is cancelled" 1 \
    "$(remote_active_count 1 >/dev/null; sqlite3 :memory: "SELECT count(*)
      FROM json_each(readfile('$T/batches.json'), '\$.data') WHERE
      json_extract(value, '\$.status') IN ('cancelling', 'cancelled')")"
  eq "cancel×$fault: local batch cancelled, jobs cancelled" "cancelled|2" \
    "$(sql "SELECT state, (SELECT count(*) FROM jobs WHERE state =
      'cancelled') FROM batches WHERE id = 1")"
done

# --- stuck in finalizing past expires_at ----------------------------------------
# expires_at is the creation second: 10 polls (1 s) past it the remote batch
# is cancelled (here every cancel fails); 20 polls past it the jobs fail
# batch_expired.
scenario expiry 3 --faults 'batch_stuck,cancel:500' --batch-window-s 0
work
eq "expiry: worker exits 0 (bounded)" 0 "$WORK_RC"
eq "expiry: jobs failed batch_expired" "3|failed|batch_expired" \
  "$(sql "SELECT count(*), group_concat(DISTINCT state),
    group_concat(DISTINCT last_class) FROM jobs")"
check "expiry: a cancel was sent" \
  grep -q "POST /v1/batches/.*/cancel" "$T/mock.expiry.log"
check_exactly_once expiry

# --- an output line over the line limit -------------------------------------------
# Line 2's response is padded to 2 MiB, the limit is 1 MiB: job 2 fails
# too_large and the other lines are still ingested.
scenario longline 5 --faults 'batch_long_line:2048#2'
SLUICE_BATCH_MAX_LINE=1048576 work
eq "longline: worker exits 0" 0 "$WORK_RC"
eq "longline: job 2 failed too_large" "failed|too_large" \
  "$(sql "SELECT state, last_class FROM jobs WHERE id = 2")"
eq "longline: the other jobs succeeded in batch 1" 4 \
  "$(sql "SELECT count(*) FROM jobs WHERE state = 'succeeded' AND
    batch_id = 1")"
eq "longline: one batch" 1 "$(sql "SELECT count(*) FROM batches")"
check_exactly_once longline
# --- the cleanup ledger --------------------------------------------------------------
# Every delete answered 500: each is retried (6 times), then left to the
# ledger; the next worker deletes input and output files alike.
scenario ledger 3 --faults 'delete:500'
work
eq "ledger: worker exits 0" 0 "$WORK_RC"
eq "ledger: the input and output files are still there" 2 "$(files_left)"
eq "ledger: six deletes each" 12 \
  "$(grep -c 'DELETE /v1/files/.* - 500' "$T/mock.ledger.log")"
eq "ledger: the ledger knows both" 2 \
  "$(sql "SELECT count(*) FROM batch_files WHERE deleted_at IS NULL AND
    file_id IS NOT NULL")"
put_faults ''
work
eq "ledger: next worker exits 0" 0 "$WORK_RC"
eq "ledger: no file left" 0 "$(files_left)"
eq "ledger: all marked deleted" 0 \
  "$(sql "SELECT count(*) FROM batch_files WHERE deleted_at IS NULL")"

# Killed right after the batch ended, before any delete.
scenario ledgercrash 3
SLUICE_CRASH_AT=after_ingest work
eq "ledgercrash: died there" 137 "$WORK_RC"
eq "ledgercrash: files left by the crash" 2 "$(files_left)"
work
eq "ledgercrash: next worker exits 0" 0 "$WORK_RC"
eq "ledgercrash: no file left" 0 "$(files_left)"
check_exactly_once ledgercrash
stop_mock
finish
