#!/usr/bin/env bash
# The batch route when the journal's write lock is held by another process
# exactly when an API call comes back (issue 14: the worker waits at most
# 5 ms for it). The fact the API returned (an uploaded file, a created
# batch) must be kept and written once the lock is free, never taken as
# "not done" and done again: one upload and one remote batch per local
# batch, and every job exactly one result.
. "$SLUICE_ROOT/tests/lib/testlib.sh"
. "$SLUICE_ROOT/tests/lib/batchlib.sh"

# locked_case NAME FAULT READY_SQL: the call FAULT slows down (its answer
# trickles in over ~2 s, after the call took effect) is in flight once
# READY_SQL counts 1; then a second connection holds the write lock
# (BEGIN IMMEDIATE) for 3.5 s, over the answer's arrival.
locked_case() {
  local name=$1 fault=$2 ready=$3 i
  fresh_journal
  rm -f "$T/mock.log"
  # A mock of its own: fault sequence numbers count from its start.
  start_mock --batch-phase-ms 100 --log "$T/mock.log" --faults "$fault" ||
    { fail "$name: mock"; return; }
  enq_deferrable 20
  (work; echo "$WORK_RC" >"$T/rc") &
  local wpid=$!
  for i in $(seq 1 400); do
    [ "$(sql "$ready")" = 1 ] && break
    sleep 0.02
  done
  eq "$name: the call is in flight" 1 "$(sql "$ready")"
  # Inside the locked transaction: the journal still lacks the answer,
  # while the API has already acted on the call.
  printf '%s\n' "BEGIN IMMEDIATE;" ".shell sleep 3.5" \
    "SELECT count(*) FROM batches WHERE remote_batch_id IS NULL;" \
    "COMMIT;" | sqlite3 -cmd ".timeout 10000" "$SLUICE_JOURNAL" \
    >"$T/locked.out" 2>&1
  eq "$name: the lock was held over the answer" 1 "$(cat "$T/locked.out")"
  wait "$wpid"
  eq "$name: worker exits 0" 0 "$(cat "$T/rc")"
  eq "$name: every job succeeded through the batch" 20 \
    "$(sql "SELECT count(*) FROM results WHERE route = 'batch'")"
  eq "$name: one local batch, done" "1|done" \
    "$(sql "SELECT count(*), group_concat(DISTINCT state) FROM batches")"
  eq "$name: one upload" 1 "$(grep -c 'POST /v1/files ' "$T/mock.log")"
  eq "$name: one batch create" 1 \
    "$(grep -c 'POST /v1/batches ' "$T/mock.log")"
  eq "$name: exactly one remote batch for the local batch" 1 \
    "$(remote_count 1)"
  check_exactly_once "$name"
  stop_mock
}

# The create answers while the lock is held: the remote batch id waits in
# memory, and no second create is sent (issue 14's two-worker failure).
locked_case "create" "create:slow#1" \
  "SELECT count(*) FROM batches WHERE state = 'uploaded'"

# The upload answers while the lock is held: the file id waits in memory,
# and the file is not uploaded again.
locked_case "upload" "upload:slow#1" \
  "SELECT count(*) FROM batch_files WHERE kind = 'input' AND file_id IS NULL"

check "no crash in the logs" \
  sh -c "! grep -q 'AddressSanitizer\|runtime error' '$T/work.log'"
finish
