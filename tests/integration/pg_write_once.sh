#!/usr/bin/env bash
# pg migration 0020 on a throwaway cluster: test_pg_write_once (the
# library's enqueue writes job_bodies itself with the door's model and
# out_tokens, the door's refusals still reach its rows, usage_daily equals
# a recount over results whoever wrote them).
. "$(dirname "$0")/../lib/testlib.sh"
. "$SLUICE_ROOT/tests/lib/pglib.sh"
if ! pg_available; then
  echo "SKIP: PostgreSQL is not installed"
  exit 0
fi
PG_OPTS="-c fsync=off" pg_start || { fail "pg_start"; finish; }
pg_createdb sluice_wo >/dev/null
out=$(SLUICE_TEST_JOURNAL="postgresql://$PG_ADMIN@127.0.0.1:$PGPORT/sluice_wo" \
  "$SLUICE_BUILD/tests/test_pg_write_once" 2>&1)
rc=$?
echo "$out" | grep -E "^\[  (FAILED|SKIPPED|  OK) \]|PASSED" | sed 's/^/  /'
[ "$rc" -eq 0 ] || echo "$out" | grep -v "^    #\|^$\|leak of" | head -30
check "test_pg_write_once passes on PostgreSQL (rc $rc)" test "$rc" -eq 0
case $out in
  *SKIPPED*) fail "... and none was skipped" ;;
  *) pass "... and none was skipped" ;;
esac
finish
