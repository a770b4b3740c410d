#!/usr/bin/env bash
# bench/backlog_idle.sh: a worker beside a waiting deferrable backlog
# (issue 14). JOBS (45,000, under --batch-max-lines' 50,000) deferrable
# jobs of ~BODY bytes are due, younger than --batch-max-wait (1h): the
# batch route waits, no other process writes. Prints the worker's CPU (% of
# one core, user + system) over IDLE_S (10) seconds after a start-up of 3 s,
# and how many times the route read its backlog meanwhile (its debug
# line; load-independent). BASE=BUILD_DIR runs the same on a second build
# (say main's), interleaved, RUNS (3) times each, for a same-run ratio.
# Figures only: exit 1 only when a step fails.
#
# Usage: bench/backlog_idle.sh [BUILD_DIR]   Env: JOBS, BODY, IDLE_S, RUNS,
# BASE, TMPDIR
set -u
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "$ROOT" && cd "$BUILD" && pwd) ||
  { echo "no build dir" >&2; exit 2; }
JOBS=${JOBS:-45000}
BODY=${BODY:-400}
IDLE_S=${IDLE_S:-10}
RUNS=${RUNS:-3}
BASE=${BASE:-}
[ -n "$BASE" ] && { BASE=$(cd "$ROOT" && cd "$BASE" && pwd) || exit 2; }
NAME=backlog_idle
. "$ROOT/bench/lib.sh"

bench_mock
J=$TMP/journal.db
bench_deferrable "$J" "$JOBS" "$BODY"

run() { # BUILD: "CPU% READS" of one idle run
  local b=$1 pid a z hz
  : >"$TMP/work.log"
  "$b/sluice" work --journal "$J" --base-url "$MOCK_URL" --poll 1s \
    --batch-max-wait 1h --log-level debug 2>"$TMP/work.log" &
  pid=$!
  sleep 3
  kill -0 "$pid" 2>/dev/null || fail "worker died: $(tail -3 "$TMP/work.log")"
  hz=$(getconf CLK_TCK)
  local r0
  r0=$(grep -c 'backlog read' "$TMP/work.log")
  a=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  sleep "$IDLE_S"
  z=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  local r1
  r1=$(grep -c 'backlog read' "$TMP/work.log")
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null
  [ "$(sqlite3 "$J" "SELECT count(*) FROM jobs WHERE state = 'pending'")" \
    = "$JOBS" ] || fail "the backlog moved"
  awk -v a="$a" -v z="$z" -v hz="$hz" -v s="$IDLE_S" -v r=$((r1 - r0)) \
    'BEGIN {printf "%.1f %d", (z - a) * 100 / hz / s, r}'
}

median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1}
  END {print v[int((NR + 1) / 2)]}'; }

echo "backlog_idle: $JOBS deferrable jobs due (~$BODY-byte bodies), max" \
  "wait 1h, worker idle beside them for $IDLE_S s;" \
  "load $(cut -d' ' -f1-3 /proc/loadavg)"
cpu=() bcpu=() reads=()
for i in $(seq 1 "$RUNS"); do
  read -r c r <<<"$(run "$BUILD")" || exit 1
  cpu+=("$c") reads+=("$r")
  if [ -n "$BASE" ]; then
    read -r c _ <<<"$(run "$BASE")" || exit 1
    bcpu+=("$c")
  fi
done
printf '   this build: CPU %s%% of a core (median of %s: %s), %s\n' \
  "$(median "${cpu[@]}")" "$RUNS" "${cpu[*]}" \
  "backlog reads in $IDLE_S s: ${reads[*]}"
if [ -n "$BASE" ]; then
  printf '   base build: CPU %s%% of a core (median of %s: %s)\n' \
    "$(median "${bcpu[@]}")" "$RUNS" "${bcpu[*]}"
fi
