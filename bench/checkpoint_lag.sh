#!/usr/bin/env bash
# bench/checkpoint_lag.sh: the worker's WAL checkpoints off its loop
# (issue 14) against on it as before, in the same binary and run: N
# (30,000) jobs of ~330-byte bodies through sluice-mock, 64 in flight, on a
# fresh copy of one journal each time, checkpoints on a pool thread (`new`)
# and on the loop (`old`, SLUICE_CHECKPOINT_ON_LOOP=1), interleaved, RUNS
# (3) times. Prints the run's wall time, the longest loop hold
# (sluice_loop_lag_max_seconds from --metrics-port) and the WAL's size
# when the jobs are done (its high-water: it only shrinks when a
# checkpoint finds it past journal_size_limit, 64 MiB). 30,000 jobs write
# ~100 MB of WAL here (~3.4 KB a job): two checkpoints at the mark.
# Figures only.
#
# Usage: bench/checkpoint_lag.sh [BUILD_DIR]   Env: N, RUNS
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=$(cd "$ROOT" && cd "${1:-build}" && pwd) || exit 2
RUNS=${RUNS:-3}
N=${N:-30000}
D=$(mktemp -d /tmp/ckpt-bench.XXXXXX)
trap 'kill $MP 2>/dev/null; rm -rf "$D"' EXIT
"$B/sluice-mock" --port 0 --port-file "$D/port" 2>/dev/null & MP=$!
for i in $(seq 1 100); do [ -s "$D/port" ] && break; sleep 0.05; done
URL="http://127.0.0.1:$(cat "$D/port")/v1"
for i in $(seq 1 "$N"); do printf '{"model":"gpt-4o-mini","input":"job %d %0300d"}\n' "$i" 0; done > "$D/jobs.jsonl"
"$B/sluice" init --journal "$D/src.db" >/dev/null
"$B/sluice" enqueue --journal "$D/src.db" < "$D/jobs.jsonl" >/dev/null
run() { # old|new
  local j="$D/j.db" port=$((20000 + RANDOM % 20000)) w t0 t1 lag i
  rm -f "$j" "$j-wal" "$j-shm"; cp "$D/src.db" "$j"
  t0=$(date +%s.%N)
  if [ "$1" = old ]; then export SLUICE_CHECKPOINT_ON_LOOP=1; else unset SLUICE_CHECKPOINT_ON_LOOP; fi
  "$B/sluice" work --journal "$j" --base-url "$URL" --concurrency 64 --poll 100ms --no-batch --metrics-port $port 2>>"$D/w.log" & w=$!
  for i in $(seq 1 3000); do
    [ "$(sqlite3 -cmd '.timeout 5000' "$j" "SELECT count(*) FROM jobs WHERE state='succeeded'")" = "$N" ] && break
    sleep 0.2
  done
  t1=$(date +%s.%N)
  lag=$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^sluice_loop_lag_max_seconds/{print $2}')
  ck=$(stat -c %s "$j-wal" 2>/dev/null)
  kill -TERM $w; wait $w
  printf '%s: %d jobs in %.1f s, loop lag max %s s, WAL at end %s bytes\n' "$1" "$N" "$(echo "$t1 - $t0" | bc)" "$lag" "$ck"
}
for r in $(seq 1 "$RUNS"); do run old; run new; done
