#!/usr/bin/env bash
# bench/busy.sh: a worker's flush beside a producer, before and after
# (issue 14: producers and workers share the write lock fairly). Runs
# BUILD/bench/bench_busy -m poll (the worker's busy handler: a flush every
# 10 ms, 5 ms polls, 2 ms retry timer) while a producer enqueues N
# (200,000) jobs in calls of 10,000, RUNS (2) times, each on a fresh copy
# of the same journal. BASE=BUILD_DIR runs BASE's bench_busy too,
# interleaved, so both sides meet the same machine load (say main's build:
# `make -C MAIN all build/bench/bench_busy`).
#
# The journal: BUSY_DB=PATH copies that one for each run (made by `sluice
# init` and `scale_build PATH JOBS`; bench/scale.sh); else
# BUSY_JOURNAL_JOBS (0) jobs are first put in one by scale_build (about 1
# min per 400k jobs here); 0: an empty journal.
# Figures only: exit 1 only when a step fails.
#
# Usage: bench/busy.sh [BUILD_DIR]   Env: N, RUNS, BASE, BUSY_DB,
# BUSY_JOURNAL_JOBS, TMPDIR
set -u
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "$ROOT" && cd "$BUILD" && pwd) ||
  { echo "no build dir" >&2; exit 2; }
N=${N:-200000}
RUNS=${RUNS:-2}
BASE=${BASE:-}
[ -n "$BASE" ] && { BASE=$(cd "$ROOT" && cd "$BASE" && pwd) || exit 2; }
JOBS=${BUSY_JOURNAL_JOBS:-0}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench-busy.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
fail() { echo "busy.sh: $*" >&2; exit 1; }

SRC=${BUSY_DB:-}
if [ -z "$SRC" ]; then
  SRC=$TMP/src.db
  # made by BASE when given: a newer build migrates an older journal when
  # it opens it (before the race), an older one refuses a newer journal
  INIT=${BASE:-$BUILD}
  "$INIT/sluice" init --journal "$SRC" >/dev/null || fail "init"
  if [ "$JOBS" -gt 0 ]; then
    "$INIT/bench/scale_build" "$SRC" "$JOBS" >/dev/null ||
      fail "scale_build"
  fi
fi
[ -f "$SRC" ] || fail "no journal $SRC"
before=$(sqlite3 "$SRC" 'SELECT count(*) FROM jobs') || fail "count"
echo "busy.sh: the worker's flush beside a producer of $N jobs in calls of" \
  "10,000 on a journal of $before jobs; load $(cut -d' ' -f1-3 /proc/loadavg)"

run() { # LABEL BUILD
  rm -f "$TMP/run.db" "$TMP/run.db-wal" "$TMP/run.db-shm"
  cp "$SRC" "$TMP/run.db" || fail "copy"
  "$2/bench/bench_busy" -m poll -n "$N" -j "$TMP/run.db" >"$TMP/out" ||
    fail "$1: bench_busy failed"
  sed -n 's/^ *producer calls/producer calls/p; s/^poll *//p' "$TMP/out" |
    sed "s/^/  $1: /"
  [ "$(sqlite3 "$TMP/run.db" 'SELECT count(*) FROM jobs')" -gt \
    $((before + N - 1)) ] || fail "$1: the producer's jobs are missing"
}

for r in $(seq 1 "$RUNS"); do
  if [ -n "$BASE" ] && [ $((r % 2)) = 1 ]; then run base "$BASE"; fi
  run this "$BUILD"
  if [ -n "$BASE" ] && [ $((r % 2)) = 0 ]; then run base "$BASE"; fi
done
