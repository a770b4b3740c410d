#!/usr/bin/env bash
# Storm control (a): the API answers 429 to everything for a stretch, then
# recovers. During the stretch the workers send at most 1.1 requests per
# job they attempt (plus the probes after each block); afterwards they
# climb back to the full limit and every job succeeds.
. "$(dirname "$0")/../lib/testlib.sh"

"$SLUICE" init >/dev/null
for i in $(seq 1 250); do
  printf '{"model":"gpt-4o-mini","input":"job %d","max_output_tokens":16}\n' "$i"
done | "$SLUICE" enqueue --max-attempts 20 >/dev/null
# 100% 429 (Retry-After 1 s) for 4 s from the first 429 the workers meet;
# the script lifts it. (It was the first 4 s of the mock's life: a loaded
# machine may start the workers after any fixed window, and then the storm
# was over before they sent anything.)
start_mock --rpm 1200 --faults '429' --log "$T/mock.log" ||
  { fail "mock starts"; finish; }
pids=()
for k in 1 2; do
  timeout 120 "$SLUICE" work --base-url "$MOCK_URL" --exit-when-idle --no-batch \
    --poll 100ms --concurrency 16 --backoff-base 100ms --backoff-cap 2s \
    --recover-rate 0.5 2>"$T/w$k.log" &
  pids+=($!)
  PIDS+=($!)
done
met() { grep ' /v1/responses ' "$T/mock.log" 2>/dev/null | awk '$5 == 429' | grep -q .; }
check "the workers meet the storm" wait_for 60 met
sleep 4
curl -s -o /dev/null -X PUT --data-binary '' "http://127.0.0.1:$MOCK_PORT/_mock/faults" ||
  fail "the mock takes the fault back"
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=$?; done
eq "workers exit 0" 0 "$rc"
stop_mock
eq "every job succeeded" 250 \
  "$(sql "SELECT count(*) FROM jobs WHERE state = 'succeeded'")"

grep ' /v1/responses ' "$T/mock.log" >"$T/resp.log"
sent=$(awk '$5 == 429' "$T/resp.log" | wc -l)
jobs=$(awk '$5 == 429 { print $4 }' "$T/resp.log" | sort -u | wc -l)
cuts=$(sql "SELECT cuts FROM rate_buckets")
# probes: after each block one grant per worker goes out to test the water
probes=$((cuts * 2))
check "storm: requests sent <= 1.1 x jobs attempted + probes ($sent <= 1.1 x $jobs + $probes)" \
  [ $((sent * 10)) -le $((jobs * 11 + probes * 10)) ]
check "the rate was cut during the storm (cuts $cuts)" [ "$cuts" -ge 1 ]
eq "afterwards the workers climbed back to the full limit" 1.0 \
  "$(sql "SELECT factor FROM rate_buckets")"
eq "no attempt failed for good" 0 \
  "$(sql "SELECT count(*) FROM jobs WHERE state = 'failed'")"
echo "figures: storm requests $sent for $jobs jobs (amplification $(awk -v a="$sent" -v b="$jobs" 'BEGIN{printf "%.2f", b ? a/b : 0}')), cuts $cuts"
finish
