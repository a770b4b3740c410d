#!/usr/bin/env bash
# Commands that only read really read only (issue 10, item 4): status and
# show open the journal read-only, for a user who may only read it; no
# command creates a mistyped journal, converts someone else's SQLite file or
# migrates a journal behind a reader's back. Files are compared by checksum.
. "$(dirname "$0")/../lib/testlib.sh"

NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups)
sum() { sha256sum "$1" | cut -d' ' -f1; }
absent() { [ ! -e "$1" ]; }

# --- a mistyped journal is never created, and the hint says how to make one
for cmd in "status" "show 1" "budget q --tokens-per-day 5"; do
  # shellcheck disable=SC2086
  "$SLUICE" $cmd --journal "$T/typo.db" >/dev/null 2>"$T/err"
  eq "$cmd on a missing journal exits 3" 3 $?
  check "$cmd on a missing journal does not create it" absent "$T/typo.db"
  check "$cmd on a missing journal says it does not exist" \
    grep -q "typo.db does not exist" "$T/err"
  check "$cmd on a missing journal names sluice init" \
    grep -q "sluice init --journal $T/typo.db" "$T/err"
done

# --- someone else's SQLite file is refused by every door, byte for byte
other="$T/other.db"
sqlite3 "$other" "CREATE TABLE notes (x TEXT); INSERT INTO notes VALUES ('a');"
before=$(sum "$other")
for cmd in "status" "show 1" "budget q --tokens-per-day 5" "init" \
  "enqueue {\"model\":\"m\",\"input\":\"x\"}" "pause q" "replay --dry-run"; do
  # shellcheck disable=SC2086
  "$SLUICE" $cmd --journal "$other" >/dev/null 2>"$T/err"
  rc=$?
  check "$cmd refuses a foreign SQLite file (rc=$rc)" test "$rc" -ne 0
  check "$cmd says it is not a sluice journal" \
    grep -q "not a sluice journal" "$T/err"
  eq "$cmd leaves a foreign file byte for byte" "$before" "$(sum "$other")"
done
check "a foreign file gets no WAL" absent "$other-wal"
eq "a foreign file keeps its journal mode" delete \
  "$(sqlite3 "$other" 'PRAGMA journal_mode')"
eq "a foreign file keeps its tables" notes \
  "$(sqlite3 "$other" "SELECT group_concat(name) FROM sqlite_schema")"
sqlite3 "$other" "PRAGMA application_id = 305419896"
before=$(sum "$other")
"$SLUICE" status --journal "$other" >/dev/null 2>"$T/err"
check "a file with another application_id is refused" \
  grep -q "another application" "$T/err"
eq "... and left byte for byte" "$before" "$(sum "$other")"

# --- an operator who may only read the journal
mkdir "$T/ro"
chmod 755 "$T" "$T/ro" # the test's root-owned dirs; $T/ro stays unwritable
j="$T/ro/journal.db"
"$SLUICE" init --journal "$j" >/dev/null
for i in 1 2 3; do
  "$SLUICE" enqueue --journal "$j" "{\"model\":\"m\",\"input\":\"$i\"}" \
    >/dev/null
done
"${NOBODY[@]}" "$SLUICE" status --journal "$j" >/dev/null 2>"$T/err"
eq "a 0600 journal is unreadable to others (exit 3)" 3 $?
check "... and the error names the permission" \
  grep -qi "permission" "$T/err"
chmod 644 "$j"
before=$(sum "$j")
"${NOBODY[@]}" "$SLUICE" status --journal "$j" >"$T/out" 2>"$T/err"
eq "status as a read-only user (no process on the journal)" 0 $?
check "... shows the three pending jobs" \
  grep -Eq "^default +3 " "$T/out"
"${NOBODY[@]}" "$SLUICE" show --journal "$j" 2 >"$T/out" 2>"$T/err"
eq "show as a read-only user" 0 $?
check "... shows the job" grep -q '"input":"2"' "$T/out"
check "a reader creates no -wal" absent "$j-wal"
check "a reader creates no -shm" absent "$j-shm"
eq "a reader leaves the journal byte for byte" "$before" "$(sum "$j")"
"${NOBODY[@]}" "$SLUICE" budget q --tokens-per-day 5 --journal "$j" \
  >/dev/null 2>"$T/err"
eq "a read-only user cannot set a budget (exit 3)" 3 $?
eq "... and the journal is unchanged" "$before" "$(sum "$j")"

# While a writer has it open, -wal and -shm exist with the journal's mode
# (SQLite gives them the main file's); a reader uses them read-only.
fifo="$T/hold"
mkfifo "$fifo"
sqlite3 -cmd ".timeout 5000" "$j" <"$fifo" >"$T/hold.out" &
PIDS+=($!)
exec 7>"$fifo"
echo "INSERT INTO jobs(body) VALUES('{\"model\":\"m\",\"input\":\"4\"}');" >&7
# Wait for the writer's own word that the INSERT committed, not for its
# -shm: SQLite makes the -shm when it opens the WAL, before the commit (a
# status run in between saw 3 jobs).
echo "SELECT 'committed';" >&7
wait_for 10 grep -q committed "$T/hold.out"
"${NOBODY[@]}" "$SLUICE" status --journal "$j" >"$T/out" 2>"$T/err"
eq "status as a read-only user beside a live writer" 0 $?
check "... sees the writer's committed job" grep -Eq "^default +4 " "$T/out"
check "the writer's WAL is still there" test -e "$j-wal"
echo ".quit" >&7
exec 7>&-
wait_for 10 absent "$j-shm"

# --- a journal older than this sluice: readers say how to migrate it
old="$T/old.db"
sqlite3 "$old" "PRAGMA journal_mode=WAL;" >/dev/null
cat "$SLUICE_ROOT/migrations/0001_initial.sql" \
  "$SLUICE_ROOT/migrations/0002_storm.sql" | sqlite3 "$old"
sqlite3 "$old" "PRAGMA user_version = 2;
  INSERT INTO jobs(body) VALUES('{\"model\":\"m\",\"input\":\"old\"}');"
before=$(sum "$old")
"$SLUICE" status --journal "$old" >/dev/null 2>"$T/err"
eq "status on an older journal exits 3" 3 $?
check "... and says to migrate with sluice init" \
  grep -q "older than this sluice.*sluice init --journal $old" "$T/err"
eq "... leaving it byte for byte" "$before" "$(sum "$old")"
"$SLUICE" init --journal "$old" >/dev/null 2>"$T/err"
eq "init migrates a journal made before application_id" 0 $?
eq "... and marks its header" 1397511497 \
  "$(sqlite3 "$old" 'PRAGMA application_id')"
"$SLUICE" status --journal "$old" >"$T/out" 2>&1
check "status reads it afterwards" grep -Eq "^default +1 " "$T/out"

finish
