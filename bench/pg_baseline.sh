#!/usr/bin/env bash
# The raw libpq SKIP LOCKED baseline (bench/bench_pg_baseline.c) against a
# throwaway PostgreSQL cluster (tests/lib/pglib.sh) with the durable
# defaults (fsync and synchronous_commit on), schema from migrations/pg/.
# Skips with a message when PostgreSQL is not installed.
# Usage: bench/pg_baseline.sh [BUILD_DIR] [-q] [-r RUNS] [-t TEST]...
# (TEST: many, door, copy, claim1, claim64; bench_pg_baseline.c)
set -u
BUILD=${1:-build}
shift || true
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "$ROOT" && cd "$BUILD" && pwd) || { echo "no build dir" >&2; exit 2; }
export SLUICE_ROOT="$ROOT"
BIN="$BUILD/bench/bench_pg_baseline"
. "$ROOT/tests/lib/pglib.sh"

if ! pg_available; then
  echo "pg_baseline: skipped: PostgreSQL is not installed (deploy/install-deps.sh)"
  exit 0
fi
if [ ! -x "$BIN" ]; then
  echo "pg_baseline: skipped: $BIN not built (make bench)"
  exit 0
fi
pg_start || exit 1
pg_createdb bench >/dev/null || exit 1
pg_migrate bench || exit 1
"$BIN" "host=127.0.0.1 port=$PGPORT user=$PGUSER dbname=bench" "$@"
