#!/usr/bin/env bash
# Batch files obey every Batch API limit (issue 11): one endpoint and one
# model per file, at most 50,000 embedding inputs, at most --batch-max-bytes;
# a job too large for any file fails too_large at packing, alone.
. "$SLUICE_ROOT/tests/lib/testlib.sh"
. "$SLUICE_ROOT/tests/lib/batchlib.sh"

start_mock --batch-phase-ms 100 --log "$T/mock.log" || { fail "mock"; finish; }

# --- one model per file ---------------------------------------------------------
fresh_journal
enq_deferrable 10
"$SLUICE" enqueue -u deferrable '{"model":"gpt-4o","input":"other model"}' \
  >/dev/null
work
eq "models: worker exits 0" 0 "$WORK_RC"
eq "models: all 11 succeeded" 11 \
  "$(sql "SELECT count(*) FROM jobs WHERE state = 'succeeded'")"
eq "models: one batch per model" "2|0" \
  "$(sql "SELECT count(*), (SELECT count(*) FROM (SELECT batch_id FROM jobs
    GROUP BY batch_id HAVING count(DISTINCT model) > 1)) FROM batches")"
check_exactly_once models

# --- 50,000 embedding inputs per file --------------------------------------------
# 30 jobs of 2,000 inputs: 60,000 inputs, so two files (25 + 5 jobs); one
# job of 50,001 inputs fits no file and fails too_large without a batch.
fresh_journal
for i in $(seq 1 30); do
  printf '{"model":"text-embedding-3-small","input":[%s"x"]}\n' \
    "$(printf '"x",%.0s' $(seq 1 1999))"
done | "$SLUICE" enqueue -u deferrable -e /v1/embeddings >/dev/null
printf '{"model":"text-embedding-3-small","input":[%s"x"]}\n' \
  "$(printf '"x",%.0s' $(seq 1 50000))" |
  "$SLUICE" enqueue -u deferrable -e /v1/embeddings >/dev/null
work
eq "inputs: worker exits 0" 0 "$WORK_RC"
eq "inputs: the 30 jobs succeeded in two files" "30|2" \
  "$(sql "SELECT count(*), count(DISTINCT batch_id) FROM jobs WHERE
    state = 'succeeded'")"
eq "inputs: no file over 50,000 inputs" 0 \
  "$(sql "SELECT count(*) FROM (SELECT batch_id FROM jobs WHERE batch_id IS
    NOT NULL GROUP BY batch_id HAVING
    sum(json_array_length(body, '\$.input')) > 50000)")"
eq "inputs: the 50,001-input job failed too_large, never batched" \
  "failed|too_large||0" \
  "$(sql "SELECT state, last_class, batch_id, (SELECT count(*) FROM attempts
    WHERE job_id = 31) FROM jobs WHERE id = 31")"
check "inputs: its error says why" \
  test -n "$(sql "SELECT 1 FROM jobs WHERE id = 31 AND last_error LIKE
    '%50001 embedding inputs%'")"
check "inputs: no upload was refused" \
  test "$(grep -c 'POST /v1/files - 400' "$T/mock.log")" -eq 0
check_exactly_once inputs

# --- bytes per file ------------------------------------------------------------------
fresh_journal
enq_deferrable 4
"$SLUICE" enqueue -u deferrable \
  "{\"model\":\"gpt-4o-mini\",\"input\":\"$(head -c 3000 /dev/zero | tr '\0' y)\"}" \
  >/dev/null
work --batch-max-bytes 2000
eq "bytes: worker exits 0" 0 "$WORK_RC"
eq "bytes: the big job failed too_large" "failed|too_large" \
  "$(sql "SELECT state, last_class FROM jobs WHERE id = 5")"
eq "bytes: the others succeeded" 4 \
  "$(sql "SELECT count(*) FROM jobs WHERE state = 'succeeded'")"
stop_mock
finish
