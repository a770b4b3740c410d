#!/usr/bin/env bash
# The worker's side connections to a PostgreSQL journal (issue 15,
# "Connection loss"; worker/redial.c): the batch route's off-loop handle,
# retention's and the metrics scrape's are kept open and, once lost,
# reopened with the main connection's backoff, not at every use; the loss
# is logged once per side and "reconnected after N ms" once.
#
# A worker with a batch route, retention (--prune-every 1s) and metrics
# reaches the server through tests/helpers/tcp_relay, which prints a line
# per connection it accepts: the count of connection attempts. Then:
#  - it starts while its role may hold only two sessions (CONNECTION
#    LIMIT 2: its statement and listen connections), so every side
#    connection's open is refused: they back off (main: the batch route
#    opened again at every turn and logged an error each time, metrics at
#    every scrape), each says so once, and once the limit is lifted each
#    says "reconnected" once and the route packs;
#  - the server is stopped for OUTAGE_S seconds while the metrics endpoint
#    is scraped every 100 ms: every scrape answers within a bound with
#    sluice_journal_up 0; the relay sees at most 60 connection attempts
#    (the main, listen, metrics and retention connections backing off),
#    not two per scrape (main: each scrape opened the journal anew, a
#    connect and a ping: 116 with 42 scrapes); metrics and retention log the loss once and the
#    reconnect once; no error line per route turn (main: "batch route:
#    connection to the journal server lost" every turn);
#  - after the restart every batch job finishes exactly once (one remote
#    batch per local batch, one result per job);
#  - the network is cut (kill -STOP of the relay): scrapes still answer
#    within 5 s (2.1-2.3 s measured; main: 20 s, curl's -m, per scrape).
# No password in any output.
. "$(dirname "$0")/../lib/testlib.sh"
. "$SLUICE_ROOT/tests/lib/pglib.sh"
. "$SLUICE_ROOT/tests/lib/batchlib.sh"
pg_test_db side
sql() { PGOPTIONS="-c search_path=sluice" pg_psql -d side -c "$1"; }
now_ms() { date +%s%3N; }

pg_relay_start || finish
DIRECT="postgresql://$PG_PW_ROLE:$PG_PW_PASSWORD@127.0.0.1:$PGPORT/side"
VIA="postgresql://$PG_PW_ROLE:$PG_PW_PASSWORD@127.0.0.1:$RELAY_PORT/side"
export SLUICE_JOURNAL="$DIRECT" STATE_DIRECTORY="$T/state"
mkdir -p "$STATE_DIRECTORY"
"$SLUICE" init >/dev/null 2>"$T/init.err" || fail "sluice init"

# since MARK PATTERN: lines of the worker's log after line MARK matching.
since() { tail -n +"$(($1 + 1))" "$T/work.log" | grep -c -- "$2"; }

JOBS=${PG_SIDE_JOBS:-60}
LIMIT_S=${PG_SIDE_LIMIT_SECONDS:-6}
OUTAGE_S=${PG_SIDE_OUTAGE_SECONDS:-8}
start_mock --batch-phase-ms 4000 --latency-ms 20 --log "$T/mock.log" ||
  { fail "mock"; finish; }
enq_deferrable "$JOBS" 2>>"$T/enqueue.err"
# ---- the side connections cannot open, the main one works ----
# The role may hold two sessions: the worker's statement and listen
# connections; every side connection's open is refused (53300).
pg_psql -d side -c "ALTER ROLE $PG_PW_ROLE CONNECTION LIMIT 2" >/dev/null
SLUICE_JOURNAL="$VIA" "$SLUICE" work --base-url "$MOCK_URL" --lease 60s \
  --poll 200ms --batch-max-wait 300ms --batch-poll 100ms \
  --batch-max-lines 20 --prune-older-than 1h --prune-every 1s \
  --metrics-port 0 --spill-dir "$T/spill" --log-level debug \
  2>"$T/work.log" &
WPID=$!
PIDS+=("$WPID")
wait_metrics "$T/work.log"

# scrape: one GET; prints "ms up" (up: sluice_journal_up, - when none).
scrape() {
  local t0 t1 up
  t0=$(now_ms)
  up=$(curl -sS -m 20 "$MURL" 2>/dev/null |
    sed -n 's/^sluice_journal_up \([01]\)$/\1/p')
  t1=$(now_ms)
  echo "$((t1 - t0)) ${up:--}"
}
up_now() { [ "$(scrape | cut -d' ' -f2)" = 1 ]; }
wait_for 30 grep -q '"msg":"worker started' "$T/work.log" ||
  { fail "the worker starts with its main connection"; finish; }
t0=$(now_ms)
: >"$T/limit.out"
while [ $(($(now_ms) - t0)) -lt $((LIMIT_S * 1000)) ]; do
  scrape >>"$T/limit.out"
  sleep 0.1
done
n=$(wc -l <"$T/limit.out")
max=$(sort -n "$T/limit.out" | tail -1 | cut -d' ' -f1)
echo "side connections refused for $LIMIT_S s: $n scrapes (slowest $max ms)"
eq "... every scrape says sluice_journal_up 0" 0 "$(grep -vc ' 0$' "$T/limit.out")"
check "... each within 5 s" test "${max:-99999}" -lt 5000
# Backing off from 100 ms: at most ~8 tries each in 6 s (main: the route
# opened at every turn, 300 ms, with an error line each time).
for side in "batch route" metrics retention; do
  eq "... $side: the refusal logged once" 1 \
    "$(grep -c "\"msg\":\"$side: journal connection lost" "$T/work.log")"
  opens=$(($(grep -c "\"msg\":\"$side: journal still away" "$T/work.log") + 1))
  echo "$side: $opens opens refused"
  check "... $side: its opens back off ($opens)" test "$opens" -le 10
done
errs=$(grep -c '"level":"error"' "$T/work.log")
echo "error lines in the worker's log: $errs"
check "... no error line per turn" test "$errs" -le 3
pg_psql -d side -c "ALTER ROLE $PG_PW_ROLE CONNECTION LIMIT -1" >/dev/null
# The route reconnects at its next try and packs; retention at its own;
# metrics at the next scrape.
batched() { [ "$(sql "SELECT count(*) FROM jobs WHERE state = 'batched'")" -ge 1 ]; }
check "the route packs once the server takes its connection" wait_for 40 batched
check "a scrape reads the journal once the server takes its connection" \
  wait_for 10 up_now
retention_back() { grep -q '"msg":"retention: journal reconnected after' "$T/work.log"; }
wait_for 40 retention_back
for side in "batch route" metrics retention; do
  eq "$side: reconnected, said once" 1 \
    "$(grep -c "\"msg\":\"$side: journal reconnected after" "$T/work.log")"
done
check "... the batch route's connection is open" \
  grep -q 'batch route: opened its own journal connection' "$T/work.log"

# ---- the server stopped ----
a0=$(wc -l <"$T/relay.err")
mark=$(wc -l <"$T/work.log")
pg_down || fail "pg_ctl stop"
t0=$(now_ms)
: >"$T/scrapes.out"
while [ $(($(now_ms) - t0)) -lt $((OUTAGE_S * 1000)) ]; do
  scrape >>"$T/scrapes.out"
  sleep 0.1
done
t1=$(now_ms)
a1=$(wc -l <"$T/relay.err")
pg_up || { fail "pg_ctl start"; finish; }
t2=$(now_ms)
n=$(wc -l <"$T/scrapes.out")
max=$(sort -n "$T/scrapes.out" | tail -1 | cut -d' ' -f1)
ups=$(grep -vc ' 0$' "$T/scrapes.out")
tries=$((a1 - a0))
echo "outage $((t1 - t0)) ms: $n scrapes, slowest $max ms, $ups not up 0;" \
  "$tries connections to the relay"
check "scrapes answered during the outage" test "$n" -ge 5
check "... each within 3 s" test "${max:-99999}" -lt 3000
eq "... each with sluice_journal_up 0" 0 "$ups"
# Main and listen connections back off (~7 tries each in 8 s), as do the
# metrics' and retention's (each a failed open is a connect and a ping):
# ~42 here (40 measured). Main: a connect and a ping per scrape, 116 with
# 42 scrapes.
check "connection attempts back off ($tries in the outage, $n scrapes)" \
  test "$tries" -le 60
for side in metrics retention; do
  eq "$side: the loss logged once" 1 \
    "$(since "$mark" "\"msg\":\"$side: journal connection lost")"
  tries_side=$(($(since "$mark" "\"msg\":\"$side: journal still away") + 1))
  echo "$side: $tries_side failed opens"
  check "$side: its opens back off ($tries_side)" test "$tries_side" -le 10
done
check "the batch route logs its connection's loss at most once" \
  test "$(since "$mark" '"msg":"batch route: journal connection lost')" -le 1
# Errors during the outage: not one per route turn or scrape.
errs=$(since "$mark" '"level":"error"')
echo "error lines in the worker's log: $errs"
check "no error line per turn during the outage" test "$errs" -le 3

# ---- back ----
check "a scrape reads the journal again after the restart" wait_for 40 up_now
for side in metrics retention; do
  check "$side: reconnected, said once" wait_for 40 bash -c \
    "[ \$(tail -n +$((mark + 1)) '$T/work.log' | grep -c '\"msg\":\"$side: journal reconnected after') -eq 1 ]"
done
done_all() {
  [ "$(sql "SELECT count(*) FROM jobs WHERE state NOT IN ('succeeded', 'failed')")" -eq 0 ]
}
check "every batch job finishes after the restart" wait_for 120 done_all
# The route goes on once the worker's main connection is back (its steps
# read the journal there first), which backs off too: after the jobs.
eq "the batch route: as many reconnects as losses" \
  "$(since "$mark" '"msg":"batch route: journal connection lost')" \
  "$(since "$mark" '"msg":"batch route: journal reconnected after')"
eq "every job succeeded" "$JOBS" \
  "$(sql "SELECT count(*) FROM jobs WHERE state = 'succeeded'")"
check_exactly_once "after the outage"
nb=$(sql "SELECT count(*) FROM batches")
dup=0
for b in $(sql "SELECT id FROM batches WHERE remote_batch_id IS NOT NULL"); do
  [ "$(remote_count "$b")" -eq 1 ] || dup=$((dup + 1))
done
echo "$nb local batches"
eq "one remote batch per local batch" 0 "$dup"

# ---- the network cut: scrapes still answer ----
kill -STOP "$RELAY_PID"
t0=$(now_ms)
: >"$T/cut.out"
while [ $(($(now_ms) - t0)) -lt 5000 ]; do
  scrape >>"$T/cut.out"
  sleep 0.1
done
kill -CONT "$RELAY_PID"
n=$(wc -l <"$T/cut.out")
max=$(sort -n "$T/cut.out" | tail -1 | cut -d' ' -f1)
echo "cut: $n scrapes, slowest $max ms"
# The first one gives up its read after the answer bound (2 s); main: each
# waited for sl_open (connect_timeout, twice with sslmode=prefer, and a
# ping): 20 s here, curl's -m.
check "scrapes during a cut answer within 5 s (the answer bound, not connect_timeout)" \
  test "${max:-99999}" -lt 5000
check "... and several were made" test "$n" -ge 2
check "a scrape reads the journal again after the cut" wait_for 60 up_now

kill -TERM "$WPID" 2>/dev/null
wait_for 30 bash -c "! kill -0 $WPID 2>/dev/null" || kill -9 "$WPID" 2>/dev/null
stop_mock
check "the password never reaches a log line or an output" \
  bash -c "! grep -q -- '$PG_PW_PASSWORD' '$T/work.log' '$T/enqueue.err' \
    '$T/init.err' '$T/scrapes.out' '$T/cut.out'"
[ -n "${PG_SIDE_KEEP:-}" ] && cp "$T"/*.log "$T"/*.out "$T/relay.err" "$PG_SIDE_KEEP"/
finish
