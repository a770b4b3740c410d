#!/usr/bin/env bash
# lib/pg against the raw libpq baseline, in one throwaway cluster, one
# database and one run, with the same durability (the cluster's defaults,
# fsync and synchronous_commit on, for both; PG_OPTS="-c
# synchronous_commit=off" measures the CPU side instead, for both too).
# Each round runs every test once per side, the two sides of a test back
# to back (baseline first in odd rounds, lib/pg first in even ones), so a
# pair sees the same load; each measurement starts from empty tables.
# Prints per test and side the median of the rounds [min-max] of jobs/s
# and of CPU per job (client process + its server backend,
# /proc/PID/schedstat: the load moves it less; the client's share in
# parentheses), commits and WAL bytes
# per job (it does not move them at all); then the ratio lib/pg /
# baseline per round, by jobs/s and by CPU (baseline CPU / lib/pg CPU):
# the median of the rounds' ratios and their [min-max], which is the
# verdict, and the ratio of the medians beside it. The machine is shared:
# mind the spread.
# Usage: bench/pg_lib.sh [BUILD_DIR] [-q] [-r ROUNDS] [-t TEST]...
#   TEST: many, claim1, claim64 (default all three, and the baseline's
#   door and copy once, for scale).
set -u
BUILD=${1:-build}
shift || true
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "$ROOT" && cd "$BUILD" && pwd) || { echo "no build dir" >&2; exit 2; }
export SLUICE_ROOT="$ROOT"
BASE="$BUILD/bench/bench_pg_baseline" LIB="$BUILD/bench/pg_lib"
. "$ROOT/tests/lib/pglib.sh"

rounds=7 quick=() tests=()
usage() { echo "usage: bench/pg_lib.sh [BUILD_DIR] [-q] [-r ROUNDS] [-t many|claim1|claim64]..." >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    -q) quick=(-q) ;;
    -r) [ $# -ge 2 ] || usage; rounds=$2; shift ;;
    -t) [ $# -ge 2 ] || usage
      case "$2" in many | claim1 | claim64) tests+=("$2") ;; *) usage ;; esac
      shift ;;
    *) usage ;;
  esac
  shift
done
case "$rounds" in '' | *[!0-9]*) usage ;; esac
[ "$rounds" -ge 1 ] && [ "$rounds" -le 99 ] || usage
door=0
[ ${#tests[@]} -gt 0 ] || { tests=(many claim1 claim64); door=1; }
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
trap 'rm -f "$out"; pg_stop' EXIT
# PG_BASELINE_OPTIONS: server options for the baseline's session only,
# e.g. "-c plan_cache_mode=force_generic_plan" (what lib/pg sets) to hold
# lib/pg to a baseline that plans its statements once too.
base() { PGOPTIONS="${PG_BASELINE_OPTIONS:-}" "$BASE" "host=127.0.0.1 port=$PGPORT user=$PGUSER dbname=bench" -r 1 "${quick[@]}" "$@"; }
lib() { "$LIB" "postgresql://$PGUSER@127.0.0.1:$PGPORT/bench" -r 1 "${quick[@]}" "$@"; }
for ((i = 1; i <= rounds; i++)); do
  echo "round $i of $rounds ($(cut -d' ' -f1-3 /proc/loadavg))" >&2
  for t in "${tests[@]}"; do
    echo "round $i" >>"$out"
    if ((i % 2)); then base -t "$t" >>"$out" && lib -t "$t" >>"$out"
    else lib -t "$t" >>"$out" && base -t "$t" >>"$out"; fi ||
      { cat "$out"; exit 1; }
  done
done
if ((door)); then
  base -t door -t copy >>"$out" || { cat "$out"; exit 1; }
fi
grep -m1 '^bench_pg_baseline:' "$out"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
# Per title and side, per round: jobs/s ($2), commits ($5), WAL ($7),
# CPU us ($10), the client's share ($14). Then per title the medians and the rounds' ratios.
awk -v rounds="$rounds" '
  function sort(s, a,   n, i, j, t) {
    n = split(s, a, " ")
    for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] + 0 > a[j] + 0; j--) {
      t = a[j]; a[j] = a[j-1]; a[j-1] = t }
    return n
  }
  function med(s,   a, n) {
    n = sort(s, a); lo = a[1]; hi = a[n]
    return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
  }
  /^round / { r = $2; next }
  / jobs \(median/ { t = $0; sub(/, [0-9]+ jobs.*/, "", t); if (!(t in seen)) { seen[t] = 1; order[++nt] = t } }
  /^  (baseline|lib\/pg)/ { side = $1; v[t, side] = v[t, side] " " $2
    x[t, side] = x[t, side] " " $5; w[t, side] = w[t, side] " " $7
    c[t, side] = c[t, side] " " $10; rv[t, side, r] = $2; rc[t, side, r] = $10
    if ($13 == "client") u[t, side] = u[t, side] " " $14 }
  END {
    for (k = 1; k <= nt; k++) {
      t = order[k]; n = 0
      for (s = 1; s <= 2; s++) {
        side = s == 1 ? "baseline" : "lib/pg"
        if (!((t, side) in v)) continue
        n = split(v[t, side], tmp, " ")
        if (s == 1) printf "%s (%d round%s)\n", t, n, n == 1 ? "" : "s"
        m[side] = med(v[t, side]); r0 = lo; r1 = hi
        cm[side] = med(c[t, side]); c0 = lo; c1 = hi
        printf "  %-8s %8.0f jobs/s [%.0f-%.0f]  %7.1f CPU us/job [%.1f-%.1f] (client %.1f)  %.3f commits/job  %.0f WAL bytes/job\n",
          side, m[side], r0, r1, cm[side], c0, c1, med(u[t, side]), med(x[t, side]), med(w[t, side])
      }
      if (!((t, "lib/pg") in v) || !((t, "baseline") in v)) continue
      rj = ""; rk = ""
      for (i = 1; i <= rounds; i++)
        if ((t, "lib/pg", i) in rv && (t, "baseline", i) in rv && rv[t, "baseline", i] > 0 && rc[t, "lib/pg", i] > 0) {
          rj = rj " " rv[t, "lib/pg", i] / rv[t, "baseline", i]
          rk = rk " " rc[t, "baseline", i] / rc[t, "lib/pg", i] }
      mj = med(rj); j0 = lo; j1 = hi; mk = med(rk)
      printf "  ratio lib/pg / baseline, median of the rounds [min-max]: %.2f [%.2f-%.2f] by jobs/s, %.2f [%.2f-%.2f] by CPU per job; of the medians: %.2f, %.2f\n",
        mj, j0, j1, mk, lo, hi, m["lib/pg"] / m["baseline"], cm["baseline"] / cm["lib/pg"]
    }
  }' "$out"
echo "reference, not measured here: pg-boss 8k jobs/s and graphile-worker 2.2k jobs/s (measured on this machine earlier); River 55.7k jobs/s (published, other hardware)"
