#!/usr/bin/env bash
# Pacing under the Batch API's enqueued-token limit (issue 11): sluice-mock
# refuses a batch (failed, token_limit_exceeded) when its model's open
# batches would pass --batch-token-limit. With the limit configured the
# route keeps its open batches under it and nothing is refused; without,
# it learns the limit from the first refusal and is refused no more. A
# refused batch's jobs spend no attempt.
. "$SLUICE_ROOT/tests/lib/testlib.sh"
. "$SLUICE_ROOT/tests/lib/batchlib.sh"

# 60 jobs in files of 10 (about 265 mock tokens, 350 estimated each).
# run_case NAME MOCK-LIMIT WORKER-ARGS...
run_case() {
  local name=$1 limit=$2
  shift 2
  [ -n "${MOCK_PID:-}" ] && stop_mock
  : >"$T/work.log"
  # Both cases need a file sent while others are still open at the mock
  # (a refusal to learn from, a wait for room): with 100 ms phases a batch
  # lived ~0.3 s, less than a loaded worker (ASan) took to pack, upload and
  # create the next file, so nothing overlapped and "learned: one batch
  # refused" got 0. 500 ms phases: ~1.5 s each.
  start_mock --batch-phase-ms 500 --batch-token-limit "$limit" \
    --log "$T/mock.$name.log" || { fail "$name: mock"; return 1; }
  fresh_journal
  enq_deferrable 60
  work --batch-max-lines 10 "$@"
  eq "$name: worker exits 0" 0 "$WORK_RC"
  eq "$name: every job succeeded" 60 \
    "$(sql "SELECT count(*) FROM jobs WHERE state = 'succeeded'")"
  check_exactly_once "$name"
}

# A limit of 600 holds two files at a time, never three.
run_case configured 600 --batch-token-limit gpt-4o-mini=700
eq "configured: no batch refused" 0 "$(mock_stat token_refusals)"
check "configured: batches waited for room" \
  grep -q 'waits for room under the enqueued-token limit' "$T/work.log"
eq "configured: one attempt per job" 60 \
  "$(sql "SELECT count(*) FROM jobs WHERE attempts = 1")"
eq "configured: the limit is on record" "700|config" \
  "$(sql "SELECT limit_tokens, source FROM batch_token_limits WHERE
    model = 'gpt-4o-mini'")"

# A limit of 400 holds one file: the second is refused, which teaches the
# limit; from then on one file at a time, and no more refusals.
run_case learned 400
eq "learned: one batch refused" 1 "$(mock_stat token_refusals)"
eq "learned: the limit was learned from the message" "400|learned" \
  "$(sql "SELECT limit_tokens, source FROM batch_token_limits WHERE
    model = 'gpt-4o-mini'")"
eq "learned: refused jobs spent no attempt" 60 \
  "$(sql "SELECT count(*) FROM jobs WHERE attempts = 1")"
# The config file takes the same key.
fresh_journal
printf '[work]\nbatch-token-limit = gpt-4o=5000,gpt-4o-mini=900\n' >"$T/sluice.conf"
work --config "$T/sluice.conf"
eq "config: worker exits 0" 0 "$WORK_RC"
eq "config: both limits on record" "gpt-4o|5000|config,gpt-4o-mini|900|config" \
  "$(sql "SELECT group_concat(model || '|' || limit_tokens || '|' || source,
    ',') FROM (SELECT * FROM batch_token_limits ORDER BY model)")"
"$SLUICE" work --batch-token-limit 'gpt-4o' --exit-when-idle \
  2>"$T/bad.err"
eq "config: a bad limit is a usage error" 2 "$?"
check "config: it says what it wants" grep -q 'MODEL=TOKENS' "$T/bad.err"
stop_mock
finish
