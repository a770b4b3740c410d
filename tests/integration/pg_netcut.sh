#!/usr/bin/env bash
# A cut network under a worker on a PostgreSQL journal (issue 15, "the
# loop never blocks on a dead socket"). The worker reaches the server
# through tests/helpers/tcp_relay; `kill -STOP` of the relay is a cut: the
# sockets stay open, the relay's kernel still takes bytes, nothing comes
# back, no RST, no FIN (so neither TCP keepalives nor tcp_user_timeout
# fire). The mock answers slowly, so requests are in flight at the cut.
# During the cut the worker's loop must keep turning: requests in flight
# finish and are logged ("succeeded", --log-level debug) while the relay
# is stopped, and the log says the connection was lost. After kill -CONT
# the worker reconnects; every job ends final with one result, each key is
# sent once (the lease outlives the cut), no password in any log.
# Blocking statements (main before this test) stand still from the first
# statement after the cut until the relay resumes: the first check fails.
# The loop's longest hold (its lag probe, sluice_loop_lag_max_seconds on
# the metrics endpoint) stays well under the answer bound (1 s): a
# statement unanswered after a few tens of ms is parked, the loop goes on,
# and the connection is dropped only once the bound passed (lib/pg
# exec.c). Before parking each cut held the loop for the whole bound.
. "$(dirname "$0")/../lib/testlib.sh"
. "$SLUICE_ROOT/tests/lib/pglib.sh"
pg_test_db netcut
q() { pg_psql -d netcut -c "$1"; }

# ms since the epoch, now or of a log line's "ts".
now_ms() { date +%s%3N; }
ts_ms() { date -d "$1" +%s%3N; }
# lines_between FILE PATTERN FROM TO: how many lines match PATTERN with a
# ts in [FROM, TO] (ms).
lines_between() {
  local n=0 ts t
  while IFS= read -r ts; do
    t=$(ts_ms "$ts") || continue
    [ "$t" -ge "$3" ] && [ "$t" -le "$4" ] && n=$((n + 1))
  done < <(grep -- "$2" "$1" | sed -n 's/^{"ts":"\([^"]*\)".*/\1/p')
  echo "$n"
}
pg_relay_start || finish
# The producer goes to the server directly; the worker through the relay.
DIRECT="postgresql://$PG_PW_ROLE:$PG_PW_PASSWORD@127.0.0.1:$PGPORT/netcut"
VIA="postgresql://$PG_PW_ROLE:$PG_PW_PASSWORD@127.0.0.1:$RELAY_PORT/netcut"

JOBS=${PG_NETCUT_JOBS:-40}
CUT_S=${PG_NETCUT_SECONDS:-6}
LATENCY_MS=3000
start_mock --latency-ms "$LATENCY_MS" --log "$T/mock.log"
for i in $(seq 1 "$JOBS"); do printf '{"model":"m","input":"cut %d"}\n' "$i"; done |
  SLUICE_JOURNAL="$DIRECT" "$SLUICE" enqueue -m 10 >/dev/null 2>"$T/enqueue.err"
eq "enqueued on PostgreSQL" "$JOBS" "$(q "SELECT count(*) FROM sluice.jobs")"
# The lease (30 s) outlives the cut: no job may be sent twice. Room for
# more than there is (--concurrency 64): a worker with spare capacity has
# nothing to do while the journal is away, and must sleep, not spin.
SLUICE_JOURNAL="$VIA" "$SLUICE" work --base-url "$MOCK_URL" --lease 30s \
  --poll 200ms --concurrency 64 --no-batch --spill-dir "$T/spill" \
  --metrics-port 0 --log-level debug 2>"$T/worker.log" &
WPID=$!
PIDS+=("$WPID")
wait_metrics "$T/worker.log"
# Cut while requests are in flight: each takes LATENCY_MS at the mock.
# Storm control sends a first few, and the rest once their answers told it
# the rate limits: wait for those answers, then for the rest to go out.
succeeded() { [ "$(grep -c 'succeeded: HTTP' "$T/worker.log")" -ge "$1" ]; }
running() { [ "$(q "SELECT count(*) FROM sluice.jobs WHERE state = 'running'")" -ge "$1" ]; }
wait_for 60 succeeded 1 || fail "the worker records outcomes before the cut"
wait_for 60 running $((JOBS / 2)) || fail "requests in flight before the cut"
sleep 0.5

# The worker's CPU time in ms (utime + stime, fields 14 and 15).
cpu_ms() {
  awk -v hz="$(getconf CLK_TCK)" '{print int(($14 + $15) * 1000 / hz)}' "/proc/$WPID/stat"
}
c0=$(cpu_ms)
kill -STOP "$RELAY_PID"
t0=$(now_ms)
sleep "$CUT_S"
t1=$(now_ms)
c1=$(cpu_ms)
kill -CONT "$RELAY_PID"
echo "cut for $((t1 - t0)) ms; the worker used $((c1 - c0)) ms of CPU meanwhile"
lag=$(loop_lag_max_ms "$MURL")
echo "the loop's longest hold up to the end of the cut: ${lag:-?} ms"
check "the loop was never held for long during the cut (parked, not waited)" \
  test "${lag:-99999}" -lt 500
# Waiting for the journal is no reason to spin (a loop that never sleeps
# would use the whole cut).
check "the worker did not spin during the cut" test $((c1 - c0)) -lt $(((t1 - t0) / 4))

# A request in flight at the cut finishes up to LATENCY_MS into it; the
# loop must handle it then, not after the cut (a blocking statement holds
# the loop from its first statement after t0 until t1).
during=$(lines_between "$T/worker.log" 'succeeded: HTTP' $((t0 + 1500)) "$t1")
echo "outcomes handled by the loop 1.5 s or more into the cut: $during"
check "the loop kept turning during the cut (requests in flight finished)" \
  test "$during" -ge 1
lost=$(lines_between "$T/worker.log" 'journal connection to .* lost' "$t0" "$t1")
check "the log said the connection was lost during the cut" test "$lost" -ge 1
check "... naming the silence" grep -q "no answer from the server for" "$T/worker.log"
# Said once, then every 5 s: not a line per held job per retry.
warns=$(grep -c '"level":"warn"' "$T/worker.log")
echo "warnings in the worker's log: $warns"
check "the loss does not flood the log" test "$warns" -le 30

# Back: every job final.
done_all() {
  [ "$(q "SELECT count(*) FROM sluice.jobs WHERE state NOT IN ('succeeded', 'failed')")" -eq 0 ]
}
wait_for 120 done_all
check "every job ends final after the cut" done_all
check "the worker said it reconnected" grep -q "journal reconnected after" "$T/worker.log"
check "outcomes kept through the cut were recorded after it" \
  grep -q "the journal takes outcomes again" "$T/worker.log"
kill -TERM "$WPID" 2>/dev/null
wait_for 30 bash -c "! kill -0 $WPID 2>/dev/null" || kill -9 "$WPID" 2>/dev/null
stop_mock

eq "every job succeeded" "$JOBS" \
  "$(q "SELECT count(*) FROM sluice.jobs WHERE state = 'succeeded'")"
eq "one result per job" "$JOBS|$JOBS" \
  "$(q "SELECT count(*), count(DISTINCT job_id) FROM sluice.results")"
eq "every succeeded job has exactly one successful attempt" 0 \
  "$(q "SELECT count(*) FROM sluice.jobs j WHERE state = 'succeeded' AND (SELECT count(*) FROM sluice.attempts a WHERE a.job_id = j.id AND a.failure_class IS NULL) <> 1")"
# Sent once each: the lease did not run out, so nothing allows a second.
q "SELECT idempotency_key FROM sluice.jobs" | sort >"$T/keys"
api_calls "$T/mock.log" | awk '{print $4}' | sort >"$T/sent_all"
eq "every job's key was sent" 0 "$(sort -u "$T/sent_all" | comm -23 "$T/keys" - | wc -l)"
eq "no request sent twice" 0 "$(uniq -d "$T/sent_all" | wc -l)"
check "the password never reaches a log line" \
  bash -c "! grep -q -- '$PG_PW_PASSWORD' '$T/worker.log' '$T/enqueue.err'"
[ -n "${PG_NETCUT_KEEP:-}" ] && cp "$T"/*.log "$PG_NETCUT_KEEP"/
finish
