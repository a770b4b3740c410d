#!/usr/bin/env bash
# A PostgreSQL journal server that is down or restarts at the edges of a
# run (docs/internals/postgresql.md "Connection loss"): `sluice work`
# started while it is down waits (logs it, sd_notify STATUS, no READY),
# then works once it is up, and stops at once on SIGTERM while waiting;
# the CLI, the dashboard included, waits a bounded time (--journal-wait);
# `sluice enqueue` of keyed
# lines and of unkeyed lines across `pg_ctl restart -m fast` enqueues each
# line exactly once (pg_enqueue_once.sh cuts at the COMMIT itself); a bad
# password, a database that is not a journal and a bad location are hard
# errors that exit at once, and no password reaches any output.
. "$(dirname "$0")/../lib/testlib.sh"
. "$SLUICE_ROOT/tests/lib/pglib.sh"
pg_test_db recon
export SLUICE_JOURNAL="postgresql://$PG_PW_ROLE:$PG_PW_PASSWORD@127.0.0.1:$PGPORT/recon"
q() { pg_psql -d recon -c "$1"; }
now_ms() { date +%s%3N; }

"$SLUICE" init >/dev/null 2>"$T/init.err"
eq "sluice init makes the journal" 0 $?

# ---- the server is down: the CLI's open ----
pg_down || fail "pg_ctl stop"
t0=$(now_ms)
"$SLUICE" status --journal-wait 0 >/dev/null 2>"$T/st0.err"
rc=$?
eq "status with the server down and --journal-wait 0: exit 3" 3 "$rc"
check "... the server is unreachable, a connection loss (SL_DISCONNECTED)" \
  bash -c "grep -q 'unreachable' '$T/st0.err' &&
    grep -q 'connection to the journal server lost' '$T/st0.err'"
check "... without waiting" test $(($(now_ms) - t0)) -lt 5000
SLUICE_JOURNAL_WAIT=1500ms "$SLUICE" status >/dev/null 2>"$T/st1.err"
eq "status with \$SLUICE_JOURNAL_WAIT=1500ms: exit 3" 3 $?
check "... it said it retried, then gave up" \
  bash -c "grep -q 'retrying in [0-9]* ms' '$T/st1.err' &&
    grep -q 'gave up after waiting' '$T/st1.err'"

# ---- sluice work started while the server is down ----
start_mock --latency-ms 20 --log "$T/mock.log"
cat >"$T/notify.py" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a", buffering=1) as f:
    while True:
        f.write(s.recv(65536).decode("utf-8", "replace").replace("\n", " | ") + "\n")
EOF
python3 "$T/notify.py" "$T/notify.sock" "$T/notify.log" &
PIDS+=($!)
wait_for 5 test -S "$T/notify.sock" || fail "the notify listener started"
wargs=(--base-url "$MOCK_URL" --no-batch --poll 100ms --concurrency 8
  --spill-dir "$T/spill")
NOTIFY_SOCKET="$T/notify.sock" "$SLUICE" work "${wargs[@]}" 2>"$T/work.log" &
wpid=$!
PIDS+=("$wpid")
check "the worker logs that the journal is unreachable, with the retry" \
  wait_for 20 grep -q 'unreachable.*retrying in [0-9]* ms' "$T/work.log"
sleep 3
check "... and waits: it has not exited" kill -0 "$wpid"
eq "... said once in its first seconds (then at most every 5 s)" 1 \
  "$(grep -c 'unreachable' "$T/work.log")"
check "sd_notify STATUS says it waits for the journal" \
  grep -q 'STATUS=waiting for the journal' "$T/notify.log"
check "... and no READY=1 while it waits" \
  bash -c "! grep -q 'READY=1' '$T/notify.log'"
pg_up || fail "the server starts again"
check "the worker logs the journal reachable again" \
  wait_for 60 grep -q 'journal reachable after [0-9]* ms' "$T/work.log"
check "... then READY=1" wait_for 20 grep -q 'READY=1' "$T/notify.log"
for i in $(seq 1 20); do printf '{"model":"m","input":"after %d"}\n' "$i"; done |
  "$SLUICE" enqueue >/dev/null 2>"$T/enq1.err"
eq "jobs enqueued once the server is up" 0 $?
done_jobs() {
  [ "$(q "SELECT count(*) FROM sluice.jobs WHERE state = 'succeeded'")" = 20 ]
}
check "the waiting worker finished them" wait_for 60 done_jobs
kill -TERM "$wpid"
wait "$wpid"
eq "it stops on SIGTERM with 0" 0 $?

# ---- SIGTERM while waiting ----
pg_down || fail "pg_ctl stop (2)"
"$SLUICE" work "${wargs[@]}" 2>"$T/work2.log" &
wpid=$!
PIDS+=("$wpid")
check "a second worker waits for the journal" \
  wait_for 20 grep -q 'unreachable' "$T/work2.log"
t0=$(now_ms)
kill -TERM "$wpid"
for _ in $(seq 1 100); do kill -0 "$wpid" 2>/dev/null || break; sleep 0.05; done
check "SIGTERM while waiting stops it within 5 s" \
  test $(($(now_ms) - t0)) -lt 5000
wait "$wpid"
eq "... with exit status 0" 0 $?
"$SLUICE" work "${wargs[@]}" --journal-wait 1s 2>"$T/work3.log"
eq "--journal-wait 1s bounds the worker's wait: exit 3" 3 $?
pg_up || fail "the server starts again (2)"

# ---- hard errors exit at once ----
bad="postgresql://$PG_PW_ROLE:wrong-$PG_PW_PASSWORD@127.0.0.1:$PGPORT/recon"
t0=$(now_ms)
SLUICE_JOURNAL=$bad timeout 30 "$SLUICE" work "${wargs[@]}" >"$T/bad.out" 2>"$T/bad.err"
rc=$?
eq "a bad password: the worker exits at once with 3 (no wait)" 3 "$rc"
check "... within 10 s" test $(($(now_ms) - t0)) -lt 10000
check "... saying the server refused it" \
  bash -c "grep -q 'password authentication failed' '$T/bad.err' &&
    ! grep -q 'retrying' '$T/bad.err'"
echo '{"model":"m","input":"x"}' |
  SLUICE_JOURNAL=$bad timeout 30 "$SLUICE" enqueue >>"$T/bad.out" 2>"$T/bad2.err"
eq "a bad password: enqueue exits 3 at once" 3 $?
check "... permission denied (SL_PERM), no retry" \
  bash -c "grep -q 'permission denied' '$T/bad2.err' && ! grep -q 'retrying' '$T/bad2.err'"
pg_createdb notj >/dev/null
pg_psql -d notj -c "CREATE SCHEMA sluice" >/dev/null
SLUICE_JOURNAL="postgresql://$PG_ADMIN@127.0.0.1:$PGPORT/notj" timeout 30 \
  "$SLUICE" work "${wargs[@]}" 2>"$T/notj.err"
eq "a database whose schema sluice is no journal: exit 3 at once" 3 $?
check "... saying so" grep -q 'is not a sluice journal' "$T/notj.err"
SLUICE_JOURNAL="postgresql://$PG_ADMIN@127.0.0.1:$PGPORT/nosuchdb" timeout 30 \
  "$SLUICE" status 2>"$T/nodb.err"
eq "a database that does not exist: exit 3 at once" 3 $?
check "... no retry" bash -c "! grep -q 'retrying' '$T/nodb.err'"
SLUICE_JOURNAL="postgresql://[bad" timeout 30 "$SLUICE" work "${wargs[@]}" \
  2>"$T/badloc.err"
eq "a location libpq cannot parse: exit 3 at once" 3 $?

# ---- sluice enqueue across a server restart mid-statement ----
# Sizes that keep each statement running a few seconds here (the keyed
# one returns every row's id by key, and costs more per row).
N=${RECON_KEYED:-30000}
NP=${RECON_PLAIN:-200000}
awk -v n="$N" 'BEGIN { for (i = 1; i <= n; i++)
  printf "{\"body\":{\"model\":\"m\",\"input\":\"k %d\"},\"idempotency_key\":\"recon-%d\",\"queue\":\"keyed\"}\n", i, i }' \
  >"$T/keyed.jsonl"
awk -v n="$NP" 'BEGIN { for (i = 1; i <= n; i++)
  printf "{\"model\":\"m\",\"input\":\"u %d\"}\n", i }' >"$T/plain.jsonl"
# restart_mid PID: restart the server (-m fast) once the producer's INSERT
# runs; 0 when it did, 1 when the producer was done first.
restart_mid() {
  local i
  for i in $(seq 1 1200); do
    kill -0 "$1" 2>/dev/null || return 1
    if [ -n "$(q "SELECT 1 FROM pg_stat_activity WHERE state = 'active'
        AND pid <> pg_backend_pid() AND query LIKE '%INSERT INTO sluice.jobs%'
        LIMIT 1")" ]; then
      pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" \
        -m fast -w -t 60 restart >>"$T/pg_ctl.log" 2>&1
      return 0
    fi
    sleep 0.05
  done
  return 1
}
"$SLUICE" enqueue --envelope --journal-wait 2m <"$T/keyed.jsonl" \
  >"$T/keyed.out" 2>"$T/keyed.err" &
epid=$!
PIDS+=("$epid")
restart_mid "$epid"
hit=$?
wait "$epid"
rc=$?
eq "keyed lines: the restart hit the enqueue statement" 0 "$hit"
eq "keyed lines: enqueue exits 0 across the restart" 0 "$rc"
check "... saying it retried" grep -q 'reachable after' "$T/keyed.err"
eq "... every line enqueued exactly once" "$N|$N" \
  "$(q "SELECT count(*), count(DISTINCT idempotency_key) FROM sluice.jobs WHERE queue = 'keyed'")"
eq "... one output line per input line" "$N" "$(wc -l <"$T/keyed.out")"

"$SLUICE" enqueue -q plain --journal-wait 2m \
  <"$T/plain.jsonl" >"$T/plain.out" 2>"$T/plain.err" &
epid=$!
PIDS+=("$epid")
restart_mid "$epid"
hit=$?
wait "$epid"
rc=$?
n=$(q "SELECT count(*) FROM sluice.jobs WHERE queue = 'plain'")
echo "unkeyed lines: restart hit $hit, exit $rc, $n of $NP in the journal"
# Made again after reconnecting: the enqueue token of its transaction
# tells whether the first attempt committed (lib/pg/enqueue_once.c).
eq "unkeyed lines: enqueue exits 0 across the restart" 0 "$rc"
eq "... every line enqueued exactly once" "$NP|$NP" \
  "$(q "SELECT count(*), count(DISTINCT b.body) FROM sluice.jobs j
        JOIN sluice.job_bodies b ON b.job_id = j.id WHERE j.queue = 'plain'")"

# ---- read-only verbs retry freely ----
pg_down || fail "pg_ctl stop (3)"
"$SLUICE" status --journal-wait 1m >"$T/st2.out" 2>"$T/st2.err" &
spid=$!
PIDS+=("$spid")
check "status waits while the server is down" \
  wait_for 20 grep -q 'retrying in' "$T/st2.err"
# The dashboard waits the same way (before, it exited 3 at once).
"$SLUICE" dashboard --listen 127.0.0.1:0 --journal-wait 1m \
  2>"$T/dash.err" &
dpid=$!
PIDS+=("$dpid")
check "the dashboard waits while the server is down, saying so" \
  wait_for 20 grep -q 'unreachable.*retrying in' "$T/dash.err"
check "... and has not exited" kill -0 "$dpid"
pg_up || fail "the server starts again (3)"
wait "$spid"
eq "... and answers once it is up" 0 $?
check "... with the queues" grep -q 'keyed' "$T/st2.out"
check "the dashboard listens once the server is up" \
  wait_for 60 grep -q 'dashboard on http' "$T/dash.err"
durl=$(sed -n 's/.*dashboard on \(http[^ ]*\).*/\1/p' "$T/dash.err" | head -n 1)
check "... and serves the journal's queues" \
  bash -c "curl -fsS '$durl' | grep -q keyed"
kill -TERM "$dpid"
wait "$dpid"
eq "... it stops on SIGTERM with 0" 0 $?

stop_mock
check "no password in any output" \
  bash -c "! grep -rqF -- '$PG_PW_PASSWORD' '$T'/*.log '$T'/*.err '$T'/*.out"
finish
