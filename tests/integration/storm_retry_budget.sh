#!/usr/bin/env bash
# Storm control II (issue 12): the retry budget limits retries while
# requests fail, not retries as such.
#  (a) A restarted worker (no traffic history) against a healthy API: a
#      backlog made only of retries drains without being given back and
#      claimed again (the old budget let 10 retries a second through).
# (A total outage of 429s with no headers: storm_route.sh.)
. "$(dirname "$0")/../lib/testlib.sh"

# --- (a) a backlog of retries, a fresh worker, a healthy API
start_mock --log "$T/a.log" || { fail "mock starts"; finish; }
"$SLUICE" init >/dev/null
for i in $(seq 1 600); do
  printf '{"model":"gpt-4o-mini","input":"retry %d","max_output_tokens":16}\n' "$i"
done | "$SLUICE" enqueue --max-attempts 5 >/dev/null
# as a previous worker left them: one attempt spent, a 429 recorded, due
sql "UPDATE jobs SET attempts = 1, last_class = 'rate_limited',
     last_error = 'HTTP 429', run_after = 0" >/dev/null
t0=$(date +%s%3N)
timeout 60 "$SLUICE" work --base-url "$MOCK_URL" --exit-when-idle --no-batch \
  --poll 100ms --concurrency 32 2>"$T/a.w.log"
t1=$(date +%s%3N)
stop_mock
eq "(a) every retry succeeded" 600 \
  "$(sql "SELECT count(*) FROM jobs WHERE state = 'succeeded'")"
released=$(sed -n 's/.*released \([0-9]*\).*/\1/p' "$T/a.w.log" | tail -1)
check "(a) the budget gave (almost) nothing back: released ${released:-?} <= 32" \
  [ "${released:-99999}" -le 32 ]
check "(a) drained in a generous 30 s ($((t1 - t0)) ms)" [ $((t1 - t0)) -le 30000 ]

finish
