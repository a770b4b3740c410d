#!/usr/bin/env bash
# Fault matrix of the Batch API (issue 11): every call the batch route makes
# (upload, create, poll, list, listfiles, content, delete) x {connection
# dropped before the headers after the call took effect, reset after the
# headers, 500, truncated body, non-JSON body, no answer until the timeout
# after the call took effect}, on its first two occurrences. Each case:
# every job succeeds exactly once, each local batch has at most one remote
# batch, no request is in two remote batches, and no file is left behind.
. "$SLUICE_ROOT/tests/lib/testlib.sh"
. "$SLUICE_ROOT/tests/lib/batchlib.sh"

CALLS=${MATRIX_CALLS:-"upload create poll list listfiles content delete"}
FAULTS=${MATRIX_FAULTS:-"drop reset 500 truncate nonjson hangafter"}
N=6

for call in $CALLS; do
  for fault in $FAULTS; do
    c="$call×$fault"
    [ -n "${MOCK_PID:-}" ] && stop_mock
    : >"$T/work.log"
    start_mock --batch-phase-ms 50 --log "$T/mock.log" \
      --faults "$call:$fault#1-2" || { fail "$c: mock"; continue; }
    fresh_journal
    enq_deferrable "$N"
    work --timeout 1s
    eq "$c: worker exits 0" 0 "$WORK_RC"
    eq "$c: every job succeeded" "$N" \
      "$(sql "SELECT count(*) FROM jobs WHERE state = 'succeeded'")"
    check_exactly_once "$c"
    list_remote
    eq "$c: at most one remote batch per local batch" 0 \
      "$(sqlite3 :memory: "SELECT count(*) FROM (SELECT 1 FROM
        json_each(readfile('$T/batches.json'), '\$.data') GROUP BY
        json_extract(value, '\$.metadata.sluice_batch') HAVING count(*) > 1)")"
    eq "$c: no request in two remote batches" 0 \
      "$(mock_stat duplicate_custom_ids)"
    eq "$c: every request sent once" "$N" "$(mock_stat batched_requests)"
    eq "$c: no file left on the API" 0 "$(files_left)"
  done
done
stop_mock
finish
