#!/usr/bin/env bash
# README: the C example is a whole program that compiles and runs as the
# README says (against the build directory, before make install, through
# the libsluice.so.0 link); every shell example names its journal
# (--journal, or after `export SLUICE_JOURNAL` at the top); make demo is
# described with the numbers deploy/demo.sh uses.
. "$(dirname "$0")/../lib/testlib.sh"
R="$SLUICE_ROOT/README.md"

# The first ```c block, exactly as printed.
awk '/^```c$/ {on = 1; next} on && /^```$/ {exit} on {print}' "$R" >"$T/producer.c"
check "README has a C example" test -s "$T/producer.c"
check "... a whole program (it has main)" grep -q '^int main(' "$T/producer.c"
check "build/ has the libsluice.so.0 link" test -L "$SLUICE_BUILD/libsluice.so.0"
# The README's command, with the build directory for "build" (and the
# sanitizers when the library was built with them).
san=""
nm -D "$SLUICE_BUILD/libsluice.so" | grep -q __asan_init && san="-fsanitize=address,undefined"
grep -q '^cc -Iinclude producer.c -Lbuild -lsluice -o producer$' "$R"
eq "README says how to build against build/" 0 $?
(cd "$SLUICE_ROOT" && cc $san -std=c11 -Wall -Wextra -Werror -Iinclude "$T/producer.c" \
  -L"$SLUICE_BUILD" -lsluice -o "$T/producer") 2>"$T/cc.err"
eq "the C example compiles as shown (-Wall -Wextra -Werror)" "0 " "$? $(head -3 "$T/cc.err")"
LD_LIBRARY_PATH="$SLUICE_BUILD" "$T/producer" "$T/p.db" >"$T/out" 2>&1
eq "it runs with LD_LIBRARY_PATH=build" 0 $?
eq "... and enqueues its job" "mail|order-1234|acme" \
  "$(sqlite3 "$T/p.db" "SELECT queue, idempotency_key, metadata ->> 'tenant' FROM jobs")"
LD_LIBRARY_PATH="$SLUICE_BUILD" "$T/producer" "$T/p.db" >"$T/out" 2>&1
check "a second run finds the key" grep -q "already there" "$T/out"

# Every `sluice` command line in a sh block names its journal, or comes
# after `export SLUICE_JOURNAL=` in the file.
awk '
  /^```sh$/ {on = 1; next}
  on && /^```$/ {on = 0; next}
  on && /^export SLUICE_JOURNAL=/ {exported = 1}
  on && /^sluice [a-z]/ && $2 != "work" || on && /^sluice work/ {
    if (!exported && $0 !~ /--journal/) print NR ": " $0
  }' "$R" >"$T/nojournal"
eq "every shell example has --journal or follows export SLUICE_JOURNAL" "" "$(cat "$T/nojournal")"

# make demo: the README's numbers are demo.sh's
D="$SLUICE_ROOT/deploy/demo.sh"
online=$(sed -n 's/^ *ONLINE=\([0-9]*\)$/\1/p' "$D" | sort -n | tail -1)
batched=$(sed -n 's/.*BATCHED=\${DEMO_BATCHED:-\([0-9]*\)}.*/\1/p' "$D")
check "demo.sh enqueues urgent and deferrable jobs" \
  bash -c "grep -q -- '--urgency deferrable' '$D' && test -n '$batched'"
printf -v online_fmt "%'d" "$online" 2>/dev/null || online_fmt=$online
check "README: make demo's urgent jobs ($online)" \
  bash -c "grep -A8 '^\`make demo\`' '$R' | grep -qE '(${online}|1,000) urgent jobs'"
check "README: make demo's deferrable jobs ($batched)" \
  bash -c "grep -A8 '^\`make demo\`' '$R' | grep -q '$batched deferrable'"
# The psql door block (the first ```sql block) runs as printed on a fresh
# PostgreSQL journal: two jobs, the second insert of the same key adds
# nothing, and the replay row is taken.
SQLB=$(awk '/^```sql$/ {on = 1; next} on && /^```$/ {exit} on {print}' "$R")
check "README has a psql door example" test -n "$SQLB"
. "$SLUICE_ROOT/tests/lib/pglib.sh"
if pg_available && PG_OPTS="-c fsync=off" pg_start >"$T/pg.out" 2>&1; then
  pg_createdb readme >/dev/null
  "$SLUICE" init --journal "postgresql://$PG_ADMIN@127.0.0.1:$PGPORT/readme" >/dev/null
  printf '%s\n' "$SQLB" "$SQLB" >"$T/door.sql" # twice: the key dedups
  pg_psql -d readme -f "$T/door.sql" >"$T/door.out" 2>&1
  eq "the psql block runs twice without an error" "0 " "$? $(head -3 "$T/door.out")"
  eq "... three jobs, one per key" "3|1" "$(pg_psql -d readme -c "SELECT count(*),
    count(*) FILTER (WHERE idempotency_key = 'order-1234') FROM sluice.jobs")"
  eq "... and its replays recorded" 2 "$(pg_psql -d readme -c "SELECT count(*) FROM sluice.replays")"
else
  echo "SKIP: PostgreSQL is not available (README psql block not run)"
fi
finish
