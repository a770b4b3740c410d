#!/usr/bin/env bash
# bench/enqueue.sh: `sluice enqueue` from JSON Lines against sl_enqueue_many
# on the same rows, in the same run.
#
# ROWS rows (100,000) of one small body are written to a file; each run
# then takes a fresh journal and enqueues the file twice over: the CLI
# (`sluice enqueue -j J < FILE`, the whole process timed: start, read,
# enqueue, exit) and worker_probe enqueue (one sl_enqueue_many call on the
# same lines, the call alone). Median of RUNS (3) each, interleaved; the
# ratio CLI/library is the figure (aim: at least 0.8).
# Figures only: exit 1 only when a tool is missing or a run fails.
#
# Usage: bench/enqueue.sh [BUILD_DIR]   (release: make all build/bench/worker_probe)
# Env: ROWS, RUNS, SLUICE (the sluice binary; default BUILD_DIR/sluice)
set -u
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "$ROOT" && cd "$BUILD" && pwd) ||
  { echo "no build dir" >&2; exit 2; }
SLUICE=${SLUICE:-$BUILD/sluice}
PROBE=$BUILD/bench/worker_probe
ROWS=${ROWS:-100000}
RUNS=${RUNS:-3}
BODY='{"model":"gpt-4o-mini","input":"Say hello to the benchmark."}'
for t in "$SLUICE" "$PROBE"; do
  [ -x "$t" ] || { echo "enqueue.sh: $t missing" >&2; exit 1; }
done
TMP=$(mktemp -d /tmp/sluice-bench-enqueue.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
yes "$BODY" | head -n "$ROWS" >"$TMP/rows.jsonl"

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "enqueue bench: $ROWS rows, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
: >"$TMP/cli"; : >"$TMP/lib"; : >"$TMP/libw"
for r in $(seq "$RUNS"); do
  rm -f "$TMP"/j.db*
  "$SLUICE" init -j "$TMP/j.db" >/dev/null || exit 1
  t0=$(date +%s%N)
  "$SLUICE" enqueue -j "$TMP/j.db" <"$TMP/rows.jsonl" >/dev/null || exit 1
  t1=$(date +%s%N)
  awk -v n="$ROWS" -v ns=$((t1 - t0)) 'BEGIN {printf "%.0f\n", n / (ns / 1e9)}' >>"$TMP/cli"
  rm -f "$TMP"/j.db*
  "$SLUICE" init -j "$TMP/j.db" >/dev/null || exit 1
  "$PROBE" enqueue "$TMP/j.db" "$TMP/rows.jsonl" |
    awk -v w="$TMP/libw" '{printf "%.0f\n", $1 / $2; printf "%.0f\n", $1 / $3 >>w}' \
      >>"$TMP/lib" || exit 1
done
cli=$(median <"$TMP/cli"); lib=$(median <"$TMP/lib"); libw=$(median <"$TMP/libw")
printf '   sluice enqueue (CLI, whole process): %s rows/s  (runs: %s)\n' "$cli" "$(tr '\n' ' ' <"$TMP/cli")"
printf '   sl_enqueue_many (the call alone):    %s rows/s  (runs: %s)\n' "$lib" "$(tr '\n' ' ' <"$TMP/lib")"
printf '   sl_open..sl_close around it:         %s rows/s  (runs: %s)\n' "$libw" "$(tr '\n' ' ' <"$TMP/libw")"
awk -v c="$cli" -v l="$lib" -v w="$libw" 'BEGIN {printf "   ratio CLI/library: %.2f against the call (aim >= 0.80), %.2f against open..close\n", c / l, c / w}'
