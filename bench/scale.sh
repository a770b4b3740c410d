#!/usr/bin/env bash
# bench/scale.sh: flat at scale (issue 14). `make bench-scale` runs it; it
# is not part of `make bench` (bench/run.sh skips it) nor of `make test`.
#
# Builds a journal of SCALE_JOBS jobs (10,000,000) with one SQL transaction
# (sqlite3, on a journal `sluice init` made; inserted pending, as the SQL
# door wants, then moved in the same transaction): 80% succeeded, 10% deferrable
# pending (queue "batch", no deadline: ahead of the urgent ones, priority
# 0), 10% urgent scheduled an hour ahead (queue "later"), and CLAIMS urgent
# due jobs (priority 5, queue "now"). An empty journal gets the same due
# jobs only. Then, on each:
#   1. `sluice status`: median wall time of RUNS runs;
#   2. one online claim (build/bench/scale_probe: claim one, complete it):
#      median over CLAIMS claims;
#   3. an idle worker over IDLE_S (10) seconds, once every pending job is
#      moved an hour ahead (nothing due: the issue's idle case): CPU % of
#      one core, with the batch route (default) and with --no-batch.
# Prints the figures and the ratios scaled / empty. Figures only: exit 1
# only when a step fails.
#
# Usage: bench/scale.sh [BUILD_DIR]   Env: SCALE_JOBS, RUNS (5), CLAIMS
# (200), IDLE_S (10), KEEP=1 (keep the temp dir)
set -u
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "$ROOT" && cd "$BUILD" && pwd) || { echo "no build dir" >&2; exit 2; }
SLUICE=$BUILD/sluice
MOCK=$BUILD/sluice-mock
PROBE=$BUILD/bench/scale_probe
N=${SCALE_JOBS:-10000000}
RUNS=${RUNS:-5}
CLAIMS=${CLAIMS:-200}
IDLE_S=${IDLE_S:-10}
for t in "$SLUICE" "$MOCK" "$PROBE" sqlite3; do
  command -v "$t" >/dev/null || { echo "scale.sh: $t missing" >&2; exit 1; }
done
TMP=$(mktemp -d /tmp/sluice-bench-scale.XXXXXX)
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
  "$SLUICE" init --journal "$j" >/dev/null || fail "sluice init"
  t0=$(ms)
  sqlite3 "$j" <<SQL || fail "generating $n jobs"
PRAGMA cache_size = -262144;
BEGIN;
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < $n),
now(t) AS (SELECT CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER))
INSERT INTO jobs (queue, urgency, priority, run_after, body,
  idempotency_key, created_at, updated_at)
SELECT CASE WHEN i % 10 = 1 THEN 'batch' WHEN i % 10 = 2 THEN 'later'
            ELSE 'done' END,
       CASE WHEN i % 10 = 1 THEN 'deferrable' ELSE 'urgent' END,
       0,
       CASE WHEN i % 10 = 2 THEN t + 3600000 ELSE t - 86400000 END,
       '{"model":"gpt-4o-mini","input":"scale ' || i || '"}',
       printf('%012x%08x', t, i), t - 86400000, t - 86400000
  FROM c, now;
-- a new job must be pending (the SQL door); the finished ones move on
-- along the state machine (migration 0013): pending, running, succeeded
UPDATE jobs SET state = 'running', attempts = 1 WHERE queue = 'done';
UPDATE jobs SET state = 'succeeded', finished_at = created_at
 WHERE queue = 'done';
COMMIT;
SQL
  GEN_MS=$(( $(ms) - t0 ))
  sqlite3 "$j" <<SQL || fail "adding due jobs"
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < $CLAIMS)
INSERT INTO jobs (queue, priority, body, idempotency_key)
SELECT 'now', 5, '{"model":"gpt-4o-mini","input":"due"}', 'due-' || i FROM c;
PRAGMA wal_checkpoint(TRUNCATE);
SQL
} >/dev/null

status_ms() { # J: median of RUNS runs of sluice status
  local j=$1 i t0 v=()
  for i in $(seq 1 "$RUNS"); do
    t0=$(date +%s%N)
    "$SLUICE" status --journal "$j" >/dev/null || fail "sluice status"
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
echo "   generated $N jobs in $GEN_MS ms ($(( N / 10 )) deferrable pending," \
  "$(( N / 10 )) scheduled an hour ahead); file $(du -m "$TMP/scale.db" | cut -f1) MB"
se=$(status_ms "$TMP/empty.db")
ss=$(status_ms "$TMP/scale.db")
read -r ce ce90 < <("$PROBE" "$TMP/empty.db" "$CLAIMS") || fail "scale_probe"
read -r cs cs90 < <("$PROBE" "$TMP/scale.db" "$CLAIMS") || fail "scale_probe"
for j in "$TMP/empty.db" "$TMP/scale.db"; do
  sqlite3 "$j" "UPDATE jobs SET run_after = CAST((julianday('now')
    - 2440587.5) * 86400000.0 AS INTEGER) + 3600000
    WHERE state = 'pending'" || fail "moving pending jobs ahead"
done
ie=$(idle_cpu "$TMP/empty.db")
is=$(idle_cpu "$TMP/scale.db")
isn=$(idle_cpu "$TMP/scale.db" --no-batch)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}'; }
printf '   status:  %8d us at %d jobs, %8d us empty: %sx (target <= 3x)\n' \
  "$ss" "$N" "$se" "$(ratio "$ss" "$se")"
printf '   claim:   %8d us (p90 %d), %8d us empty (p90 %d): %sx (target <= 1.5x)\n' \
  "$cs" "$cs90" "$ce" "$ce90" "$(ratio "$cs" "$ce")"
printf '   idle worker CPU over %d s: %s%% of a core at %d jobs (%s%% with --no-batch),\n' \
  "$IDLE_S" "$is" "$N" "$isn"
printf '   %s%% empty (target < 5%%)\n' "$ie"
