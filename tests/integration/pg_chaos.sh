#!/usr/bin/env bash
# Chaos on a PostgreSQL journal (issue 15, "Connection loss"): three
# workers against the mock, kill -9 rounds, and in the middle the server
# restarted twice (pg_ctl restart -m fast, then -m immediate) under the
# workers that survive it; a last restart with no kill after it, and more
# jobs, which those workers must finish. Then the invariants of chaos.sh: every job
# final, exactly one result per succeeded job, no job sent more often than
# it was claimed (a send needs a claim: only an expired lease allows a
# second), the workers said they lost and regained the journal, and the
# password of the journal's URI reached no log line.
. "$(dirname "$0")/../lib/testlib.sh"
. "$SLUICE_ROOT/tests/lib/pglib.sh"
pg_test_db chaos
export SLUICE_JOURNAL="postgresql://$PG_PW_ROLE:$PG_PW_PASSWORD@127.0.0.1:$PGPORT/chaos"
q() { pg_psql -d chaos -c "$1"; }
# pg_restart MODE: restart the server in place (same port), bounded.
pg_restart() {
  pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" \
    -m "$1" -w -t 60 restart \
    >>"$T/pg_ctl.log" 2>&1
}

JOBS=${PG_CHAOS_JOBS:-400}
ROUNDS=${PG_CHAOS_ROUNDS:-8}
WORKERS=3
RANDOM=${PG_CHAOS_SEED:-4321}
echo "pg_chaos: $JOBS jobs, $ROUNDS kill rounds, $WORKERS workers, restarts" \
  "(fast, immediate) at rounds $((ROUNDS / 3)) and $((2 * ROUNDS / 3))"

# Slow answers and few requests at once: the work must outlast the rounds.
start_mock --latency-ms 300 --faults "500@0.03,reset@0.01" --seed 5 \
  --log "$T/mock.log"
for i in $(seq 1 "$JOBS"); do printf '{"model":"m","input":"chaos %d"}\n' "$i"; done |
  "$SLUICE" enqueue -m 10 >/dev/null 2>"$T/enqueue.err"
eq "enqueued on PostgreSQL" "$JOBS" "$(q "SELECT count(*) FROM sluice.jobs")"

wargs=(--base-url "$MOCK_URL" --lease 3s --poll 100ms --backoff-base 10ms
  --backoff-cap 100ms --concurrency 4 --no-batch --spill-dir "$T/spill")
declare -a W
for k in $(seq 1 $WORKERS); do
  "$SLUICE" work "${wargs[@]}" 2>>"$T/worker.$k.log" &
  W[$k]=$!
  PIDS+=("${W[$k]}")
done
kills=0
restarts=0
for r in $(seq 1 "$ROUNDS"); do
  sleep "0.$((RANDOM % 6 + 4))"
  if [ "$r" -eq $((ROUNDS / 3)) ] || [ "$r" -eq $((2 * ROUNDS / 3)) ]; then
    mode=fast
    [ "$r" -eq $((2 * ROUNDS / 3)) ] && mode=immediate
    # Requests in flight across the restart (bounded wait).
    for _ in $(seq 1 50); do
      [ "$(q "SELECT count(*) FROM sluice.jobs WHERE state = 'running'")" -gt 0 ] && break
      sleep 0.2
    done
    before=$(q "SELECT count(*) FROM sluice.jobs WHERE state IN ('succeeded', 'failed')")
    if pg_restart "$mode"; then
      restarts=$((restarts + 1))
      echo "round $r: server restarted ($mode) with $before jobs final"
    else
      fail "pg_ctl restart -m $mode" "$(tail -n 5 "$T/pg_ctl.log")"
    fi
    continue
  fi
  k=$((RANDOM % WORKERS + 1))
  kill -9 "${W[$k]}" 2>/dev/null && kills=$((kills + 1))
  { wait "${W[$k]}"; } 2>/dev/null
  "$SLUICE" work "${wargs[@]}" 2>>"$T/worker.$k.log" &
  W[$k]=$!
  PIDS+=("${W[$k]}")
done
eq "the server was restarted twice under the workers" 2 "$restarts"
# A last restart with no kill after it, then more jobs from a producer:
# the workers that live through it must finish everything themselves.
pg_restart fast || fail "pg_ctl restart -m fast (last)"
EXTRA=100
for i in $(seq 1 "$EXTRA"); do printf '{"model":"m","input":"after %d"}\n' "$i"; done |
  "$SLUICE" enqueue -m 10 >/dev/null 2>>"$T/enqueue.err"
JOBS=$((JOBS + EXTRA))
for _ in $(seq 1 300); do
  n=$(q "SELECT count(*) FROM sluice.jobs WHERE state NOT IN ('succeeded', 'failed')")
  [ "$n" -eq 0 ] && break
  sleep 0.3
done
eq "the workers that lived through the restarts finished every job" 0 "$n"
progress=$(q "SELECT count(*) FROM sluice.jobs WHERE state IN ('succeeded', 'failed')")
echo "after the rounds: $progress of $JOBS final, $kills workers killed"
for k in $(seq 1 $WORKERS); do
  kill -9 "${W[$k]}" 2>/dev/null
  { wait "${W[$k]}"; } 2>/dev/null
done
cat "$T"/worker.*.log >"$T/worker.log"
timeout 180 "$SLUICE" work "${wargs[@]}" --exit-when-idle 2>>"$T/worker.log"
eq "the last worker drains everything and exits 0" 0 $?

# A producer while the server is down: a clear error, no password.
pg_down
echo '{"model":"m","input":"down"}' | "$SLUICE" enqueue --journal-wait 1s >/dev/null 2>"$T/down.err"
rc=$?
check "enqueue with the server down fails" test "$rc" -ne 0
check "... naming the connection" grep -qi "connect" "$T/down.err"
pg_up || fail "the server starts again"
stop_mock

eq "nothing lost: every job is final" "$JOBS|0" \
  "$(q "SELECT count(*), count(*) FILTER (WHERE state NOT IN ('succeeded', 'failed')) FROM sluice.jobs")"
eq "results == succeeded jobs, one each" \
  "$(q "SELECT count(*) FROM sluice.jobs WHERE state = 'succeeded'")" \
  "$(q "SELECT count(DISTINCT job_id) FROM sluice.results")"
eq "no job has two results" 0 \
  "$(q "SELECT count(*) FROM (SELECT job_id FROM sluice.results GROUP BY job_id HAVING count(*) > 1) x")"
eq "no result for a job that did not succeed" 0 \
  "$(q "SELECT count(*) FROM sluice.results r JOIN sluice.jobs j ON j.id = r.job_id WHERE j.state <> 'succeeded'")"
eq "every succeeded job has exactly one successful attempt" 0 \
  "$(q "SELECT count(*) FROM sluice.jobs j WHERE state = 'succeeded' AND (SELECT count(*) FROM sluice.attempts a WHERE a.job_id = j.id AND a.failure_class IS NULL) <> 1")"

# Side effects at the API, per Idempotency-Key.
q "SELECT idempotency_key FROM sluice.jobs" | sort >"$T/keys"
api_calls "$T/mock.log" | awk '{print $4}' | sort >"$T/sent_all"
sort -u "$T/sent_all" >"$T/sent"
# The key checks below count what is wrong in these lists: empty ones (no
# log, or a format api_calls no longer reads) would pass them.
check "the mock's log lists the requests" test -s "$T/sent"
eq "every request carried a job's Idempotency-Key" 0 \
  "$(comm -13 "$T/keys" "$T/sent" | wc -l)"
# A job is sent once per claim (attempts counts claims): more sends than
# claims would be an outcome resent after reconnecting.
uniq -c "$T/sent_all" | awk '{print $2, $1}' | sort >"$T/sends"
q "SELECT idempotency_key || ' ' || attempts FROM sluice.jobs" | sort >"$T/claims"
join "$T/sends" "$T/claims" | awk '$2 > $3' >"$T/oversent"
eq "no job sent more often than it was claimed" 0 "$(wc -l <"$T/oversent")"
head -5 "$T/oversent"
api_calls "$T/mock.log" | awk '$5 == 200 {print $4}' | sort | uniq -d >"$T/dups"
q "SELECT idempotency_key FROM sluice.jobs WHERE state = 'succeeded'" | sort >"$T/ok"
eq "a key answered 200 twice belongs to a job that succeeded once" 0 \
  "$(comm -23 "$T/dups" "$T/ok" | wc -l)"
echo "keys answered 200 more than once: $(wc -l <"$T/dups") (expired leases)"

# The workers that lived through a restart said so.
lost=$(grep -c "journal connection to .* lost" "$T/worker.log")
back=$(grep -c "journal reconnected after" "$T/worker.log")
echo "log: $lost connection losses, $back reconnections"
check "a worker logged the lost connection" test "$lost" -ge 1
check "a worker logged reconnecting" test "$back" -ge 1
check "outcomes kept through an outage were recorded after reconnecting" \
  grep -q "the journal takes outcomes again" "$T/worker.log"
check "a worker watched the new wake descriptor" \
  grep -q "journal wake-up reconnected" "$T/worker.log"
check "the password never reaches a log line" \
  bash -c "! grep -q -- '$PG_PW_PASSWORD' '$T/worker.log' '$T/enqueue.err' '$T/down.err'"
check "no op was missing on PostgreSQL" \
  bash -c "! grep -q 'not built for PostgreSQL' '$T/worker.log'"
# PG_CHAOS_KEEP=DIR keeps the logs for a look.
[ -n "${PG_CHAOS_KEEP:-}" ] && cp "$T"/*.log "$PG_CHAOS_KEEP"/
finish
