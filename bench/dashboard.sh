#!/usr/bin/env bash
# The dashboard's overview on a large journal (issue 17: under 50 ms on
# 1M jobs). Builds a journal of DASH_JOBS jobs (default 1,000,000) in 8
# queues, mostly finished, with an hour of attempts, then times GET / (and
# the other pages once) against `sluice dashboard`: median, min and max of
# 15 requests, as curl sees them and as the page says it rendered, beside
# `sluice status`, whose counts (sl_status) the overview shows: until the
# per-queue counters of the scale issue (14) land, those counts scan the
# jobs table and dominate the page.
# Figures only. Usage: bench/dashboard.sh [BUILD_DIR]
set -u
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SLUICE="$(cd "$ROOT" && cd "$BUILD" && pwd)/sluice"
N=${DASH_JOBS:-1000000}
T=$(mktemp -d /tmp/sluice-bench-dash.XXXXXX)
J="$T/journal.db"
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$T"' EXIT

"$SLUICE" init -j "$J" >/dev/null || exit 1
now=$(($(date +%s) * 1000))
t0=$(date +%s.%N)
sqlite3 "$J" >/dev/null <<SQL || exit 1
PRAGMA journal_mode=WAL;
BEGIN;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $N)
INSERT INTO jobs (queue, body, created_at, run_after, idempotency_key)
SELECT 'queue-' || (i % 8), '{"model":"m","input":"bench ' || i || '"}',
       $now - ($N - i) * 10, $now - ($N - i) * 10, printf('bench-%d', i)
  FROM n;
-- New jobs must be pending (the SQL door's rule): finish most of them.
UPDATE jobs SET attempts = 1,
  state = CASE WHEN id % 20 < 14 THEN 'succeeded' WHEN id % 20 < 16
               THEN 'failed' ELSE 'cancelled' END,
  last_class = CASE WHEN id % 20 IN (14, 15) THEN 'server_error' END,
  finished_at = created_at
 WHERE id % 20 < 16 OR id % 20 = 19;
-- The last hour's attempts: one per finished job of the last 60 min.
INSERT INTO attempts (job_id, attempt, generation, route, finished_at,
                      http_status, failure_class, total_ms)
SELECT id, 1, 0, 'online', finished_at, 200, last_class, 100
  FROM jobs WHERE finished_at >= $now - 3600000 AND state IN ('succeeded', 'failed');
COMMIT;
SQL
t1=$(date +%s.%N)
echo "journal: $N jobs, $(sqlite3 "$J" 'SELECT count(*) FROM attempts') attempts in the last hour, built in $(echo "$t1 - $t0" | bc) s, $(du -h "$J" | cut -f1)"

"$SLUICE" dashboard -j "$J" --listen 127.0.0.1:0 --read-only 2>"$T/log" &
pid=$!
for _ in $(seq 1 100); do
  grep -q "dashboard on" "$T/log" && break
  sleep 0.1
done
U=$(grep -o 'http://[0-9.:]*/' "$T/log" | head -1)
[ -n "$U" ] || { cat "$T/log"; exit 1; }

stats() { # label, then one figure per line on stdin
  sort -n | awk -v l="$1" '{a[NR]=$1} END {
    printf "%-42s median %7.1f ms  [min %.1f, max %.1f]  (%d runs)\n",
      l, a[int((NR+1)/2)], a[1], a[NR], NR }'
}
# The first page waits for the first count and reads a day of attempts.
curl -s -o /dev/null -w '%{time_total}\n' "$U" |
  awk '{printf "%-42s %7.1f ms (once, at start)\n", "overview, first", $1 * 1000}'
overview() { # label
  rm -f "$T/curl.txt" "$T/server.txt"
  for _ in $(seq 1 15); do
    curl -s -o "$T/page.html" -w '%{time_total}\n' "$U" |
      awk '{printf "%.3f\n", $1 * 1000}' >>"$T/curl.txt"
    grep -o 'id="render-ms">[0-9]*' "$T/page.html" | grep -o '[0-9]*$' >>"$T/server.txt"
    sleep 0.2
  done
  stats "$1 (curl)" <"$T/curl.txt"
  stats "$1 (server render)" <"$T/server.txt"
  grep -o '([0-9.]* s ago)' "$T/page.html" | sed 's/^/  counts of the last page: /'
}
overview "overview, idle journal"
# A producer commits every 50 ms: the counts are recounted in the
# background (every 5 x the count's time) while pages keep being served.
( for _ in $(seq 1 200); do
    "$SLUICE" enqueue -j "$J" -q queue-1 '{"model":"m","input":"more"}' >/dev/null
    sleep 0.05
  done ) &
wp=$!
overview "overview, journal written"
kill "$wp" 2>/dev/null
wait "$wp" 2>/dev/null
# The overview's counts are sl_status (the queue_stats view), as `sluice
# status` reads them: what the page costs beyond them is the rest.
for _ in $(seq 1 5); do
  s0=$(date +%s%N)
  "$SLUICE" status -j "$J" >/dev/null
  echo $((($(date +%s%N) - s0) / 1000)) | awk '{printf "%.3f\n", $1 / 1000}'
done | stats "sluice status (same counts)"
for p in failures batches limits "jobs?state=failed" "job?id=$N" audit; do
  curl -s -o /dev/null -w '%{time_total}\n' "$U$p" |
    awk -v p="$p" '{printf "%-42s %7.1f ms (one run)\n", p, $1 * 1000}'
done
