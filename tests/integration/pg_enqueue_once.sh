#!/usr/bin/env bash
# `sluice enqueue` of lines without idempotency keys on a PostgreSQL
# journal whose connection is cut between sending COMMIT and reading its
# answer (docs/internals/postgresql.md, "Connection loss": enqueue
# tokens). The producer reaches the server through tests/helpers/tcp_relay;
# a deferred trigger of the test's sleeps 3 s at commit, and while it
# sleeps the relay is killed (the producer reads EOF) and started again on
# the same port. The server still commits. The producer reconnects, learns
# from its enqueue token that the first attempt committed, and prints the
# ids it made: exit 0, every line once. Before the tokens it exited 3
# ("may or may not have been enqueued"): an unkeyed enqueue was never made
# again. Then the same cut while the insert itself runs (nothing committed):
# sent again, every line once.
. "$(dirname "$0")/../lib/testlib.sh"
. "$SLUICE_ROOT/tests/lib/pglib.sh"
pg_test_db eonce
q() { pg_psql -d eonce -c "$1"; }
pg_relay_start || finish
export SLUICE_JOURNAL="postgresql://$PG_PW_ROLE:$PG_PW_PASSWORD@127.0.0.1:$RELAY_PORT/eonce"
"$SLUICE" init >/dev/null 2>"$T/init.err"
eq "sluice init through the relay" 0 $?

# A sleep of 3 s once per transaction: at commit (deferred) for jobs of
# partition at-commit, in the insert for jobs of partition in-insert.
q "CREATE FUNCTION public.t_slow() RETURNS trigger LANGUAGE plpgsql AS \$\$
   BEGIN
     IF current_setting('t.slept', true) IS DISTINCT FROM 'y' THEN
       PERFORM set_config('t.slept', 'y', true);
       PERFORM pg_sleep(3);
     END IF;
     RETURN NULL;
   END \$\$;
   CREATE CONSTRAINT TRIGGER t_slow_commit AFTER INSERT ON sluice.jobs
     DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
     WHEN (NEW.partition = 'at-commit') EXECUTE FUNCTION public.t_slow();
   CREATE FUNCTION public.t_slow_now() RETURNS trigger LANGUAGE plpgsql AS \$\$
   BEGIN
     IF current_setting('t.slept', true) IS DISTINCT FROM 'y' THEN
       PERFORM set_config('t.slept', 'y', true);
       PERFORM pg_sleep(3);
     END IF;
     RETURN NULL;
   END \$\$;
   CREATE TRIGGER t_slow_insert AFTER INSERT ON sluice.jobs FOR EACH ROW
     WHEN (NEW.partition = 'in-insert') EXECUTE FUNCTION public.t_slow_now()"\
  >/dev/null || fail "the test's triggers"

# cut_when_sleeping PID: once a backend sleeps in the test's trigger, kill
# the relay (the producer reads EOF) and start it again on the same port.
# Sets stmt to the sleeping backend's statement; 1 when the producer ended
# first. Not in a subshell: RELAY_PID and PIDS must change here.
cut_when_sleeping() {
  local i
  for i in $(seq 1 600); do
    kill -0 "$1" 2>/dev/null || return 1
    stmt=$(q "SELECT CASE WHEN query = 'COMMIT' OR query LIKE
      'UPDATE sluice.enqueue_tokens SET ids%' THEN 'COMMIT'
      ELSE left(query, 40) END FROM pg_stat_activity WHERE
      datname = 'eonce' AND wait_event = 'PgSleep' LIMIT 1")
    if [ -n "$stmt" ]; then
      kill -9 "$RELAY_PID"
      wait "$RELAY_PID" 2>/dev/null
      "$RELAY" "$RELAY_PORT" "$PGPORT" 2>>"$T/relay.err" &
      RELAY_PID=$!
      PIDS+=("$RELAY_PID")
      return 0
    fi
    sleep 0.05
  done
  return 1
}

# run_cut PARTITION N: enqueue N unkeyed lines of PARTITION (--ids), cut
# while the trigger sleeps; sets rc, stmt.
run_cut() {
  awk -v n="$2" -v p="$1" 'BEGIN { for (i = 1; i <= n; i++)
    printf "{\"model\":\"m\",\"input\":\"%s %d\"}\n", p, i }' >"$T/$1.jsonl"
  "$SLUICE" enqueue -P "$1" --ids --journal-wait 1m <"$T/$1.jsonl" \
    >"$T/$1.out" 2>"$T/$1.err" &
  local epid=$!
  PIDS+=("$epid")
  stmt=
  cut_when_sleeping "$epid"
  cut=$?
  wait "$epid"
  rc=$?
  echo "$1: cut $cut during: $stmt; exit $rc"
  sed 's/^/  stderr: /' "$T/$1.err"
}

N=200
run_cut at-commit "$N"
eq "the cut came while the producer waited for its COMMIT's answer" 0 "$cut"
check "... the statement sleeping was the COMMIT (the ids' update with it)" \
  bash -c "grep -q COMMIT <<<'$stmt'"
eq "unkeyed lines, COMMIT answer lost: enqueue exits 0" 0 "$rc"
check "... after saying it lost the connection and reconnected" \
  bash -c "grep -q 'lost' '$T/at-commit.err' &&
    grep -q 'reachable after' '$T/at-commit.err'"
eq "... every line enqueued exactly once" "$N|$N" \
  "$(q "SELECT count(*), count(DISTINCT b.body) FROM sluice.jobs j
        JOIN sluice.job_bodies b ON b.job_id = j.id
       WHERE j.partition = 'at-commit'")"
eq "... one id printed per line" "$N" "$(wc -l <"$T/at-commit.out")"
eq "... the ids printed are the jobs'" "$N" \
  "$(q "SELECT count(*) FROM sluice.jobs WHERE partition = 'at-commit'
         AND id IN ($(paste -sd, "$T/at-commit.out"))")"

run_cut in-insert "$N"
eq "the cut came while the insert ran" 0 "$cut"
eq "unkeyed lines, insert cut off: enqueue exits 0" 0 "$rc"
eq "... every line enqueued exactly once" "$N|$N" \
  "$(q "SELECT count(*), count(DISTINCT b.body) FROM sluice.jobs j
        JOIN sluice.job_bodies b ON b.job_id = j.id
       WHERE j.partition = 'in-insert'")"
eq "... one id printed per line" "$N" "$(wc -l <"$T/in-insert.out")"

eq "settled tokens are deleted (the producer's last at its close)" 0 \
  "$(q "SELECT count(*) FROM sluice.enqueue_tokens")"
check "no password in any output" \
  bash -c "! grep -rqF -- '$PG_PW_PASSWORD' '$T'/*.err '$T'/*.out"
finish
