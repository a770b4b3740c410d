#!/usr/bin/env bash
# A queue's daily token budget spent by the batch route alone (issue 12):
# the tokens of batch results count toward it, and once it is spent no new
# batch is packed for that queue (nor is anything sent online), while
# another queue's deferrable jobs still go; raising the budget lets the
# held jobs go.
. "$(dirname "$0")/../lib/testlib.sh"

start_mock --batch-phase-ms 100 --log "$T/mock.log" ||
  { fail "mock starts"; finish; }
"$SLUICE" init >/dev/null
"$SLUICE" budget bulk --tokens-per-day 40 >/dev/null
for i in 1 2 3 4 5; do
  printf '{"model":"gpt-4o-mini","input":"first %d","max_output_tokens":16}\n' "$i"
done | "$SLUICE" enqueue -q bulk -u deferrable >/dev/null
timeout 90 "$SLUICE" work --base-url "$MOCK_URL" --poll 100ms \
  --batch-max-wait 300ms --batch-poll 100ms 2>"$T/w.log" &
wpid=$!
PIDS+=($wpid)
first_done() {
  [ "$(sql "SELECT count(*) FROM jobs WHERE state = 'succeeded'")" = 5 ]
}
check "the first batch runs within the budget" wait_for 30 first_done
spent=$(sql "SELECT total_tokens FROM usage_daily WHERE queue = 'bulk'")
check "its results' tokens count toward the budget (${spent:-0} of 40)" \
  [ "${spent:-0}" -ge 40 ]
bpaused() {
  [ "$(sql "SELECT online_paused FROM queue_limits WHERE queue = 'bulk'")" = 1 ]
}
check "the spent budget holds the queue" wait_for 5 bpaused
check "the reason names the budget" grep -q '^budget' \
  <<<"$(sql "SELECT online_paused_reason FROM queue_limits WHERE queue = 'bulk'")"

# more deferrable work for the spent queue, and for a queue without a budget
for i in 1 2 3 4 5; do
  printf '{"model":"gpt-4o-mini","input":"later %d","max_output_tokens":16}\n' "$i"
done | "$SLUICE" enqueue -q bulk -u deferrable >/dev/null
for i in 1 2 3; do
  printf '{"model":"gpt-4o-mini","input":"other %d","max_output_tokens":16}\n' "$i"
done | "$SLUICE" enqueue -q other -u deferrable >/dev/null
other_done() {
  [ "$(sql "SELECT count(*) FROM jobs WHERE queue = 'other' AND state = 'succeeded'")" = 3 ]
}
check "another queue's deferrable jobs still go" wait_for 30 other_done
eq "the spent queue's new jobs were neither batched nor sent" "5|0|0" \
  "$(sql "SELECT count(*), count(batch_id), sum(attempts) FROM jobs
          WHERE queue = 'bulk' AND state = 'pending'")"
batches=$(sql "SELECT count(*) FROM batches")
"$SLUICE" budget bulk --tokens-per-day 100000000 >/dev/null
all_done() {
  [ "$(sql "SELECT count(*) FROM jobs WHERE state = 'succeeded'")" = 13 ]
}
check "a raised budget lets them go" wait_for 30 all_done
check "through a batch of their own" \
  [ "$(sql "SELECT count(*) FROM batches")" -gt "$batches" ]
eq "none went online" 0 \
  "$(sql "SELECT count(*) FROM attempts WHERE route = 'online'")"
kill -TERM $wpid
wait $wpid
eq "the worker exits 0 on SIGTERM" 0 $?
stop_mock
finish
