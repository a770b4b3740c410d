#!/usr/bin/env bash
# lib/pg against the raw libpq baseline, in one throwaway cluster, one
# database and one run, with the same durability (the cluster's defaults,
# fsync and synchronous_commit on, for both; PG_OPTS="-c
# synchronous_commit=off" measures the CPU side instead, for both too).
# Rounds alternate (baseline first in odd rounds, lib/pg first in even
# ones) so that a change in the machine's load falls on both; each round
# starts every measurement from empty tables. Prints the median of the
# rounds per side and the ratio, and per job the commits, WAL bytes and
# CPU time (client process + its server backend, /proc/PID/schedstat),
# which the load hardly moves: the ratio by CPU is the steadier one. The
# machine is shared: read the ratios and the per-job figures, mind the
# [min-max].
# Usage: bench/pg_lib.sh [BUILD_DIR] [-q] [-r ROUNDS]
set -u
BUILD=${1:-build}
shift || true
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "$ROOT" && cd "$BUILD" && pwd) || { echo "no build dir" >&2; exit 2; }
export SLUICE_ROOT="$ROOT"
BASE="$BUILD/bench/bench_pg_baseline" LIB="$BUILD/bench/pg_lib"
. "$ROOT/tests/lib/pglib.sh"

rounds=3 quick=()
while [ $# -gt 0 ]; do
  case "$1" in
    -q) quick=(-q) ;;
    -r) rounds=$2; shift ;;
    *) echo "usage: bench/pg_lib.sh [BUILD_DIR] [-q] [-r ROUNDS]" >&2; exit 2 ;;
  esac
  shift
done
if ! pg_available; then
  echo "pg_lib: skipped: PostgreSQL is not installed"
  exit 0
fi
if [ ! -x "$BASE" ] || [ ! -x "$LIB" ]; then
  echo "pg_lib: skipped: $BASE or $LIB not built (make bench)"
  exit 0
fi
pg_start || exit 1
pg_createdb bench >/dev/null || exit 1
pg_migrate bench || exit 1
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# PG_BASELINE_OPTIONS: server options for the baseline's session only,
# e.g. "-c plan_cache_mode=force_generic_plan" (what lib/pg sets) to hold
# lib/pg to a baseline that plans its statements once too.
base() { PGOPTIONS="${PG_BASELINE_OPTIONS:-}" "$BASE" "host=127.0.0.1 port=$PGPORT user=$PGUSER dbname=bench" -r 1 "${quick[@]}"; }
lib() { "$LIB" "postgresql://$PGUSER@127.0.0.1:$PGPORT/bench" -r 1 "${quick[@]}"; }
for ((i = 1; i <= rounds; i++)); do
  echo "round $i of $rounds" >&2
  if ((i % 2)); then base >>"$out" && lib >>"$out"; else lib >>"$out" && base >>"$out"; fi ||
    { cat "$out"; exit 1; }
done
grep -m1 '^bench_pg_baseline:' "$out"
# Per title and side: the rounds' rates, their median, the last per-job
# figures; then the ratio lib/pg / baseline of the medians.
awk -v rounds="$rounds" '
  function median(s,   a, n, i, j, t) {
    n = split(s, a, " ")
    for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] + 0 > a[j] + 0; j--) {
      t = a[j]; a[j] = a[j-1]; a[j-1] = t }
    lo = a[1]; hi = a[n]
    return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
  }
  / jobs \(median/ { t = $0; sub(/, [0-9]+ jobs.*/, "", t); if (!(t in seen)) { seen[t] = 1; order[++nt] = t } }
  /^  (baseline|lib\/pg)/ { side = $1; v[t, side] = v[t, side] " " $2
    x[t, side] = $5; w[t, side] = $7; c[t, side] = c[t, side] " " $10 }
  END {
    for (k = 1; k <= nt; k++) {
      t = order[k]; printf "%s (median of %d rounds)\n", t, rounds
      for (s = 1; s <= 2; s++) {
        side = s == 1 ? "baseline" : "lib/pg"
        if (!((t, side) in v)) continue
        m[side] = median(v[t, side]); r0 = lo; r1 = hi
        cm[side] = median(c[t, side])
        printf "  %-8s %9.0f jobs/s  [%.0f-%.0f]  %s commits/job  %s WAL bytes/job  %.1f CPU us/job [%.1f-%.1f]\n",
          side, m[side], r0, r1, x[t, side], w[t, side], cm[side], lo, hi
      }
      if (((t, "lib/pg") in v) && m["baseline"] > 0 && cm["lib/pg"] > 0)
        printf "  ratio lib/pg / baseline: %.2f by jobs/s, %.2f by CPU per job (baseline CPU / lib/pg CPU)\n",
          m["lib/pg"] / m["baseline"], cm["baseline"] / cm["lib/pg"]
    }
  }' "$out"
echo "reference, not measured here: pg-boss 8k jobs/s and graphile-worker 2.2k jobs/s (measured on this machine earlier); River 55.7k jobs/s (published, other hardware)"
