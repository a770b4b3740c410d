#!/usr/bin/env bash
# sluice enqueue + sluice work on a PostgreSQL journal (lib/pg/) against
# the mock, with workers killed by -9 mid-run, then one worker finishing:
# every job ends with exactly one outcome (succeeded with one result, or
# failed), none is lost, no result belongs to an unsucceeded job, and the
# password of the journal's URI never reaches a log line.
. "$(dirname "$0")/../lib/testlib.sh"
. "$SLUICE_ROOT/tests/lib/pglib.sh"
pg_test_db crash
export SLUICE_JOURNAL="postgresql://$PG_PW_ROLE:$PG_PW_PASSWORD@127.0.0.1:$PGPORT/crash"
q() { pg_psql -d crash -c "$1"; }

JOBS=${CRASH_JOBS:-400}
ROUNDS=${CRASH_ROUNDS:-4}
start_mock --latency-ms 100 --faults "500@0.05,reset@0.02" --seed 7 \
  --log "$T/mock.log"
for i in $(seq 1 "$JOBS"); do printf '{"model":"m","input":"crash %d"}\n' "$i"; done |
  "$SLUICE" enqueue -m 10 >/dev/null 2>"$T/enqueue.err"
eq "enqueued on PostgreSQL" "$JOBS" "$(q "SELECT count(*) FROM sluice.jobs")"

wargs=(--base-url "$MOCK_URL" --lease 1s --poll 100ms --backoff-base 10ms
  --backoff-cap 100ms --concurrency 16 --no-batch --spill-dir "$T/spill")
done_now() {
  q "SELECT count(*) FROM sluice.jobs WHERE state IN ('succeeded', 'failed')"
}
more_done() { [ "$(done_now)" -gt "$d0" ]; }
# Each round kills mid-run: once the pair has committed an outcome (a
# loaded machine may take seconds to start them), a random moment later.
RANDOM=42
for r in $(seq 1 "$ROUNDS"); do
  d0=$(done_now)
  "$SLUICE" work "${wargs[@]}" 2>>"$T/worker.log" &
  a=$!
  "$SLUICE" work "${wargs[@]}" 2>>"$T/worker.log" &
  b=$!
  PIDS+=("$a" "$b")
  wait_for 30 more_done || true
  sleep "0.$((RANDOM % 9))"
  kill -9 "$a"
  sleep "0.0$((RANDOM % 9 + 1))"
  kill -9 "$b"
  { wait "$a" "$b"; } 2>/dev/null
done
running=$(q "SELECT count(*) FROM sluice.jobs WHERE state = 'running'")
done_before=$(q "SELECT count(*) FROM sluice.jobs WHERE state IN ('succeeded', 'failed')")
echo "after $ROUNDS kill rounds: $done_before done, $running held by dead workers"
check "the killed workers got work done" test "$done_before" -gt 0
timeout 120 "$SLUICE" work "${wargs[@]}" --exit-when-idle 2>>"$T/worker.log"
eq "final worker exits 0" 0 $?
stop_mock

eq "every job terminal" 0 \
  "$(q "SELECT count(*) FROM sluice.jobs WHERE state NOT IN ('succeeded', 'failed')")"
eq "no job lost" "$JOBS" "$(q "SELECT count(*) FROM sluice.jobs")"
eq "results == succeeded jobs" \
  "$(q "SELECT count(*) FROM sluice.jobs WHERE state = 'succeeded'")" \
  "$(q "SELECT count(*) FROM sluice.results")"
eq "no result for an unsucceeded job" 0 \
  "$(q "SELECT count(*) FROM sluice.results r JOIN sluice.jobs j ON j.id = r.job_id WHERE j.state <> 'succeeded'")"
eq "every succeeded job has a succeeded attempt" 0 \
  "$(q "SELECT count(*) FROM sluice.jobs j WHERE state = 'succeeded' AND NOT EXISTS (SELECT 1 FROM sluice.attempts a WHERE a.job_id = j.id AND a.failure_class IS NULL)")"
q "SELECT idempotency_key FROM sluice.jobs" | sort >"$T/keys"
api_calls "$T/mock.log" | awk '{print $4}' | sort -u >"$T/sent"
eq "every request carried a job's Idempotency-Key" 0 \
  "$(comm -13 "$T/keys" "$T/sent" | wc -l)"
q "SELECT idempotency_key FROM sluice.jobs WHERE state = 'succeeded'" | sort >"$T/ok"
api_calls "$T/mock.log" | awk '$5 == 200 {print $4}' | sort -u >"$T/ok_sent"
eq "each succeeded job was answered 200 under its own key" 0 \
  "$(comm -23 "$T/ok" "$T/ok_sent" | wc -l)"
lost=$(q "SELECT count(*) FROM sluice.attempts WHERE route = 'rescue'")
if [ "$running" -eq 0 ] || [ "$lost" -gt 0 ]; then
  pass "attempts lost to kill -9 are recorded by rescue ($lost)"
else
  fail "attempts lost to kill -9 are recorded by rescue" "$running held, none rescued"
fi
check "the password never reaches a log line" \
  bash -c "! grep -q -- '$PG_PW_PASSWORD' '$T/worker.log' '$T/enqueue.err'"
check "shared limit rows read and written without error" \
  bash -c "! grep -q -e 'cannot update its limit' -e 'cannot record' -e 'cannot read budgets' -e 'failed:' '$T/worker.log'"
check "the route's adaptive limit row is shared in sluice.route_limits" \
  test "$(q "SELECT count(*) FROM sluice.route_limits WHERE endpoint = '/v1/responses' AND model = 'm'")" -ge 1
check "no op was missing on PostgreSQL" \
  bash -c "! grep -q 'not built for PostgreSQL' '$T/worker.log'"
finish
