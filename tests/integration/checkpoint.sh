#!/usr/bin/env bash
# The worker's loop connection never checkpoints the WAL (issue 14): a
# pool thread does, on its own connection, once the WAL passes the mark
# (SLUICE_CHECKPOINT_PAGES here: 100 pages, ~400 KiB). A worker that alone
# writes for thousands of jobs keeps its WAL bounded, and every job
# succeeds. With the checkpoints on the loop (SLUICE_CHECKPOINT_ON_LOOP=1,
# SQLite's mark of 10,000 pages, as before) the WAL of the same run grows
# past the bound: the check below tells the two apart.
. "$(dirname "$0")/../lib/testlib.sh"

JOBS=${CKPT_JOBS:-4000}
BOUND=$((4 << 20)) # bytes

# run_worker: work JOBS jobs with a worker kept running (its exit as the
# last connection would checkpoint and delete the WAL); sample the WAL
# file's size meanwhile; prints the largest seen.
run_worker() {
  local w max=0 s i
  timeout 300 "$SLUICE" work --base-url "$MOCK_URL" --concurrency 64 \
    --poll 100ms --no-batch 2>>"$T/worker.log" &
  w=$!
  PIDS+=("$w")
  for i in $(seq 1 6000); do # bounded: 300 s
    s=$(stat -c %s "$SLUICE_JOURNAL-wal" 2>/dev/null || echo 0)
    [ "$s" -gt "$max" ] && max=$s
    if [ $((i % 10)) = 0 ] &&
      [ "$(sql "SELECT count(*) FROM jobs WHERE state='succeeded'")" = "$JOBS" ]; then
      break
    fi
    sleep 0.05
  done
  s=$(stat -c %s "$SLUICE_JOURNAL-wal" 2>/dev/null || echo 0)
  [ "$s" -gt "$max" ] && max=$s
  kill -TERM "$w"
  wait "$w"
  echo "$max"
}

fill() {
  reset_journal
  "$SLUICE" init >/dev/null
  for i in $(seq 1 "$JOBS"); do
    printf '{"model":"gpt-4o-mini","input":"job %d %0300d"}\n' "$i" 0
  done | "$SLUICE" enqueue >/dev/null
  # the enqueue's exit (the last connection) checkpointed and removed it
  eq "no WAL left by the producer" 0 \
    "$(stat -c %s "$SLUICE_JOURNAL-wal" 2>/dev/null || echo 0)"
}

start_mock
fill
max=$(SLUICE_CHECKPOINT_PAGES=100 run_worker)
eq "every job succeeded (checkpoints off the loop)" "$JOBS" \
  "$(sql "SELECT count(*) FROM jobs WHERE state='succeeded'")"
if [ "$max" -gt 0 ] && [ "$max" -lt "$BOUND" ]; then
  pass "the WAL stayed bounded with the worker alone ($max bytes)"
else
  fail "the WAL stayed bounded with the worker alone" "$max bytes"
fi
echo "checkpoint: WAL high-water off the loop (mark 100 pages): $max bytes"

# the same run with the old way: the WAL grows to SQLite's mark
fill
old=$(SLUICE_CHECKPOINT_PAGES=100 SLUICE_CHECKPOINT_ON_LOOP=1 run_worker)
eq "every job succeeded (checkpoints on the loop)" "$JOBS" \
  "$(sql "SELECT count(*) FROM jobs WHERE state='succeeded'")"
check "the bound tells the old way apart ($old bytes)" [ "$old" -ge "$BOUND" ]
stop_mock
finish
