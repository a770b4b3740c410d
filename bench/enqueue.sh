#!/usr/bin/env bash
# bench/enqueue.sh: `sluice enqueue` from JSON Lines against sl_enqueue_many
# on the same rows, in the same run.
#
# ROWS rows (100,000) of one small body are written to a file; each run
# then takes a fresh journal and enqueues the file twice over: the CLI
# (`sluice enqueue -j J < FILE`, the whole process timed: start, read,
# enqueue, exit) and worker_probe enqueue (one sl_enqueue_many call on the
# same lines, the call alone). Median of RUNS (3) each, interleaved; the
# ratio CLI/library is the figure (aim: at least 0.8), by wall clock and by
# CPU time (user + system of the CLI process against the probe's CPU over
# the call): on a loaded machine the wall clock mostly measures the
# scheduler, so trust the CPU ratio there.
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
: >"$TMP/clic"; : >"$TMP/libc"; : >"$TMP/libwc"
TIMEFORMAT='%3R %3U %3S'
for r in $(seq "$RUNS"); do
  rm -f "$TMP"/j.db*
  "$SLUICE" init -j "$TMP/j.db" >/dev/null || exit 1
  { time "$SLUICE" enqueue -j "$TMP/j.db" <"$TMP/rows.jsonl" >/dev/null 2>"$TMP/err"; } 2>"$TMP/t" ||
    { cat "$TMP/err" >&2; exit 1; }
  awk -v n="$ROWS" -v c="$TMP/clic" '{printf "%.0f\n", n / $1; printf "%.0f\n", n / ($2 + $3) >>c}' \
    "$TMP/t" >>"$TMP/cli"
  rm -f "$TMP"/j.db*
  "$SLUICE" init -j "$TMP/j.db" >/dev/null || exit 1
  "$PROBE" enqueue "$TMP/j.db" "$TMP/rows.jsonl" |
    awk -v w="$TMP/libw" -v c="$TMP/libc" -v wc="$TMP/libwc" '{
      printf "%.0f\n", $1 / $2; printf "%.0f\n", $1 / $3 >>w
      printf "%.0f\n", $1 / $4 >>c; printf "%.0f\n", $1 / $5 >>wc }' \
      >>"$TMP/lib" || exit 1
done
runs() { tr '\n' ' ' <"$1"; }
cli=$(median <"$TMP/cli"); lib=$(median <"$TMP/lib"); libw=$(median <"$TMP/libw")
clic=$(median <"$TMP/clic"); libc=$(median <"$TMP/libc"); libwc=$(median <"$TMP/libwc")
echo " wall clock (rows per second):"
printf '   sluice enqueue (CLI, whole process): %s rows/s  (runs: %s)\n' "$cli" "$(runs "$TMP/cli")"
printf '   sl_enqueue_many (the call alone):    %s rows/s  (runs: %s)\n' "$lib" "$(runs "$TMP/lib")"
printf '   sl_open..sl_close around it:         %s rows/s  (runs: %s)\n' "$libw" "$(runs "$TMP/libw")"
echo " CPU time, user + system (rows per CPU second; what load disturbs least):"
printf '   sluice enqueue (CLI, whole process): %s rows/s  (runs: %s)\n' "$clic" "$(runs "$TMP/clic")"
printf '   sl_enqueue_many (the call alone):    %s rows/s  (runs: %s)\n' "$libc" "$(runs "$TMP/libc")"
printf '   sl_open..sl_close around it:         %s rows/s  (runs: %s)\n' "$libwc" "$(runs "$TMP/libwc")"
awk -v c="$cli" -v l="$lib" -v w="$libw" 'BEGIN {printf "   ratio CLI/library, wall: %.2f against the call (aim >= 0.80), %.2f against open..close\n", c / l, c / w}'
awk -v c="$clic" -v l="$libc" -v w="$libwc" 'BEGIN {printf "   ratio CLI/library, CPU:  %.2f against the call (aim >= 0.80), %.2f against open..close\n", c / l, c / w}'
# Runs are interleaved (CLI, probe, CLI, probe...), so the ratio of each
# run's pair shares that moment's load: their median is the steadier figure.
pair() { paste -d' ' "$1" "$2" | awk '{printf "%.3f\n", $1 / $2}' | median; }
printf '   pairwise median ratio against the call: wall %.2f, CPU %.2f\n' \
  "$(pair "$TMP/cli" "$TMP/lib")" "$(pair "$TMP/clic" "$TMP/libc")"
