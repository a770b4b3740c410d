#!/usr/bin/env bash
# batch_off_loop.sh on a PostgreSQL journal: the batch route's long ops
# (backlog read, pack, JSONL write, ingest, end) run on a pool thread with
# the route's own connection, so online jobs keep flowing and the loop is
# never held for long; SIGTERM during a pack waits for it and loses or
# doubles nothing (tests/lib/offloop.sh).
. "$(dirname "$0")/../lib/testlib.sh"
. "$SLUICE_ROOT/tests/lib/pglib.sh"
. "$SLUICE_ROOT/tests/lib/batchlib.sh"
. "$SLUICE_ROOT/tests/lib/offloop.sh"
if ! pg_available; then
  echo "SKIP: PostgreSQL is not installed"
  exit 0
fi
PG_OPTS="-c fsync=off" pg_start || { fail "pg_start"; finish; }
start_mock --batch-phase-ms 100 --latency-ms 20 --log "$T/mock.log" ||
  { fail "mock"; finish; }
export STATE_DIRECTORY="$T/state"
mkdir -p "$STATE_DIRECTORY"

DB=""
N=0
sql() { PGOPTIONS="-c search_path=sluice" pg_psql -d "$DB" -c "$1"; }
journal_id() { sql "SELECT value FROM meta WHERE key = 'journal_id'"; }
fresh_journal() {
  N=$((N + 1))
  DB="offloop$N"
  pg_createdb "$DB" >/dev/null
  export SLUICE_JOURNAL="postgresql://$PG_ADMIN@127.0.0.1:$PGPORT/$DB"
  "$SLUICE" init >/dev/null 2>&1
}

# Fewer jobs than on SQLite: sl_batch_ingest on PostgreSQL ran ~75 lines/s
# in the sanitizer build on this loaded machine (load 15).
offloop_flow "${OFFLOOP_JOBS:-1000}"
offloop_sigterm "${OFFLOOP_PACK_JOBS:-3000}"
stop_mock
finish
