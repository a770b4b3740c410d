#!/usr/bin/env bash
# The batch route under sluice-mock's batch faults: partial error files
# (retryable, permanent and "response": null lines), expiry with half the
# work done, a validation refusal for the enqueued-token limit (retried
# later, not failed), an upload 5xx, and a malformed output line (a clear
# error, the other lines still ingested). Every job ends terminal exactly
# once.
. "$SLUICE_ROOT/tests/lib/testlib.sh"
. "$SLUICE_ROOT/tests/lib/batchlib.sh"

# scenario NAME FAULTS N: fresh mock with FAULTS, fresh journal, N jobs, run.
scenario() {
  [ -n "${MOCK_PID:-}" ] && stop_mock
  : >"$T/work.log"
  start_mock --batch-phase-ms 100 --log "$T/mock.$1.log" --faults "$2" ||
    { fail "$1: mock"; return 1; }
  fresh_journal
  enq_deferrable "$3"
  work
  eq "$1: worker exits 0" 0 "$WORK_RC"
}

# --- partial error files -----------------------------------------------------
scenario errors 'batch_error_line#3-5,batch_error_line:400#7,batch_error_line:0#9' 20
eq "errors: the 400 line failed its job for good" "failed|invalid_request|0" \
  "$(sql "SELECT state, last_class, (SELECT count(*) FROM results WHERE
    job_id = 7) FROM jobs WHERE id = 7")"
eq "errors: the retryable lines were retried to success" 19 \
  "$(sql "SELECT count(*) FROM jobs WHERE state = 'succeeded'")"
eq "errors: first batch recorded its error lines by class" "3|1" \
  "$(sql "SELECT sum(failure_class = 'server_error' AND http_status = 500),
    sum(failure_class = 'server_error' AND http_status IS NULL)
    FROM attempts WHERE generation = 0 AND attempt = 1")"
check "errors: later batches took the retried jobs" \
  test "$(sql "SELECT count(*) FROM batches WHERE state = 'done'")" -ge 2
check_exactly_once errors

# --- expiry --------------------------------------------------------------------
scenario expiry 'batch_expire#1' 20
eq "expiry: first batch expired" expired \
  "$(sql "SELECT remote_status FROM batches WHERE id = 1")"
eq "expiry: the unfinished half went back as batch_expired" 10 \
  "$(sql "SELECT count(*) FROM attempts WHERE failure_class =
    'batch_expired'")"
eq "expiry: the finished half kept its results from batch 1" 10 \
  "$(sql "SELECT count(*) FROM jobs WHERE batch_id = 1 AND state =
    'succeeded'")"
eq "expiry: all succeeded after a second batch" "20|2" \
  "$(sql "SELECT count(*), (SELECT count(*) FROM batches) FROM jobs WHERE
    state = 'succeeded'")"
check_exactly_once expiry

# --- validation refusal for the enqueued-token limit ---------------------------
scenario validation 'batch_validation#1' 10
eq "validation: batch 1 failed with the reason kept" "failed|1" \
  "$(sql "SELECT state, error LIKE 'token_limit_exceeded: Enqueued token%'
    FROM batches WHERE id = 1")"
eq "validation: its jobs were retried, not failed" 10 \
  "$(sql "SELECT count(*) FROM jobs WHERE state = 'succeeded' AND batch_id = 2")"
eq "validation: the refused attempt was given back" 10 \
  "$(sql "SELECT count(*) FROM jobs WHERE attempts = 1")"
eq "validation: the refusal is on record per job" 10 \
  "$(sql "SELECT count(*) FROM attempts WHERE failure_class = 'rate_limited'")"
check_exactly_once validation

# --- upload 5xx --------------------------------------------------------------------
scenario upload500 'upload_500#1' 10
eq "upload500: uploaded again after the 500" 2 \
  "$(grep -c 'POST /v1/files ' "$T/mock.upload500.log")"
eq "upload500: one batch, all succeeded" "1|10" \
  "$(sql "SELECT (SELECT count(*) FROM batches), count(*) FROM jobs WHERE
    state = 'succeeded'")"
check_exactly_once upload500

# --- a malformed output line ---------------------------------------------------------
scenario malformed 'batch_bad_line#2' 10
check "malformed: a clear error names the line" \
  grep -q 'output file line [0-9]* is malformed (not a JSON object)' \
  "$T/work.log"
check "malformed: the other lines were still ingested" \
  grep -q '10 lines, 9 recorded' "$T/work.log"
eq "malformed: the job without a line was retried to success" 10 \
  "$(sql "SELECT count(*) FROM jobs WHERE state = 'succeeded'")"
check_exactly_once malformed
# --- a remote batch cancelled by someone else ------------------------------------
# Held in finalizing (its output already made), then cancelled through the
# API: the worker follows cancelling -> cancelled and still ingests the
# output the batch produced.
[ -n "${MOCK_PID:-}" ] && stop_mock
: >"$T/work.log"
start_mock --batch-phase-ms 100 --faults batch_stuck || fail "cancelled: mock"
fresh_journal
enq_deferrable 10
work &
wpid=$!
wait_for 20 sh -c "[ \"\$(sqlite3 -cmd '.timeout 5000' '$SLUICE_JOURNAL' \
  \"SELECT remote_status FROM batches WHERE id = 1\")\" = finalizing ]"
rid=$(sql "SELECT remote_batch_id FROM batches WHERE id = 1")
curl -sS -m 5 -o /dev/null -X POST "$MOCK_URL/batches/$rid/cancel"
wait "$wpid"
eq "cancelled: worker exits 0" 0 "$?"
eq "cancelled: the local batch followed the remote one" "cancelled|cancelled" \
  "$(sql "SELECT state, remote_status FROM batches WHERE id = 1")"
eq "cancelled: the output made before the cancel was ingested" 10 \
  "$(sql "SELECT count(*) FROM jobs WHERE state = 'succeeded'")"
check_exactly_once cancelled
stop_mock
finish
