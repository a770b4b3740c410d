#!/usr/bin/env bash
# A locked journal: another process holds the write lock longer than the
# worker's busy timeout. The worker says what is wrong, keeps its outcomes,
# and records each exactly once when the lock goes; producers see SL_BUSY
# as a clear error, not a corrupt journal.
. "$(dirname "$0")/../lib/testlib.sh"

start_mock --latency-ms 20 --log "$T/mock.log"
"$SLUICE" init >/dev/null
for i in $(seq 1 200); do printf '{"model":"m","input":"%d"}\n' "$i"; done |
  "$SLUICE" enqueue >/dev/null
# hold the write lock for 13 s (the worker waits 10 s per attempt)
( echo "BEGIN IMMEDIATE;"; echo "SELECT 'locked';"; sleep 13; echo "COMMIT;" ) |
  sqlite3 "$SLUICE_JOURNAL" >"$T/lock.out" 2>&1 &
locker=$!
PIDS+=("$locker")
wait_for 5 grep -q locked "$T/lock.out"
timeout 90 "$SLUICE" work --base-url "$MOCK_URL" --exit-when-idle --poll 200ms \
  2>"$T/worker.log" &
w=$!
PIDS+=("$w")
"$SLUICE" enqueue '{"model":"m","input":"late"}' >/dev/null 2>"$T/enq.err"
eq "a producer blocked past the busy timeout gets exit 3" 3 $?
check "and a clear reason" grep -q "locked" "$T/enq.err"
wait "$w"
eq "the worker finishes once the lock is gone" 0 $?
wait "$locker"
eq "every job recorded once" "200|200" \
  "$(sql "SELECT count(*), (SELECT count(DISTINCT job_id) FROM results) FROM jobs WHERE state='succeeded'")"
check "the worker said what was wrong" grep -q "locked\|busy" "$T/worker.log"
eq "integrity_check" ok "$(sql 'PRAGMA integrity_check')"
stop_mock
# Requests and distinct keys: the distinct count alone (200) also passes
# when a job is sent twice.
eq "each job sent once despite the wait" "200 200" \
  "$(api_calls "$T/mock.log" | wc -l) $(api_calls "$T/mock.log" |
    awk '{print $4}' | sort -u | wc -l)"
finish
