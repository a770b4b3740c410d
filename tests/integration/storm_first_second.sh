#!/usr/bin/env bash
# Storm control II (issue 12), the first second: until the first
# rate-limit headers arrive a route gets a small probe window, then opens
# up to what the headers allow. Four workers of concurrency 64 start
# together against a limit of 120 requests a minute (a full bucket of 120)
# with 140 jobs: sent all at once, 20 would get 429 (14%).
. "$(dirname "$0")/../lib/testlib.sh"

start_mock --rpm 120 --log "$T/mock.log" || { fail "mock starts"; finish; }
"$SLUICE" init >/dev/null
for i in $(seq 1 140); do
  printf '{"model":"gpt-4o-mini","input":"first %d","max_output_tokens":16}\n' "$i"
done | "$SLUICE" enqueue --max-attempts 20 >/dev/null
pids=()
for k in 1 2 3 4; do
  timeout 90 "$SLUICE" work --base-url "$MOCK_URL" --exit-when-idle \
    --no-batch --poll 100ms --concurrency 64 2>"$T/w$k.log" &
  pids+=($!)
  PIDS+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=$?; done
stop_mock
eq "workers exit 0" 0 "$rc"
eq "every job succeeded" 140 \
  "$(sql "SELECT count(*) FROM jobs WHERE state = 'succeeded'")"
n429=$(api_calls "$T/mock.log" | awk '$5 == 429' | wc -l)
check "at most 10 requests got 429 ($n429; all at once: 20)" \
  [ "$n429" -le 10 ]
echo "figures: 429 answers $n429 for 140 jobs"
finish
