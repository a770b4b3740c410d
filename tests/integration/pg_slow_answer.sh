#!/usr/bin/env bash
# A slow but live PostgreSQL server under a worker (issue 15, "the loop
# never blocks"): every UPDATE of sluice.jobs (claims, grouped
# completions, lease extensions, rescues) takes 300-600 ms at the server
# (a statement trigger of the test's sleeps), under the worker's answer
# bound of 1 s. The worker's statements are parked after a few tens of ms
# and their answers read by later calls (lib/pg exec.c): the loop is never
# held for the statement, nothing is taken for a lost connection, a
# parked claim's jobs reach the worker (not stranded until their lease
# runs out and rescue), a parked completion is not sent again into its
# fence. Checks: no "lost"/"reconnected"/"not recorded" line, every job
# succeeded once with one result and one attempt, no key sent twice to the
# mock, and the loop's longest hold (sluice_loop_lag_max_seconds) stays
# under the server's delay. Before parking each of those statements held
# the loop for its whole 300-600 ms.
. "$(dirname "$0")/../lib/testlib.sh"
. "$SLUICE_ROOT/tests/lib/pglib.sh"
pg_test_db slowans
q() { pg_psql -d slowans -c "$1"; }
URL="postgresql://$PG_PW_ROLE:$PG_PW_PASSWORD@127.0.0.1:$PGPORT/slowans"

JOBS=${PG_SLOW_JOBS:-40}
start_mock --latency-ms 100 --log "$T/mock.log"
for i in $(seq 1 "$JOBS"); do printf '{"model":"m","input":"slow %d"}\n' "$i"; done |
  SLUICE_JOURNAL="$URL" "$SLUICE" enqueue -m 10 >/dev/null 2>"$T/enqueue.err"
eq "enqueued on PostgreSQL" "$JOBS" "$(q "SELECT count(*) FROM sluice.jobs")"
# Once per statement (not per row), before it touches a row: no lock is
# held while it sleeps, so nothing waits into lock_timeout.
q "CREATE FUNCTION public.t_slow() RETURNS trigger LANGUAGE plpgsql AS
   \$\$ BEGIN PERFORM pg_sleep(0.3 + random() * 0.3); RETURN NULL; END \$\$;
   CREATE TRIGGER t_slow BEFORE UPDATE ON sluice.jobs FOR EACH STATEMENT
   EXECUTE FUNCTION public.t_slow()" >/dev/null

# The lease (120 s) outlives the run: a job stranded by a claim whose
# answer was dropped would wait that long, and the run's wait below is
# shorter.
SLUICE_JOURNAL="$URL" "$SLUICE" work --base-url "$MOCK_URL" --lease 120s \
  --poll 200ms --concurrency 16 --no-batch --spill-dir "$T/spill" \
  --metrics-port 0 --log-level debug 2>"$T/worker.log" &
WPID=$!
PIDS+=("$WPID")
wait_metrics "$T/worker.log"
done_all() {
  [ "$(q "SELECT count(*) FROM sluice.jobs WHERE state NOT IN ('succeeded', 'failed')")" -eq 0 ]
}
wait_for 60 done_all
check "every job ends final well within its lease" done_all
lag=$(loop_lag_max_ms "$MURL")
echo "the loop's longest hold: ${lag:-?} ms"
# Each of the 20-odd claims and completions held the loop 300-600 ms
# before (a probe 100 ms apart sees at least the hold less 100 ms; the
# worker logs each hold of 100 ms or more at debug level). Parked, none
# should; a host loaded enough to stall the process once or twice (seen:
# 519 ms with two CI runs beside it) is not the statement's doing, so
# the count allows two, and the longest must stay under the bound.
long=$(grep -c 'the event loop was held for \([3-9][0-9][0-9]\|[0-9]\{4,\}\) ms' "$T/worker.log")
echo "holds of 300 ms or more: $long"
check "the loop was not held for the server's delay (parked)" \
  test "$long" -le 2
check "the loop's longest hold is under the answer bound" \
  test "${lag:-99999}" -lt 1000
kill -TERM "$WPID" 2>/dev/null
wait_for 30 bash -c "! kill -0 $WPID 2>/dev/null" || kill -9 "$WPID" 2>/dev/null
stop_mock
q "DROP TRIGGER t_slow ON sluice.jobs" >/dev/null

check "no lost connection (a slow answer is not silence)" \
  bash -c "! grep -E 'journal connection to .* lost|no answer from the server for|journal reconnected' '$T/worker.log'"
check "no outcome refused by its fence (none sent twice)" \
  bash -c "! grep -q 'outcome not recorded' '$T/worker.log'"
check "no lease ran out (nothing rescued)" \
  bash -c "! grep -q 'rescued [0-9]* jobs' '$T/worker.log'"
warns=$(grep -c '"level":"\(warn\|error\)"' "$T/worker.log")
echo "warnings and errors in the worker's log: $warns"
grep '"level":"\(warn\|error\)"' "$T/worker.log" | head -5
check "no warning or error for a slow server" test "$warns" -eq 0
eq "every job succeeded" "$JOBS" \
  "$(q "SELECT count(*) FROM sluice.jobs WHERE state = 'succeeded'")"
eq "one result per job" "$JOBS|$JOBS" \
  "$(q "SELECT count(*), count(DISTINCT job_id) FROM sluice.results")"
eq "each job claimed once (one attempt, none rescued)" "$JOBS" \
  "$(q "SELECT count(*) FROM sluice.jobs j WHERE attempts = 1 AND (SELECT count(*) FROM sluice.attempts a WHERE a.job_id = j.id) = 1")"
q "SELECT idempotency_key FROM sluice.jobs" | sort >"$T/keys"
api_calls "$T/mock.log" | awk '{print $4}' | sort >"$T/sent_all"
eq "every job's key was sent" 0 "$(sort -u "$T/sent_all" | comm -23 "$T/keys" - | wc -l)"
eq "no request sent twice" 0 "$(uniq -d "$T/sent_all" | wc -l)"
[ -n "${PG_SLOW_KEEP:-}" ] && cp "$T"/*.log "$PG_SLOW_KEEP"/
finish
