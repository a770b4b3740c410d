#!/usr/bin/env bash
# The loop never sleeps in SQLite (issue 14): while another process holds
# the journal's write lock for 3 s, a worker keeps taking the responses of
# its requests in flight (its metrics count them) instead of freezing in
# SQLite's busy handler at the first outcome it tries to record; once the
# lock goes, each outcome is recorded exactly once.
. "$(dirname "$0")/../lib/testlib.sh"

N=4
start_mock --latency-ms 2000 --log "$T/mock.log"
"$SLUICE" init >/dev/null
for i in $(seq 1 $N); do printf '{"model":"m","input":"%d"}\n' "$i"; done |
  "$SLUICE" enqueue >/dev/null
# Due one every 0.15 s from 1 s on, so that their responses come one by one.
sql "UPDATE jobs SET run_after = CAST((julianday('now') - 2440587.5)
  * 86400000.0 AS INTEGER) + 1000 + (id - 1) * 150"
: >"$T/worker.log"
"$SLUICE" work --base-url "$MOCK_URL" --metrics-port 0 \
  --concurrency 16 --poll 100ms 2>"$T/worker.log" &
w=$!
PIDS+=("$w")
wait_for 10 grep -q "metrics on http" "$T/worker.log"
port=$(grep -o 'metrics on http://127.0.0.1:[0-9]*' "$T/worker.log" |
  grep -o '[0-9]*$')
# All claimed and sent (the mock logs a request when it answers).
wait_for 10 bash -c "[ \$(sqlite3 '$SLUICE_JOURNAL' \"SELECT count(*) FROM
  jobs WHERE state = 'running'\") -eq $N ]"
( echo "BEGIN IMMEDIATE;"; echo "SELECT 'locked';"; sleep 3; echo "COMMIT;" ) |
  sqlite3 "$SLUICE_JOURNAL" >"$T/lock.out" 2>&1 &
locker=$!
PIDS+=("$locker")
wait_for 5 grep -q locked "$T/lock.out"
eq "the lock is taken before any response" 0 \
  "$(sql "SELECT count(*) FROM jobs WHERE state = 'succeeded'")"
# Every response is due within 2 s of the lock; the lock lasts 3 s.
# Polled for as long as the lock lasts (the loop ends when the locker is
# gone), not for a count of rounds a loaded machine may spend before the
# responses come.
ok=0
for i in $(seq 1 600); do
  got=$(curl -s "http://127.0.0.1:$port/metrics" |
    sed -n 's/^sluice_attempts_total{route="online",class="none"} //p')
  [ "${got:-0}" -ge $N ] && { ok=1; break; }
  kill -0 "$locker" 2>/dev/null || break
  sleep 0.05
done
eq "the worker took all $N responses while the journal was locked" 1 $ok
check "the lock was still held then" kill -0 "$locker"
wait "$locker"
check "the outcomes are recorded once the lock is gone" wait_for 10 \
  bash -c "[ \$(sqlite3 '$SLUICE_JOURNAL' \"SELECT count(*) FROM jobs WHERE state = 'succeeded'\") -eq $N ]"
kill -TERM "$w"
wait "$w"
eq "the worker stops cleanly" 0 $?
eq "every job recorded once" "$N|$N" \
  "$(sql "SELECT count(*), (SELECT count(DISTINCT job_id) FROM results) FROM jobs WHERE state='succeeded'")"
stop_mock
eq "each job sent once" $N \
  "$(api_calls "$T/mock.log" | awk '{print $4}' | sort -u | wc -l)"
finish
