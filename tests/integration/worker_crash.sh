#!/usr/bin/env bash
# Invariant 3 with real processes: kill -9 workers at random moments, many
# times, then let a worker finish. Every job ends terminal exactly once,
# none has two results, and any request sent twice carried the same
# Idempotency-Key. Also: SIGTERM drains and exits 0.
. "$(dirname "$0")/../lib/testlib.sh"

JOBS=${CRASH_JOBS:-1500}
ROUNDS=${CRASH_ROUNDS:-12}
start_mock --latency-ms 200 --faults "500@0.05,reset@0.02" --seed 7 \
  --log "$T/mock.log"
"$SLUICE" init >/dev/null
for i in $(seq 1 "$JOBS"); do printf '{"model":"m","input":"crash %d"}\n' "$i"; done |
  "$SLUICE" enqueue -m 10 >/dev/null

wargs=(--base-url "$MOCK_URL" --lease 1s --poll 100ms --backoff-base 10ms
  --backoff-cap 100ms --concurrency 16)
RANDOM=42
for r in $(seq 1 "$ROUNDS"); do
  "$SLUICE" work "${wargs[@]}" 2>>"$T/worker.log" &
  a=$!
  "$SLUICE" work "${wargs[@]}" 2>>"$T/worker.log" &
  b=$!
  PIDS+=("$a" "$b")
  sleep "0.$((RANDOM % 6 + 1))"
  kill -9 "$a"
  sleep "0.0$((RANDOM % 9 + 1))"
  kill -9 "$b"
  { wait "$a" "$b"; } 2>/dev/null
done
running=$(sql "SELECT count(*) FROM jobs WHERE state='running'")
echo "after $ROUNDS kill rounds: $running jobs held by dead workers"
timeout 120 "$SLUICE" work "${wargs[@]}" --exit-when-idle 2>>"$T/worker.log"
eq "final worker exits 0" 0 $?
stop_mock

eq "every job terminal" 0 \
  "$(sql "SELECT count(*) FROM jobs WHERE state NOT IN ('succeeded','failed')")"
eq "no job lost" "$JOBS" "$(sql 'SELECT count(*) FROM jobs')"
eq "results == succeeded jobs" \
  "$(sql "SELECT count(*) FROM jobs WHERE state='succeeded'")" \
  "$(sql 'SELECT count(*) FROM results')"
eq "no result for an unsucceeded job" 0 \
  "$(sql "SELECT count(*) FROM results r JOIN jobs j ON j.id=r.job_id WHERE j.state<>'succeeded'")"
eq "integrity_check" ok "$(sql 'PRAGMA integrity_check')"
# Every request the server saw carried the key of a real job, and every
# succeeded job's key reached the server with a 200.
sql "SELECT idempotency_key FROM jobs" | sort >"$T/keys"
api_calls "$T/mock.log" | awk '{print $4}' | sort -u >"$T/sent"
eq "every request carried a job's Idempotency-Key" 0 \
  "$(comm -13 "$T/keys" "$T/sent" | wc -l)"
sql "SELECT idempotency_key FROM jobs WHERE state='succeeded'" | sort >"$T/ok"
api_calls "$T/mock.log" | awk '$5 == 200 {print $4}' | sort -u >"$T/ok_sent"
eq "each succeeded job was answered 200 under its own key" 0 \
  "$(comm -23 "$T/ok" "$T/ok_sent" | wc -l)"
dups=$(api_calls "$T/mock.log" | awk '$5 == 200 {print $4}' | sort | uniq -d | wc -l)
echo "requests answered 200 more than once (same key, after a kill): $dups"
lost=$(sql "SELECT count(*) FROM attempts WHERE route='rescue'")
if [ "$running" -eq 0 ] || [ "$lost" -gt 0 ]; then
  pass "attempts lost to kill -9 are recorded by rescue ($lost)"
else
  fail "attempts lost to kill -9 are recorded by rescue"
fi

# --- SIGTERM: stop claiming, finish what is in flight, release the rest
reset_journal
start_mock --latency-ms 1000 --log "$T/drain.log"
for i in $(seq 1 100); do printf '{"model":"m","input":"%d"}\n' "$i"; done |
  "$SLUICE" enqueue >/dev/null
"$SLUICE" work --base-url "$MOCK_URL" --concurrency 10 --drain-timeout 10s \
  --no-batch 2>"$T/drain.err" &
w=$!
PIDS+=("$w")
running_is() { [ "$(sql "SELECT count(*) FROM jobs WHERE state='running'")" = "$1" ]; }
# sent, not only claimed: a route's first window is a few requests until
# rate-limit headers come back (storm control, route.h)
mock_requests() {
  curl -s "http://127.0.0.1:$MOCK_PORT/_mock/stats" |
    sed -n 's/.*"requests":[ ]*\([0-9]*\).*/\1/p'
}
sent_is() { [ "$(mock_requests)" -ge "$1" ] 2>/dev/null; }
wait_for 30 sent_is 10
kill -TERM "$w"
wait "$w"
eq "SIGTERM: exit 0" 0 $?
n=$(mock_requests)
check "SIGTERM: the whole concurrency was in flight ($n sent)" [ "$n" -ge 10 ]
eq "SIGTERM: in-flight calls finished" "$n" "$(sql "SELECT count(*) FROM jobs WHERE state='succeeded'")"
eq "SIGTERM: nothing left running" 0 "$(sql "SELECT count(*) FROM jobs WHERE state='running'")"
eq "SIGTERM: the rest untouched" "$((100 - n))|0" \
  "$(sql "SELECT count(*), coalesce(sum(attempts),0) FROM jobs WHERE state='pending'")"

# drain timeout: the in-flight requests are cut off and given back
reset_journal
# 4 jobs: a route that never answers gets no more than its first window
for i in $(seq 1 4); do printf '{"model":"m","input":"%d"}\n' "$i"; done |
  "$SLUICE" enqueue >/dev/null
PUT_FAULTS() { curl -s -X PUT --data "$1" "http://127.0.0.1:$MOCK_PORT/_mock/faults" >/dev/null; }
PUT_FAULTS "hang@1"
base=$(mock_requests)
"$SLUICE" work --base-url "$MOCK_URL" --drain-timeout 300ms --no-batch \
  2>"$T/drain2.err" &
w=$!
PIDS+=("$w")
wait_for 30 sent_is $((base + 4))
sleep 0.2
kill -TERM "$w"
wait "$w"
eq "drain timeout: exit 0" 0 $?
eq "drain timeout: cut-off jobs are pending again" 4 \
  "$(sql "SELECT count(*) FROM jobs WHERE state='pending'")"
eq "drain timeout: a sent request counts as an ambiguous attempt" 4 \
  "$(sql "SELECT count(*) FROM attempts WHERE failure_class='ambiguous'")"
stop_mock
finish
