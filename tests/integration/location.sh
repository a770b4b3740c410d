#!/usr/bin/env bash
# The journal's location picks the storage backend (lib/backend.c): a path
# or a file: URI is SQLite, the same journal either way; postgresql:// is
# PostgreSQL (lib/pg/): a server that cannot be reached is reported by
# host, never by repeating the location (it may hold a password), and
# without the "create it" hint meant for a missing file.
. "$(dirname "$0")/../lib/testlib.sh"

"$SLUICE" init >/dev/null
eq "init by path" 0 $?
"$SLUICE" enqueue --journal "file:$SLUICE_JOURNAL" '{"model":"m","input":"a"}' >/dev/null
eq "enqueue through file:PATH" 0 $?
"$SLUICE" enqueue --journal "file://$SLUICE_JOURNAL" '{"model":"m","input":"b"}' >/dev/null
eq "enqueue through file://PATH" 0 $?
eq "both jobs are in the journal the path names" 2 \
  "$(sql "SELECT count(*) FROM jobs")"
check "no file was made under a literal file: name" \
  bash -c "! ls -d file:* 2>/dev/null | grep -q ."

# Port 1 on loopback: refused at once, no DNS or timeout involved; no
# waiting for it to come up (pg_reconnect.sh tests the wait).
PGCONNECT_TIMEOUT=3 "$SLUICE" status --journal-wait 0 --journal \
  "postgresql://u:s3cretpw@127.0.0.1:1/q" >"$T/pg.out" 2>"$T/pg.err"
rc=$?
check "an unreachable postgresql:// fails (exit $rc)" test "$rc" -ne 0
check "... saying it is a PostgreSQL journal, by host and port" \
  grep -q "PostgreSQL journal at 127.0.0.1:1/q" "$T/pg.err"
check "... never printing the password" \
  bash -c "! grep -q s3cretpw '$T/pg.out' '$T/pg.err'"
check "... and no advice to create it" bash -c "! grep -q 'create it' '$T/pg.err'"
finish
