#!/usr/bin/env bash
# A PostgreSQL journal that goes away while a batch's status poll is in
# flight: the answer comes back during the outage and its status cannot be
# recorded. The batch route keeps the fact and tries it again each turn;
# the loss is said once (by the worker and redial.c, and the route's
# "facts not yet recorded" warning once it lasts), never as an error line
# per try. Before, sl__batch_record_status logged every failed try of a
# lost connection as an error ("batch N: cannot record status validating:
# connection to the journal server lost", ~10 a second), which
# pg_sideconn.sh caught only when its outage happened to meet a poll.
. "$(dirname "$0")/../lib/testlib.sh"
. "$SLUICE_ROOT/tests/lib/pglib.sh"
. "$SLUICE_ROOT/tests/lib/batchlib.sh"
pg_test_db bstat
export SLUICE_JOURNAL="postgresql://$PG_PW_ROLE:$PG_PW_PASSWORD@127.0.0.1:$PGPORT/bstat"
q() { PGOPTIONS="-c search_path=sluice" pg_psql -d bstat -c "$1"; }
"$SLUICE" init >/dev/null 2>"$T/init.err" || fail "sluice init"

# Every API answer takes 5 s, so the poll in flight when the server stops
# is answered during the outage. The batch stays in its first phases for
# a minute.
LAT=5000
start_mock --latency-ms "$LAT" --batch-phase-ms 60000 --log "$T/mock.log" ||
  { fail "mock"; finish; }
enq_deferrable 5 2>"$T/enqueue.err"
"$SLUICE" work --base-url "$MOCK_URL" --poll 200ms --batch-max-wait 300ms \
  --batch-poll 100ms --spill-dir "$T/spill" --log-level debug \
  2>"$T/work.log" &
WPID=$!
PIDS+=("$WPID")
submitted() {
  [ "$(q "SELECT count(*) FROM batches WHERE remote_batch_id IS NOT NULL")" -ge 1 ]
}
check "the batch is submitted" wait_for 60 submitted
# A poll of it has gone out (the mock logs a request when it answers: the
# first answered GET means the route polls, one after the other).
polled() { grep -q ' GET /v1/batches/batch_' "$T/mock.log"; }
check "the route polls the remote batch" wait_for 30 polled
# Polls come one after the other, up to 2 s apart here (route.c,
# next_poll): stop the server while one is at the mock (in_flight counts
# it from its arrival; no online job runs), not at a random moment.
polling() { [ "$(mock_stat in_flight)" -ge 1 ] 2>/dev/null; }
check "a status poll is in flight at the stop" wait_for 30 polling
mark=$(wc -l <"$T/work.log")
answers=$(grep -c ' GET /v1/batches/batch_' "$T/mock.log")
pg_down || fail "pg_ctl stop"
# The poll in flight at the stop is answered within LAT ms: wait for its
# answer, then a few seconds of the route's tries.
more_answers() {
  [ "$(grep -c ' GET /v1/batches/batch_' "$T/mock.log")" -gt "$answers" ]
}
check "a status poll was answered during the outage" wait_for 30 more_answers
sleep 3
since() { tail -n +"$((mark + 1))" "$T/work.log" | grep -c -- "$1"; }
tries=$(since 'cannot record status')
errs=$(since '"level":"error"')
echo "during the outage: $tries failed status writes logged, $errs error lines"
eq "no error line per try while the journal is away" 0 "$errs"
check "... the worker said the journal connection was lost" \
  grep -q 'journal connection to .* lost' "$T/work.log"

# Back: the route goes on.
pg_up
check "the worker says the journal is back" \
  wait_for 60 grep -q 'journal reconnected after' "$T/work.log"
answers=$(grep -c ' GET /v1/batches/batch_' "$T/mock.log")
check "the route polls again" wait_for 60 more_answers
kill -TERM "$WPID"
wait "$WPID"
eq "the worker stops on SIGTERM with 0" 0 $?
stop_mock
check "the password never reaches a log line" \
  bash -c "! grep -q -- '$PG_PW_PASSWORD' '$T/work.log' '$T/init.err' '$T/enqueue.err'"
finish
