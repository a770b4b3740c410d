#!/usr/bin/env bash
# bench/batch_loop_lag.sh: how long the batch route holds the worker's
# event loop (issues 14 and 15). JOBS (30,000) deferrable jobs of ~BODY
# bytes go through one batch against sluice-mock (pack, JSONL write,
# upload, ingest, end) with the worker's --exit-when-idle; the worker's stop
# line gives the longest hold its loop-lag probe saw. Each run is done
# twice, interleaved: as built (the route's long ops on a pool thread) and
# with SLUICE_BATCH_ON_LOOP=1 (on the loop, as before), RUNS (3) times.
# Prints per run: longest hold, pack ms, ingest ms, worker CPU s (user +
# system). Figures only: exit 1 only when a step fails.
#
# Usage: bench/batch_loop_lag.sh [BUILD_DIR]   Env: JOBS, BODY, RUNS, TMPDIR
set -u
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "$ROOT" && cd "$BUILD" && pwd) ||
  { echo "no build dir" >&2; exit 2; }
JOBS=${JOBS:-30000}
BODY=${BODY:-100}
RUNS=${RUNS:-3}
NAME=batch_loop_lag
. "$ROOT/bench/lib.sh"

bench_mock --batch-phase-ms 100
B=$TMP/base.db
bench_deferrable "$B" "$JOBS" "$BODY"

num() { sed -n "s/.*$1 \\([0-9][0-9]*\\) ms.*/\\1/p" "$TMP/work.log" |
  sort -n | tail -1; }

run() { # MODE (off|on): one run, one line of figures
  local mode=$1 J=$TMP/j.db t0 t1 c
  rm -f "$J" "$J-wal" "$J-shm"
  cp "$B" "$J"
  : >"$TMP/work.log"
  if [ "$mode" = on ]; then export SLUICE_BATCH_ON_LOOP=1
  else unset SLUICE_BATCH_ON_LOOP; fi
  /usr/bin/time -f "%U %S" -o "$TMP/cpu" timeout 600 "$BUILD/sluice" work \
    --journal "$J" --base-url "$MOCK_URL" --batch-max-wait 300ms \
    --batch-poll 100ms --exit-when-idle 2>"$TMP/work.log" ||
    fail "worker failed: $(tail -3 "$TMP/work.log")"
  unset SLUICE_BATCH_ON_LOOP
  c=$(awk '{ printf "%.2f", $1 + $2 }' "$TMP/cpu")
  printf "%-4s held %6s ms  pack %6s ms  ingest %6s ms  cpu %s s\n" \
    "$mode" "$(num 'held for at most')" "$(num 'packed .* in')" \
    "$(num 'ingested in')" "$c"
}

echo "JOBS=$JOBS BODY=$BODY, load $(cut -d' ' -f1-3 /proc/loadavg)"
for i in $(seq 1 "$RUNS"); do
  run off
  run on
done
