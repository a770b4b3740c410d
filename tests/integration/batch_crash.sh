#!/usr/bin/env bash
# kill -9 at each step of the batch route (SLUICE_CRASH_AT makes the worker
# _exit(137) right there): after the local commit, after the upload (file
# id not recorded), after the create (batch id not recorded), during the
# ingest. A restarted worker must find its file or batch again, never
# submit a second remote batch for one local batch (and cancel one that
# exists), and leave every job terminal exactly once with at most one
# result. Invariants 3 and 4.
. "$SLUICE_ROOT/tests/lib/testlib.sh"
. "$SLUICE_ROOT/tests/lib/batchlib.sh"

start_mock --batch-phase-ms 100 --log "$T/mock.log" || { fail "mock"; finish; }

# log_since MARK PATTERN: mock log lines after line MARK matching PATTERN.
log_since() { tail -n +"$(($1 + 1))" "$T/mock.log" | grep -c "$2"; }

for point in after_commit after_upload after_create during_ingest; do
  fresh_journal
  n=40
  [ "$point" = during_ingest ] && n=700 # more than one ingest transaction
  enq_deferrable "$n"
  mark=$(wc -l <"$T/mock.log")
  # after_create: hold remote batches in finalizing, so that the duplicate
  # made below is still running when the restarted worker finds it.
  [ "$point" = after_create ] && put_faults batch_stuck
  SLUICE_CRASH_AT=$point work --lease 1s --poll 250ms
  eq "$point: the worker died there" 137 "$WORK_RC"
  case $point in
  after_commit)
    eq "$point: local batch committed, nothing sent" "building|$n|0" \
      "$(sql "SELECT state, (SELECT count(*) FROM jobs WHERE batch_id = 1
        AND state = 'batched'), remote_file_id IS NOT NULL FROM batches")"
    eq "$point: no upload" 0 "$(log_since "$mark" 'POST /v1/files ')"
    ;;
  after_upload)
    eq "$point: uploaded but not recorded" "building|1" \
      "$(sql "SELECT state, remote_file_id IS NULL FROM batches")"
    eq "$point: one upload" 1 "$(log_since "$mark" 'POST /v1/files ')"
    ;;
  after_create)
    eq "$point: created but not recorded" "uploaded|1" \
      "$(sql "SELECT state, remote_batch_id IS NULL FROM batches")"
    eq "$point: one remote batch" 1 "$(remote_count 1)"
    # A second remote batch for the same local batch (as a racing or
    # buggy submitter would leave): recovery must keep one, cancel one.
    fid=$(sql "SELECT remote_file_id FROM batches WHERE id = 1")
    curl -sS -m 5 -o /dev/null "$MOCK_URL/batches" \
      -H 'Content-Type: application/json' --data-binary \
      "{\"input_file_id\":\"$fid\",\"endpoint\":\"/v1/responses\",
        \"completion_window\":\"24h\",\"metadata\":{\"sluice_batch\":\"1\",
        \"sluice_journal\":\"$(journal_id)\"}}"
    eq "$point: a duplicate remote batch now exists" 2 "$(remote_count 1)"
    ;;
  during_ingest)
    eq "$point: part of the output was recorded" 512 \
      "$(sql "SELECT count(*) FROM results")"
    eq "$point: the batch is still ingesting" ingesting \
      "$(sql "SELECT state FROM batches WHERE id = 1")"
    ;;
  esac
  if [ "$point" = after_create ]; then
    work --lease 1s --poll 250ms &
    wpid=$!
    wait_for 20 grep -q 'cancelled duplicate batch' "$T/work.log"
    put_faults ""
    wait "$wpid"
    WORK_RC=$?
  else
    work --lease 1s --poll 250ms
  fi
  eq "$point: restarted worker exits 0" 0 "$WORK_RC"
  eq "$point: every job succeeded" "$n" \
    "$(sql "SELECT count(*) FROM jobs WHERE state = 'succeeded'")"
  eq "$point: one local batch, done" "1|done" \
    "$(sql "SELECT count(*), group_concat(state) FROM batches")"
  eq "$point: one upload in all" 1 "$(log_since "$mark" 'POST /v1/files ')"
  if [ "$point" = after_create ]; then
    eq "$point: exactly one remote batch left running" 1 \
      "$(remote_active_count 1)"
    check "$point: the duplicate was cancelled" \
      grep -q 'cancelled duplicate batch' "$T/work.log"
    eq "$point: no second create by the worker" 1 \
      "$(log_since "$mark" 'POST /v1/batches sluice')"
  else
    eq "$point: exactly one remote batch" 1 "$(remote_count 1)"
    eq "$point: one create" 1 "$(log_since "$mark" 'POST /v1/batches ')"
  fi
  [ "$point" = after_upload ] && check "$point: the uploaded file was reused" \
    grep -q 'reusing uploaded file' "$T/work.log"
  [ "$point" = during_ingest ] && check "$point: re-ingest skipped settled lines" \
    grep -q '512 already settled' "$T/work.log"
  check_exactly_once "$point"
done
stop_mock
finish
