#!/usr/bin/env bash
# Storm control (c): four `sluice work` processes share one RPM limit that
# they learn from the mock's x-ratelimit-* headers. The mock enforces it;
# after the initial full bucket, the processes together send no more than
# 5% above the limit, and fewer than 1% of all requests get a 429.
. "$(dirname "$0")/../lib/testlib.sh"

RPM=3000            # 50 requests/s; the mock's bucket starts full (3000)
JOBS=3600           # the full bucket, then ~12 s at the limit
start_mock --rpm $RPM --log "$T/mock.log" || { fail "mock starts"; finish; }
"$SLUICE" init >/dev/null
for i in $(seq 1 $JOBS); do
  printf '{"model":"gpt-4o-mini","input":"job %d","max_output_tokens":16}\n' "$i"
done | "$SLUICE" enqueue >/dev/null
pids=()
for k in 1 2 3 4; do
  timeout 120 "$SLUICE" work --base-url "$MOCK_URL" --exit-when-idle --no-batch \
    --poll 100ms --concurrency 32 2>"$T/w$k.log" &
  pids+=($!)
  PIDS+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=$?; done
eq "four workers exit 0" 0 "$rc"
stop_mock
eq "every job succeeded" $JOBS \
  "$(sql "SELECT count(*) FROM jobs WHERE state = 'succeeded'")"
eq "the limit was learned from the headers" "$RPM.0" \
  "$(sql "SELECT rpm FROM rate_buckets")"

grep ' /v1/responses ' "$T/mock.log" >"$T/resp.log"
total=$(wc -l <"$T/resp.log")
n429=$(awk '$5 == 429' "$T/resp.log" | wc -l)
check "fewer than 1% of requests got 429 ($n429 of $total)" \
  [ $((n429 * 100)) -lt "$total" ]
# After the first 2 s (the full bucket is spent by then), every 2 s window
# holds at most 5% above the limit's rate (+2: a window edge).
t0=$(head -1 "$T/resp.log" | awk '{print $1}')
worst=$(awk -v t0="$t0" '{ s = int(($1 - t0) / 2000); if (s >= 1) c[s]++ }
  END { m = 0; for (k in c) if (c[k] > m) m = c[k]; print m }' "$T/resp.log")
limit2s=$((RPM * 2 / 60))
check "no 2 s window after the burst above limit + 5% ($worst <= $((limit2s * 105 / 100 + 2)))" \
  [ "$worst" -le $((limit2s * 105 / 100 + 2)) ]
echo "figures: requests $total, 429 $n429, busiest 2 s window $worst of $limit2s"
finish
