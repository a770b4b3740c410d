#!/usr/bin/env bash
# The journal on PostgreSQL (lib/pg/): a throwaway cluster (pglib.sh), the
# unit tests that honour SLUICE_TEST_JOURNAL run against it (with a wrong
# password for the scrubbing check), the journal suite's test files that
# run on both backends (PG_SUITE, with the one list of tests left out),
# and the CLI's enqueue through a postgresql:// location, which never
# prints the password.
. "$(dirname "$0")/../lib/testlib.sh"
. "$SLUICE_ROOT/tests/lib/pglib.sh"
if ! pg_available; then
  echo "SKIP: PostgreSQL is not installed"
  exit 0
fi
PG_OPTS="-c fsync=off" pg_start || { fail "pg_start"; finish; }
pg_createdb sluice_unit >/dev/null
url="postgresql://$PG_ADMIN@127.0.0.1:$PGPORT/sluice_unit"

out=$(SLUICE_TEST_JOURNAL=$url \
  SLUICE_TEST_PG_BADPW_URL="postgresql://$PG_PW_ROLE:WRONG-SECRET@127.0.0.1:$PGPORT/sluice_unit" \
  "$SLUICE_BUILD/tests/test_pg_journal" 2>&1)
rc=$?
echo "$out" | grep -E "^\[  (FAILED|SKIPPED|  OK) \]|PASSED" | sed 's/^/  /'
[ "$rc" -eq 0 ] || echo "$out" | grep -v "^    #\|^$\|leak of" | head -30
check "unit tests on PostgreSQL pass (rc $rc)" test "$rc" -eq 0
case $out in *SKIPPED*) fail "... and none was skipped" ;; *) pass "... and none was skipped" ;; esac
# The answer bound (sl_set_answer_timeout): its own binary, the same
# database.
out=$(SLUICE_TEST_JOURNAL=$url "$SLUICE_BUILD/tests/test_pg_answer" 2>&1)
rc=$?
echo "$out" | grep -E "^\[  (FAILED|SKIPPED|  OK) \]|PASSED" | sed 's/^/  /'
[ "$rc" -eq 0 ] || echo "$out" | grep -v "^    #\|^$\|leak of" | head -30
check "the answer bound on PostgreSQL (rc $rc)" test "$rc" -eq 0
case $out in *SKIPPED*) fail "... and none was skipped" ;; *) pass "... and none was skipped" ;; esac
eq "migrations recorded once each" \
  "$(ls "$SLUICE_ROOT"/migrations/pg/[0-9]*.sql | wc -l)" \
  "$(pg_psql -d sluice_unit -c "SELECT count(*) FROM sluice.schema_migrations")"

# The journal suite on both backends: these unit test files run again here
# against PostgreSQL (testutil.h: tu_setup resets the schema by
# SLUICE_TEST_PG_RESET before each test; tu_run_group leaves out the names
# SLUICE_TEST_SKIP lists). This is the one list of tests left out on
# PostgreSQL, each with its reason (no apostrophes: it is one quoted
# string); every one is printed.
PG_SUITE="test_wait test_claim test_storm_admit test_enqueue test_counts
  test_find test_prune test_workers test_concurrency test_batch
  test_batch_ingest test_storm test_dash test_jobs test_usage test_spill
  test_enqueue_group test_secrets test_batch_backlog test_checkpoint"
PG_SUITE_SKIP='
test_enqueue:test_enqueue_many_no_temp_file      SQLite only: the statement journal SQLite spills to its temp directory
test_prune:test_wal_checkpointed                 SQLite only: the WAL is checkpointed after a prune
test_jobs:test_moves_cover_the_table             SQLite only: the prepared statement of lib/sqlite for each move
test_claim:test_grouped_completion_statements    SQLite only: the statements lib/sqlite runs for a group of successes
test_batch_backlog:test_upgrade_from_0019        SQLite only: a journal made by SQLite migrations 1 to 19
test_storm_admit:test_pause_survives_busy       SQLite only: another connection holds the write lock
test_enqueue_group:test_group_parameter_limit    SQLite only: the groups that fit the connection parameter limit
test_enqueue_group:test_group_lean_ids           SQLite only: lean groups, ids from the largest rowid
'
pg_createdb sluice_suite >/dev/null
suite_url="postgresql://$PG_ADMIN@127.0.0.1:$PGPORT/sluice_suite"
reset="PGOPTIONS='-c client_min_messages=warning' '$PG_BIN/psql' -X -q -d sluice_suite -c 'DROP SCHEMA IF EXISTS sluice CASCADE'"
suite_ran=0
suite_left=0
for b in $PG_SUITE; do
  skip=$(printf '%s\n' "$PG_SUITE_SKIP" | sed -n "s/^$b:\([a-z0-9_]*\) .*/\1/p" | tr '\n' ' ')
  printf '%s\n' "$PG_SUITE_SKIP" | grep "^$b:" | sed 's/^/  left out on PostgreSQL: /'
  out=$(SLUICE_TEST_JOURNAL=$suite_url SLUICE_TEST_PG_RESET=$reset \
    SLUICE_TEST_SKIP="$skip" timeout 600 "$SLUICE_BUILD/tests/$b" 2>&1)
  rc=$?
  [ "$rc" -eq 0 ] || echo "$out" | grep -v "^    #\|^$\|leak of" | head -30
  check "$b on PostgreSQL passes (rc $rc)" test "$rc" -eq 0
  ran=$(echo "$out" | grep -c "^\[       OK \]")
  check "... $ran of its tests ran there" test "$ran" -gt 0
  suite_ran=$((suite_ran + ran))
  for n in $skip; do
    suite_left=$((suite_left + 1))
    check "... $n is left out by name (the list is not stale)" \
      grep -q "LEFT OUT \] $n " <<<"$out"
  done
done
echo "  the journal suite on PostgreSQL: $suite_ran tests ran, $suite_left left out"

# The CLI through a URI with a password (the scram role), as a producer.
pg_createdb sluice_cli >/dev/null
pg_psql -d sluice_cli -c "GRANT ALL ON DATABASE sluice_cli TO $PG_PW_ROLE;
  GRANT CREATE ON SCHEMA public TO $PG_PW_ROLE" >/dev/null
pwurl="postgresql://$PG_PW_ROLE:$PG_PW_PASSWORD@127.0.0.1:$PGPORT/sluice_cli"
"$SLUICE" enqueue --journal "$pwurl" --queue q1 \
  '{"model":"gpt-4o-mini","input":"hi"}' >"$T/enq.out" 2>"$T/enq.err"
rc=$?
check "sluice enqueue on postgresql:// (rc $rc)" test "$rc" -eq 0
eq "... the job is in sluice.jobs" "q1|pending" \
  "$(pg_psql -d sluice_cli -c "SELECT queue, state FROM sluice.jobs")"
"$SLUICE" enqueue --journal "${pwurl/$PG_PW_PASSWORD/WRONG-SECRET}" \
  '{"model":"gpt-4o-mini","input":"hi"}' >"$T/bad.out" 2>"$T/bad.err"
rc=$?
check "a wrong password is refused (rc $rc)" test "$rc" -ne 0
check "... naming the server, not the location" grep -q "127.0.0.1" "$T/bad.err"
check "... never printing the password" \
  bash -c "! grep -q -e WRONG-SECRET -e '$PG_PW_PASSWORD' '$T/bad.out' '$T/bad.err' '$T/enq.out' '$T/enq.err'"
check "... and no advice to create it" bash -c "! grep -q 'create it' '$T/bad.err'"
finish
