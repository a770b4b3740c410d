#!/usr/bin/env bash
# lib/pg against the raw libpq baseline, in one throwaway cluster, one
# database and one run, with the same durability (the cluster's defaults,
# fsync and synchronous_commit on, for both; PG_OPTS="-c
# synchronous_commit=off" measures the CPU side instead, for both too).
# Each round runs every test twice per side (-l 1: once), in the order
# baseline, lib/pg, lib/pg, baseline in odd rounds and lib/pg, baseline,
# baseline, lib/pg in even ones, so that a load rising or falling through
# the round weighs on both sides alike; each measurement starts from
# empty tables. A round's figure per side is its two measurements
# together (jobs over the time of both; CPU over the jobs of both).
# Prints per test and side the median of the measurements [min-max] of
# jobs/s and of CPU per job (client process + its server backend,
# /proc/PID/schedstat: the load moves it less; the client's share in
# parentheses), commits and WAL bytes per job (it does not move them at
# all); then the ratio lib/pg / baseline per round, by jobs/s and by CPU
# (baseline CPU / lib/pg CPU): the median of the rounds' ratios and their
# [min-max], which is the verdict, the ratio of the medians beside it,
# and every round's ratios, and those of its two halves (the first pair
# of measurements, then the second), in order. The machine is shared:
# mind the spread.
# Usage: bench/pg_lib.sh [BUILD_DIR] [-q] [-r ROUNDS] [-l 1|2] [-t TEST]...
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

rounds=7 legs=2 quick=() tests=()
usage() { echo "usage: bench/pg_lib.sh [BUILD_DIR] [-q] [-r ROUNDS] [-l 1|2] [-t many|claim1|claim64]..." >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    -q) quick=(-q) ;;
    -r) [ $# -ge 2 ] || usage; rounds=$2; shift ;;
    -l) [ $# -ge 2 ] || usage
      case "$2" in 1 | 2) legs=$2 ;; *) usage ;; esac
      shift ;;
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
load0=$(cut -d' ' -f1-3 /proc/loadavg)
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
    # odd rounds ABBA, even BAAB (one leg: AB, BA)
    if ((i % 2)); then order=(base lib lib base); else order=(lib base base lib); fi
    for ((k = 0; k < 2 * legs; k++)); do
      "${order[k]}" -t "$t" >>"$out" || { cat "$out"; exit 1; }
    done
  done
done
if ((door)); then
  base -t door -t copy >>"$out" || { cat "$out"; exit 1; }
fi
grep -m1 '^bench_pg_baseline:' "$out"
echo "load average at the start: $load0; at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
# Per title and side, per measurement: jobs/s ($2), commits ($5), WAL
# ($7), CPU us ($10), the client's share ($14); per round and side the
# legs' sums (the same jobs each: jobs/s together = legs / sum(1/v)).
# Then per title the medians, the rounds' ratios and every round's.
awk -v rounds="$rounds" -v legs="$legs" '
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
    c[t, side] = c[t, side] " " $10
    l = ++nl[t, side, r]; lv[t, side, r, l] = $2; lc[t, side, r, l] = $10
    if ($2 > 0) inv[t, side, r] += 1 / $2
    sc[t, side, r] += $10
    if ($13 == "client") u[t, side] = u[t, side] " " $14 }
  END {
    for (k = 1; k <= nt; k++) {
      t = order[k]; n = 0
      for (s = 1; s <= 2; s++) {
        side = s == 1 ? "baseline" : "lib/pg"
        if (!((t, side) in v)) continue
        n = split(v[t, side], tmp, " ")
        if (s == 1 && ((t, "lib/pg") in v))
          printf "%s (%d round%s, %d measurement%s a side)\n", t, rounds, rounds == 1 ? "" : "s", n, n == 1 ? "" : "s"
        else if (s == 1) printf "%s (baseline only, %d measurement%s)\n", t, n, n == 1 ? "" : "s"
        m[side] = med(v[t, side]); r0 = lo; r1 = hi
        cm[side] = med(c[t, side]); c0 = lo; c1 = hi
        printf "  %-8s %8.0f jobs/s [%.0f-%.0f]  %7.1f CPU us/job [%.1f-%.1f] (client %.1f)  %.3f commits/job  %.0f WAL bytes/job\n",
          side, m[side], r0, r1, cm[side], c0, c1, med(u[t, side]), med(x[t, side]), med(w[t, side])
      }
      if (!((t, "lib/pg") in v) || !((t, "baseline") in v)) continue
      rj = ""; rk = ""; each = ""
      for (i = 1; i <= rounds; i++) {
        b = "baseline"; g = "lib/pg"
        if (!((t, g, i) in nl) || !((t, b, i) in nl) || nl[t, g, i] != nl[t, b, i] ||
            inv[t, g, i] <= 0 || inv[t, b, i] <= 0 || sc[t, g, i] <= 0) {
          each = each sprintf("  round %d: incomplete\n", i); continue }
        qj = inv[t, b, i] / inv[t, g, i]; qk = sc[t, b, i] / sc[t, g, i]
        rj = rj " " qj; rk = rk " " qk
        each = each sprintf("  round %d: %.2f by jobs/s, %.2f by CPU", i, qj, qk)
        if (nl[t, g, i] > 1) {
          each = each " (halves:"
          for (h = 1; h <= nl[t, g, i]; h++)
            each = each sprintf(" %.2f/%.2f", lv[t, b, i, h] > 0 ? lv[t, g, i, h] / lv[t, b, i, h] : 0,
              lc[t, g, i, h] > 0 ? lc[t, b, i, h] / lc[t, g, i, h] : 0)
          each = each ")"
        }
        each = each "\n"
      }
      mj = med(rj); j0 = lo; j1 = hi; mk = med(rk)
      printf "  ratio lib/pg / baseline, median of the rounds [min-max]: %.2f [%.2f-%.2f] by jobs/s, %.2f [%.2f-%.2f] by CPU per job; of the medians: %.2f, %.2f\n",
        mj, j0, j1, mk, lo, hi, m["lib/pg"] / m["baseline"], cm["baseline"] / cm["lib/pg"]
      printf "%s", each
    }
  }' "$out"
echo "reference, not measured here: pg-boss 8k jobs/s and graphile-worker 2.2k jobs/s (measured on this machine earlier); River 55.7k jobs/s (published, other hardware)"
