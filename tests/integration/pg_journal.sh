#!/usr/bin/env bash
# The journal on PostgreSQL (lib/pg/): a throwaway cluster (pglib.sh), the
# unit tests that honour SLUICE_TEST_JOURNAL run against it (with a wrong
# password for the scrubbing check), and the CLI's enqueue through a
# postgresql:// location, which never prints the password.
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
eq "migrations recorded once each" \
  "$(ls "$SLUICE_ROOT"/migrations/pg/[0-9]*.sql | wc -l)" \
  "$(pg_psql -d sluice_unit -c "SELECT count(*) FROM sluice.schema_migrations")"

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
