#!/usr/bin/env bash
# lib/pg against the raw libpq baseline, in one throwaway cluster and one
# run (durable defaults: fsync and synchronous_commit on): the baseline
# (bench_pg_baseline) on one database, libsluice (pg_lib) on another, and
# the ratio of their medians per measurement. The machine is shared, so
# read the ratios, not the absolute figures, and mind the [min-max].
# Usage: bench/pg_lib.sh [BUILD_DIR] [-q] [-r RUNS]
set -u
BUILD=${1:-build}
shift || true
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "$ROOT" && cd "$BUILD" && pwd) || { echo "no build dir" >&2; exit 2; }
export SLUICE_ROOT="$ROOT"
BASE="$BUILD/bench/bench_pg_baseline" LIB="$BUILD/bench/pg_lib"
. "$ROOT/tests/lib/pglib.sh"

if ! pg_available; then
  echo "pg_lib: skipped: PostgreSQL is not installed"
  exit 0
fi
if [ ! -x "$BASE" ] || [ ! -x "$LIB" ]; then
  echo "pg_lib: skipped: $BASE or $LIB not built (make bench)"
  exit 0
fi
pg_start || exit 1
pg_createdb base >/dev/null && pg_createdb lib >/dev/null || exit 1
pg_migrate base || exit 1
out=$(mktemp)
"$BASE" "host=127.0.0.1 port=$PGPORT user=$PGUSER dbname=base" "$@" | tee "$out" || exit 1
"$LIB" "postgresql://$PGUSER@127.0.0.1:$PGPORT/lib" "$@" | tee -a "$out" || exit 1
# Ratio per title: lib/pg median / baseline median.
awk '/ jobs \(median/ { t = $0; sub(/, [0-9]+ jobs.*/, "", t) }
  /^  baseline/ { b[t] = $2 } /^  lib\/pg/ { l[t] = $2 }
  END { for (t in l) if (b[t] > 0)
          printf "ratio lib/pg / baseline: %.2f  %s\n", l[t] / b[t], t }' "$out"
rm -f "$out"
