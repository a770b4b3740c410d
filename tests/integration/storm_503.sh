#!/usr/bin/env bash
# Storm control (b): a 503 outage opens the circuit breaker (shared through
# the journal, shown by `sluice status`), jobs are deferred without
# spending attempts, and half-open probes close it when the API is back.
. "$(dirname "$0")/../lib/testlib.sh"

# The outage lasts until the script lifts it (1 s after the breaker
# opened), not a fixed time from the mock's start: a loaded machine may
# start the workers after any fixed window.
start_mock --faults '503' --log "$T/mock.log" || { fail "mock starts"; finish; }
"$SLUICE" init >/dev/null
for i in $(seq 1 300); do
  printf '{"model":"gpt-4o-mini","input":"job %d","max_output_tokens":16}\n' "$i"
done | "$SLUICE" enqueue --max-attempts 3 >/dev/null
# two processes: the breaker is one row in the journal, shared by both
wpids=()
for k in 1 2; do
  timeout 120 "$SLUICE" work --base-url "$MOCK_URL" --exit-when-idle \
    --no-batch --poll 100ms --concurrency 8 --rpm 1200 \
    --backoff-base 200ms --backoff-cap 1s --breaker-min 5 \
    --breaker-window 2s --breaker-open 500ms --breaker-probes 2 \
    2>"$T/w$k.log" &
  wpids+=($!)
  PIDS+=($!)
done
if wait_for 10 sh -c "[ \"\$(sqlite3 '$SLUICE_JOURNAL' \"SELECT count(*) FROM breakers WHERE state <> 'closed'\" 2>/dev/null)\" = 1 ]"; then
  pass "the outage opened the breaker"
  "$SLUICE" status >"$T/status.txt" 2>&1
  check "sluice status shows the breaker" grep -Eq 'open' "$T/status.txt"
else
  fail "the outage opened the breaker"
fi
sleep 1
curl -s -o /dev/null -X PUT --data-binary '' "http://127.0.0.1:$MOCK_PORT/_mock/faults" ||
  fail "the mock takes the fault back"
rc=0
for p in "${wpids[@]}"; do wait "$p" || rc=$?; done
eq "workers exit 0" 0 "$rc"
stop_mock
eq "every job succeeded (no attempt spent while open)" 300 \
  "$(sql "SELECT count(*) FROM jobs WHERE state = 'succeeded'")"
eq "probes closed the breaker" closed "$(sql "SELECT state FROM breakers")"
check "a log line when it opened" grep -q 'breaker /v1/responses gpt-4o-mini: open' "$T/w1.log" "$T/w2.log"
# the route's own probe (route.h) may find the API back before the
# breaker's half-open period: either closed it
check "probes ran (half-open or the route's)" grep -Eq 'breaker /v1/responses gpt-4o-mini: half_open|route /v1/responses gpt-4o-mini: recovered' "$T/w1.log" "$T/w2.log"
n503=$(grep ' /v1/responses ' "$T/mock.log" | awk '$5 == 503' | wc -l)
trips=$(sql "SELECT trips FROM breakers")
# per process: 8 in flight when it trips and the minimum volume; then 2
# probes per reopening, for both processes together
check "the breaker kept the outage's requests bounded ($n503 503s, $trips trips)" \
  [ "$n503" -le $((2 * (5 + 8) + trips * 2)) ]
echo "figures: 503 answers $n503 for 300 jobs, trips $trips"
finish
