#!/usr/bin/env bash
# sluice work --prune-older-than: finished jobs past the retention go, in
# the background (thread pool, own connection), while the worker serves.
. "$(dirname "$0")/../lib/testlib.sh"

start_mock
"$SLUICE" init >/dev/null
for i in $(seq 1 30); do printf '{"model":"m","input":"old %d"}\n' "$i"; done |
  "$SLUICE" enqueue >/dev/null
sql "UPDATE jobs SET state='running'; UPDATE jobs SET state='succeeded', finished_at=1000, updated_at=1000"
sql "INSERT INTO results(job_id, generation, route, http_status, body, created_at) SELECT id, 0, 'online', 200, '{}', 1000 FROM jobs"
for i in $(seq 1 20); do printf '{"model":"m","input":"new %d"}\n' "$i"; done |
  "$SLUICE" enqueue >/dev/null
"$SLUICE" work --base-url "$MOCK_URL" --prune-older-than 1d --prune-every 200ms \
  --poll 100ms 2>"$T/worker.log" &
w=$!
PIDS+=("$w")
pruned() { [ "$(sql "SELECT count(*) FROM jobs WHERE finished_at = 1000")" = 0 ]; }
wait_for 20 pruned
check "old finished jobs pruned" pruned
# The line is written on the loop after the pool thread's commit.
check "the worker logged the prune" \
  wait_for 10 grep -q "pruned 30 finished jobs" "$T/worker.log"
done20() { [ "$(sql "SELECT count(*) FROM jobs WHERE state='succeeded'")" = 20 ]; }
wait_for 20 done20
eq "new jobs served and kept" 20 "$(sql "SELECT count(*) FROM jobs WHERE state='succeeded'")"
eq "their results kept, old ones gone" 20 "$(sql 'SELECT count(*) FROM results')"
kill -TERM "$w"
wait "$w"
eq "exits 0" 0 $?
stop_mock
finish
