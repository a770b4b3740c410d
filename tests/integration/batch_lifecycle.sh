#!/usr/bin/env bash
# The batch route end to end against sluice-mock: deferrable jobs go
# through one Batch API batch (upload, create with metadata, poll, stream
# the output), urgent ones and deferrable ones with a near deadline go
# online; `sluice status` shows an open batch with its remote status and
# counts; cancelling a batched job loses and doubles nothing.
. "$SLUICE_ROOT/tests/lib/testlib.sh"
. "$SLUICE_ROOT/tests/lib/batchlib.sh"

start_mock --batch-phase-ms 100 --log "$T/mock.log" || { fail "mock"; finish; }

# --- lifecycle -------------------------------------------------------------
fresh_journal
enq_deferrable 50
"$SLUICE" enqueue '{"model":"m","input":"urgent"}' >/dev/null
"$SLUICE" enqueue -u deferrable -d 10m '{"model":"m","input":"soon"}' >/dev/null
"$SLUICE" enqueue -u deferrable -e /v1/chat/completions \
  '{"model":"m","messages":[{"role":"user","content":"hi"}]}' >/dev/null
work
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
  "$(sql "SELECT count(*), group_concat(DISTINCT state), count(error)
    FROM batches")"
eq "lifecycle: batch results carry usage and a request id" 0 \
  "$(sql "SELECT count(*) FROM results WHERE route = 'batch' AND
    (total_tokens IS NULL OR request_id NOT LIKE 'req_%')")"
eq "lifecycle: one batch attempt per batched job" 51 \
  "$(sql "SELECT count(*) FROM attempts WHERE route = 'batch' AND
    failure_class IS NULL")"
eq "lifecycle: exactly one remote batch for local batch 1" 1 "$(remote_count 1)"
eq "lifecycle: exactly one remote batch for local batch 2" 1 "$(remote_count 2)"
eq "lifecycle: remote batch is the recorded one" \
  "$(sql "SELECT remote_batch_id FROM batches WHERE id = 1")" \
  "$(sqlite3 :memory: "SELECT json_extract(value, '\$.id') FROM
    json_each(readfile('$T/batches.json'), '\$.data') WHERE
    json_extract(value, '\$.metadata.sluice_batch') = '1'")"
eq "lifecycle: completion window 24h" 24h \
  "$(sqlite3 :memory: "SELECT json_extract(value, '\$.completion_window')
    FROM json_each(readfile('$T/batches.json'), '\$.data') LIMIT 1")"
eq "lifecycle: two uploads (one per batch)" 2 \
  "$(grep -c 'POST /v1/files ' "$T/mock.log")"
check_exactly_once lifecycle
# A failed fetch leaves text that is not JSON: the count below then fails
# instead of reading no file as "all deleted".
rm -f "$T/files.json"
curl -fsS -m 5 "$MOCK_URL/files?purpose=batch&limit=100" -o "$T/files.json" ||
  echo "fetch failed" >"$T/files.json"
eq "lifecycle: the input files were deleted once done" 0 \
  "$(sqlite3 :memory: "SELECT count(*) FROM json_each(readfile(
    '$T/files.json'), '\$.data') WHERE json_extract(value, '\$.filename')
    LIKE 'sluice-$(journal_id)-b%'")"
eq "lifecycle: input, output (x2) deleted" 4 \
  "$(grep -c 'DELETE /v1/files/' "$T/mock.log")"

# --- status and cancel while a batch is open --------------------------------
fresh_journal
put_faults batch_stuck
enq_deferrable 20
timeout 60 "$SLUICE" work --base-url "$MOCK_URL" --batch-max-wait 300ms \
  --batch-poll 100ms --exit-when-idle 2>>"$T/work.log" &
WPID=$!
PIDS+=("$WPID")
wait_for 20 sh -c "[ \"\$(sqlite3 -cmd '.timeout 5000' '$SLUICE_JOURNAL' \
  \"SELECT remote_status FROM batches WHERE id = 1\")\" = finalizing ]"
eq "status: the batch is held in finalizing" finalizing \
  "$(sql "SELECT remote_status FROM batches WHERE id = 1")"
"$SLUICE" status >"$T/status.out" 2>&1
check "status: shows the open batch with its remote status" \
  grep -q "finalizing" "$T/status.out"
check "status: shows the remote batch id" \
  grep -q "$(sql "SELECT remote_batch_id FROM batches WHERE id = 1")" \
  "$T/status.out"
check "status: shows request counts" grep -q "20/20" "$T/status.out"
"$SLUICE" cancel 3 >/dev/null 2>&1
eq "cancel: a batched job can be cancelled" cancelled \
  "$(sql "SELECT state FROM jobs WHERE id = 3")"
put_faults ""
wait "$WPID"
eq "cancel: worker exits 0" 0 "$?"
eq "cancel: the cancelled job stays cancelled, without a result" "cancelled|0" \
  "$(sql "SELECT state, (SELECT count(*) FROM results WHERE job_id = 3)
    FROM jobs WHERE id = 3")"
eq "cancel: the other 19 succeeded through the batch" 19 \
  "$(sql "SELECT count(*) FROM results WHERE route = 'batch'")"
check "cancel: its output line was skipped, not recorded" \
  grep -q '1 already settled' "$T/work.log"
check_exactly_once cancel

# --- two workers on one journal ---------------------------------------------------
# Packing is one transaction, so each job lands in one batch; each worker
# drives its own batches and leaves the other's alone (batch leases).
fresh_journal
enq_deferrable 200
"$SLUICE" enqueue -u deferrable -e /v1/embeddings \
  '{"model":"text-embedding-3-small","input":"x"}' >/dev/null
work --batch-max-lines 40 &
w1=$!
work --batch-max-lines 40 &
w2=$!
wait "$w1"
r1=$?
wait "$w2"
eq "two workers: both exit 0" "0 0" "$r1 $?"
eq "two workers: every job succeeded through a batch" 201 \
  "$(sql "SELECT count(*) FROM results WHERE route = 'batch'")"
eq "two workers: batches of at most 40 lines, all done" "0|done" \
  "$(sql "SELECT sum(request_count > 40), group_concat(DISTINCT state)
    FROM batches")"
list_remote
eq "two workers: one remote batch per local batch" 0 \
  "$(sqlite3 :memory: "SELECT count(*) FROM (SELECT json_extract(value,
    '\$.metadata.sluice_batch') AS b, count(*) AS n FROM
    json_each(readfile('$T/batches.json'), '\$.data') WHERE
    json_extract(value, '\$.metadata.sluice_journal') = '$(journal_id)'
    GROUP BY b) WHERE n <> 1")"
eq "two workers: as many remote batches as local ones" \
  "$(sql "SELECT count(*) FROM batches")" \
  "$(sqlite3 :memory: "SELECT count(*) FROM json_each(readfile(
    '$T/batches.json'), '\$.data') WHERE json_extract(value,
    '\$.metadata.sluice_journal') = '$(journal_id)'")"
check_exactly_once "two workers"

check "no API key or crash in the logs" \
  sh -c "! grep -q 'AddressSanitizer\|runtime error' '$T/work.log'"
stop_mock
finish
