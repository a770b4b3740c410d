#!/usr/bin/env bash
# bench/scale.sh: flat at scale (issue 14). `make bench-scale` runs it; it
# is not part of `make bench` (bench/run.sh skips it) nor of `make test`.
#
# Builds a journal of SCALE_JOBS jobs (10,000,000) as producers and
# workers write it (build/bench/scale_build: set-based SQL through every
# trigger and CHECK of the schema, 500,000 jobs a transaction, the
# finished ones moved pending -> running -> succeeded with an attempt and
# a result each; it checks the counters against a recount, and sl_status
# against it, at the end; `scale_build -l` writes the same through the
# library, 6x slower): 80% succeeded, 10% deferrable pending
# (queue "batch", no deadline: ahead of the urgent ones, priority 0), 10%
# urgent scheduled an hour ahead (queue "later"); then CLAIMS urgent due
# jobs (priority 5, queue "now", through the SQL door). An empty journal
# gets the same due jobs only. Then, on each:
#   1. `sluice status`, `sluice jobs` (the default listing) and `sluice
#      show` of the newest job: median wall time of RUNS runs (processes);
#   2. one online claim (build/bench/scale_probe: claim one, complete it):
#      median over CLAIMS claims;
#   3. in-process reads (scale_probe -q, median of QRUNS): the batch
#      backlog a worker reads every second, next_due, sl_count_workable,
#      sl_status, sl_jobs_find, sl_job_get;
#   4. an idle worker over IDLE_S (10) seconds, once every pending job due
#      within 30 minutes is moved an hour ahead (nothing due: the issue's
#      idle case): CPU % of one core, with the batch route (default) and
#      with --no-batch;
#   5. on the large journal only: a prune of about the oldest PRUNE_JOBS
#      (N/10; the builder's jobs finish 8 a ms, in id order) finished
#      jobs, a second prune with a cut 2 s earlier (nothing left: its cost
#      is the walk), `sluice prune --vacuum`, with the file's size after
#      each.
# Prints the figures and the ratios scaled / empty. Figures only: exit 1
# only when a step fails.
#
# Usage: bench/scale.sh [BUILD_DIR]   Env: SCALE_JOBS, RUNS (5), QRUNS
# (21), CLAIMS (200), IDLE_S (10), PRUNE_JOBS, KEEP=1 (keep the temp dir),
# SCALE_DB=PATH (use this journal, made by `sluice init` and scale_build
# with SCALE_JOBS jobs, instead of building one; it is changed), TMPDIR
set -u
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "$ROOT" && cd "$BUILD" && pwd) || { echo "no build dir" >&2; exit 2; }
SLUICE=$BUILD/sluice
MOCK=$BUILD/sluice-mock
PROBE=$BUILD/bench/scale_probe
BUILDER=$BUILD/bench/scale_build
N=${SCALE_JOBS:-10000000}
RUNS=${RUNS:-5}
CLAIMS=${CLAIMS:-200}
QRUNS=${QRUNS:-21}
IDLE_S=${IDLE_S:-10}
PRUNE_JOBS=${PRUNE_JOBS:-$(( N / 10 ))}
for t in "$SLUICE" "$MOCK" "$PROBE" "$BUILDER" sqlite3; do
  command -v "$t" >/dev/null || { echo "scale.sh: $t missing" >&2; exit 1; }
done
TMP=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench-scale.XXXXXX")
MOCK_PID=
cleanup() {
  [ -n "$MOCK_PID" ] && kill "$MOCK_PID" 2>/dev/null
  wait 2>/dev/null
  [ "${KEEP:-0}" = 1 ] && echo "kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT
fail() { echo "scale.sh: $*" >&2; exit 1; }
ms() { date +%s%3N; }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# make J N: a journal of N generated jobs plus CLAIMS due urgent ones.
make_journal() {
  local j=$1 n=$2 t0
  if [ -z "${SCALE_DB:-}" ] || [ "$n" = 0 ]; then
    "$SLUICE" init --journal "$j" >/dev/null || fail "sluice init"
    t0=$(ms)
    "$BUILDER" "$j" "$n" >"$TMP/build.out" 2>"$TMP/build.err" ||
      fail "scale_build $n: $(tail -3 "$TMP/build.err")"
    GEN_MS=$(( $(ms) - t0 ))
  else
    ln -s "$SCALE_DB" "$j" || fail "linking $SCALE_DB"
    GEN_MS="(prebuilt)"
  fi
  sqlite3 "$j" <<SQL || fail "adding due jobs"
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < $CLAIMS)
INSERT INTO jobs (queue, priority, body, idempotency_key)
SELECT 'now', 5, '{"model":"gpt-4o-mini","input":"due"}', 'due-' || i FROM c;
PRAGMA wal_checkpoint(TRUNCATE);
SQL
} >/dev/null

cli_ms() { # J VERB ARGS...: median us of RUNS runs of sluice VERB
  local j=$1 i t0 v=()
  shift
  for i in $(seq 1 "$RUNS"); do
    t0=$(date +%s%N)
    "$SLUICE" "$@" --journal "$j" >/dev/null || fail "sluice $*"
    v+=($(( ($(date +%s%N) - t0) / 1000 )))
  done
  median "${v[@]}"
}

idle_cpu() { # J ARGS...: CPU % of one core of an idle worker over IDLE_S s
  local j=$1 pid a b hz
  shift
  "$SLUICE" work --journal "$j" --base-url "$MOCK_URL" \
    --poll 1s "$@" 2>"$TMP/idle.log" &
  pid=$!
  sleep 2 # startup (migration check, identity, first tick)
  kill -0 "$pid" 2>/dev/null || fail "idle worker died: $(tail -3 "$TMP/idle.log")"
  hz=$(getconf CLK_TCK)
  a=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  sleep "$IDLE_S"
  b=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null
  awk -v a="$a" -v b="$b" -v hz="$hz" -v s="$IDLE_S" \
    'BEGIN {printf "%.1f", (b - a) * 100 / hz / s}'
}

pf="$TMP/mock.port"
"$MOCK" --port 0 --port-file "$pf" 2>"$TMP/mock.err" &
MOCK_PID=$!
for i in $(seq 1 100); do [ -s "$pf" ] && break; sleep 0.05; done
[ -s "$pf" ] || fail "sluice-mock did not start"
MOCK_URL="http://127.0.0.1:$(cat "$pf")/v1"

echo "scale bench: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
make_journal "$TMP/empty.db" 0
make_journal "$TMP/scale.db" "$N"
mb() { du -mL "$1" | cut -f1; }
echo "   generated $N jobs in $GEN_MS ms ($(( N / 10 )) deferrable pending," \
  "$(( N / 10 )) scheduled an hour ahead); file $(mb "$TMP/scale.db") MB"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}'; }
se=$(cli_ms "$TMP/empty.db" status)
ss=$(cli_ms "$TMP/scale.db" status)
le=$(cli_ms "$TMP/empty.db" jobs)
ls_=$(cli_ms "$TMP/scale.db" jobs)
newest() { sqlite3 "$1" "SELECT max(id) FROM jobs"; }
she=$(cli_ms "$TMP/empty.db" show "$(newest "$TMP/empty.db")")
shs=$(cli_ms "$TMP/scale.db" show "$(newest "$TMP/scale.db")")
"$PROBE" -q "$TMP/empty.db" "$QRUNS" >"$TMP/q.empty" || fail "scale_probe -q"
"$PROBE" -q "$TMP/scale.db" "$QRUNS" >"$TMP/q.scale" || fail "scale_probe -q"
read -r ce ce90 < <("$PROBE" "$TMP/empty.db" "$CLAIMS") || fail "scale_probe"
read -r cs cs90 < <("$PROBE" "$TMP/scale.db" "$CLAIMS") || fail "scale_probe"
t0=$(ms)
for j in "$TMP/empty.db" "$TMP/scale.db"; do
  # those due within 30 min (jobs already scheduled later stay: fewer rows)
  sqlite3 "$j" "UPDATE jobs SET run_after = CAST((julianday('now')
    - 2440587.5) * 86400000.0 AS INTEGER) + 3600000
    WHERE state = 'pending' AND run_after < CAST((julianday('now')
    - 2440587.5) * 86400000.0 AS INTEGER) + 1800000" ||
    fail "moving pending jobs ahead"
done
MOVE_MS=$(( $(ms) - t0 ))
ie=$(idle_cpu "$TMP/empty.db")
is=$(idle_cpu "$TMP/scale.db")
isn=$(idle_cpu "$TMP/scale.db" --no-batch)
printf '   status:  %8d us at %d jobs, %8d us empty: %sx (target <= 3x)\n' \
  "$ss" "$N" "$se" "$(ratio "$ss" "$se")"
printf '   jobs:    %8d us at %d jobs, %8d us empty: %sx (sluice jobs, newest 100)\n' \
  "$ls_" "$N" "$le" "$(ratio "$ls_" "$le")"
printf '   show:    %8d us at %d jobs, %8d us empty: %sx\n' \
  "$shs" "$N" "$she" "$(ratio "$shs" "$she")"
while read -r name us; do
  e=$(awk -v n="$name" '$1 == n {print $2}' "$TMP/q.empty")
  printf '   %-15s %8d us at %d jobs, %8d us empty: %sx (in process)\n' \
    "$name:" "$us" "$N" "$e" "$(ratio "$us" "$e")"
done <"$TMP/q.scale"
printf '   claim:   %8d us (p90 %d), %8d us empty (p90 %d): %sx (target <= 1.5x)\n' \
  "$cs" "$cs90" "$ce" "$ce90" "$(ratio "$cs" "$ce")"
printf '   idle worker CPU over %d s: %s%% of a core at %d jobs (%s%% with --no-batch),\n' \
  "$IDLE_S" "$is" "$N" "$isn"
printf '   %s%% empty (target < 5%%)\n' "$ie"
echo "   (moving the pending jobs due within 30 min an hour ahead, sqlite3, took $MOVE_MS ms)"

# 5. prune the oldest PRUNE_JOBS finished jobs (finished_at is in build
# order), then again with nothing left, then --vacuum.
j="$TMP/scale.db"
cut=$(sqlite3 "$j" "SELECT finished_at FROM jobs WHERE state = 'succeeded'
  ORDER BY id LIMIT 1 OFFSET $PRUNE_JOBS") || fail "finding the prune cut"
[ -n "$cut" ] || fail "fewer than $PRUNE_JOBS finished jobs"
# --older-than counts back from each run's own start, a few ms after
# older() read the clock: the first prune cuts a few ms after `cut` (the
# builder's jobs finish 8 a ms). The second cuts 2 s before it, so it
# finds nothing and its cost is the walk (in ms: at small SCALE_JOBS the
# build lasts seconds).
older() { echo "$(( $(date +%s%3N) - cut + ${1:-0} ))ms"; }
s0=$(mb "$j")
prune_ms() { # ARGS...: runs sluice prune, sets PR_MS and PR_OUT
  local t0
  t0=$(ms)
  PR_OUT=$("$SLUICE" prune --journal "$j" "$@" 2>&1) || fail "sluice prune $*: $PR_OUT"
  PR_MS=$(( $(ms) - t0 ))
}
o1=$(older)
prune_ms --older-than "$o1"
p1_ms=$PR_MS p1_out=$PR_OUT s1=$(mb "$j")
prune_ms --older-than "$(older 2000)"
p2_ms=$PR_MS p2_out=$PR_OUT s2=$(mb "$j")
prune_ms --vacuum
p3_ms=$PR_MS p3_out=$PR_OUT s3=$(mb "$j")
echo "   prune --older-than ${o1}: $p1_ms ms ($p1_out); file $s0 -> $s1 MB"
echo "   prune again, cut 2 s earlier (nothing left): $p2_ms ms ($p2_out); file $s2 MB"
echo "   prune --vacuum: $p3_ms ms ($p3_out); file $s3 MB"
