#!/usr/bin/env bash
# bench/worker.sh: the online worker (`sluice work`) against sluice-mock.
#
# Three figures, each on a fresh journal and a mock this script starts on
# 127.0.0.1 (port 0, read back from --port-file) and stops:
#   1. throughput: JOBS jobs (100,000) at zero mock latency: jobs/s end to
#      end and per-job latency from the journal, beside wrk against the same
#      mock endpoint with the same requests, same connection count and
#      HTTP/1.1; the ratio sluice/wrk. CPU (user + system) per job of the
#      worker and per request of wrk, and of the mock under each (whether
#      the mock is the limit). Median of RUNS runs, interleaved.
#      Then PROCS (2) worker processes on one journal of JOBS jobs, each
#      --concurrency CONC/PROCS (the design's way to scale out: one loop a
#      process), against the same run's wrk (PROCS=1: skipped).
#      64 connections: enough to keep the one-thread mock busy; at 128 and
#      256 the mock itself (wrk alike) stalls now and then on this machine.
#   2. in flight: INFLIGHT jobs (10,000) with INFLIGHT_LATENCY_MS (10 s) of
#      mock latency, one worker with --concurrency INFLIGHT: peak RSS of the
#      worker, jobs/s, and the mock's own count of requests in flight at
#      once (the RSS is for INFLIGHT only when that count is near it: the
#      worker hands curl 256 requests per loop turn, and curl 7.88 costs
#      O(connections) per transfer, so under this machine's load starting
#      10,000 takes several seconds and 1 s of latency never had them all
#      out at once).
#   3. wake latency: WAKE_N jobs (200), one every WAKE_MS (20) ms, enqueued
#      by another process on an idle worker: from the producer's commit
#      (timestamped right after sl_enqueue returns) to the mock logging the
#      request, and (with strace) to the worker's send() to the microsecond;
#      plus the worker's CPU time over the run (no busy polling).
# Figures only: nothing here fails on time. Exit 1 only when a run did not
# do its work (jobs left unfinished, a tool missing, a process failing).
#
# Usage: bench/worker.sh [BUILD_DIR]
#   (release build: `make all build/bench/worker_probe`)
# Env: JOBS, RUNS, CONC, PROCS, MOCK_THREADS, WRK_SECONDS, INFLIGHT,
#      INFLIGHT_LATENCY_MS, WAKE_N,
#      WAKE_MS, ONLY (1, 2 or 3: one scenario), SLUICE (the sluice binary
#      under test; default BUILD_DIR/sluice), STRACE=0 (no strace), KEEP=1
#      (keep the temp dir: journals, logs, per-job latencies).
set -u
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "$ROOT" && cd "$BUILD" && pwd) ||
  { echo "no build dir" >&2; exit 2; }
SLUICE=${SLUICE:-$BUILD/sluice} # SLUICE=path: compare another build
MOCK=$BUILD/sluice-mock
PROBE=$BUILD/bench/worker_probe
JOBS=${JOBS:-100000}
RUNS=${RUNS:-3}
CONC=${CONC:-64}
MOCK_THREADS=${MOCK_THREADS:-1}
WRK_SECONDS=${WRK_SECONDS:-5}
INFLIGHT=${INFLIGHT:-10000}
INFLIGHT_LATENCY_MS=${INFLIGHT_LATENCY_MS:-10000}
WAKE_N=${WAKE_N:-200}
WAKE_MS=${WAKE_MS:-20}
ONLY=${ONLY:-}
PROCS=${PROCS:-2}
BODY='{"model":"gpt-4o-mini","input":"Say hello to the benchmark."}'

for t in "$SLUICE" "$MOCK" "$PROBE"; do
  [ -x "$t" ] || {
    echo "worker.sh: $t missing (make all $BUILD/bench/worker_probe)" >&2
    exit 1
  }
done
for t in wrk sqlite3 curl; do
  command -v $t >/dev/null ||
    { echo "worker.sh: $t not installed" >&2; exit 1; }
done

TMP=$(mktemp -d /tmp/sluice-bench-worker.XXXXXX)
MOCK_PID=
WORKER_PID=
failed=0
cleanup() {
  [ -n "$WORKER_PID" ] && kill "$WORKER_PID" 2>/dev/null &&
    wait "$WORKER_PID" 2>/dev/null
  [ -n "$MOCK_PID" ] && kill "$MOCK_PID" 2>/dev/null &&
    wait "$MOCK_PID" 2>/dev/null
  if [ -n "${KEEP:-}" ]; then
    echo "worker.sh: kept $TMP"
  else
    rm -rf "$TMP"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now_ns() { date +%s%N; }

# start_mock ARGS...: sets MOCK_PID and PORT; fails after 5 s without a port.
start_mock() {
  local i
  rm -f "$TMP/port"
  "$MOCK" --host 127.0.0.1 --port 0 --port-file "$TMP/port" "$@" \
    >"$TMP/mock.out" 2>&1 &
  MOCK_PID=$!
  for i in $(seq 1 100); do
    [ -s "$TMP/port" ] && break
    kill -0 "$MOCK_PID" 2>/dev/null || break
    sleep 0.05
  done
  PORT=$(cat "$TMP/port" 2>/dev/null)
  if [ -z "$PORT" ]; then
    echo "worker.sh: sluice-mock did not start: $(cat "$TMP/mock.out")" >&2
    exit 1
  fi
  BASE=http://127.0.0.1:$PORT/v1
}

stop_mock() {
  [ -n "$MOCK_PID" ] || return 0
  kill "$MOCK_PID" 2>/dev/null
  wait "$MOCK_PID" 2>/dev/null
  MOCK_PID=
}

# fresh_journal PATH N: a new journal holding N identical urgent jobs.
fresh_journal() {
  rm -f "$1" "$1-wal" "$1-shm"
  "$SLUICE" init -j "$1" >/dev/null || exit 1
  if [ "$2" -gt 0 ]; then
    yes "$BODY" | head -n "$2" | "$SLUICE" enqueue -j "$1" >/dev/null ||
      exit 1
  fi
}

# count J STATE
count() { sqlite3 "$1" "SELECT count(*) FROM jobs WHERE state = '$2'"; }

# pct P < sorted numbers: nearest-rank percentile.
pct() {
  awk -v p="$1" '{a[NR] = $1} END {if (!NR) {print "-"; exit}
    i = int(p * NR + 0.999999); if (i < 1) i = 1; if (i > NR) i = NR
    print a[i]}'
}

# median of the arguments
median() {
  printf '%s\n' "$@" | sort -g |
    awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'
}

# per_s N NANOSECONDS: a rate per second
per_s() { awk -v n="$1" -v ns="$2" 'BEGIN {printf "%.0f", n / (ns / 1e9)}'; }

# percent A B: 100 * A / B (0 when B is 0)
percent() {
  awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", (b > 0 ? 100 * a / b : 0)}'
}

# ms < microseconds: milliseconds
ms() { awk '{print $1 / 1000}'; }

mock_stat() { # mock_stat FIELD: a number from GET /_mock/stats
  curl -s --max-time 5 "http://127.0.0.1:$PORT/_mock/stats" |
    tr ',{}' '\n\n\n' | sed -n "s/^ *\"$1\" *: *\([0-9]*\).*/\1/p" | head -1
}

cpu_model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 |
  sed 's/^ *//')
echo "worker bench: $(nproc) cores ($cpu_model),"
echo "  the mock, wrk and the worker share them: figures are for this" \
  "machine only"
echo "  (load average at start: $(cut -d' ' -f1-3 /proc/loadavg); other" \
  "work on the machine moves them)"

# cpu_ticks PID: user + system clock ticks a process has used so far
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

# us_per N TICKS: microseconds of CPU per unit (TICKS in clock ticks)
us_per() {
  awk -v n="$1" -v t="$2" -v hz="$(getconf CLK_TCK)" \
    'BEGIN {printf "%.1f", (n > 0 ? t / hz * 1e6 / n : 0)}'
}

# busy TICKS NANOSECONDS: percent of one core a process used over a span
busy() {
  awk -v t="$1" -v ns="$2" -v hz="$(getconf CLK_TCK)" \
    'BEGIN {printf "%.0f", (ns > 0 ? 100 * (t / hz) / (ns / 1e9) : 0)}'
}

# run_wrk: sets W_RATE (requests/s), W_CPU (wrk's us per request),
# W_MOCK (the mock's us per request) and W_BUSY (% of a core the mock used)
run_wrk() {
  local m0 m1 t0 t1 n
  m0=$(cpu_ticks "$MOCK_PID")
  t0=$(now_ns)
  /usr/bin/time -f "%U %S" -o "$TMP/timew" wrk -t1 -c"$CONC" \
    -d"${WRK_SECONDS}s" -s "$TMP/wrk.lua" "$BASE/responses" >"$TMP/wrk.out"
  t1=$(now_ns)
  m1=$(cpu_ticks "$MOCK_PID")
  W_RATE=$(awk '/^Requests\/sec/ {print $2}' "$TMP/wrk.out")
  n=$(awk '/requests in/ {print $1}' "$TMP/wrk.out")
  W_CPU=$(awk -v n="${n:-0}" '{printf "%.1f", (n > 0 ? ($1 + $2) * 1e6 / n : 0)}' \
    "$TMP/timew")
  W_MOCK=$(us_per "${n:-0}" $((m1 - m0)))
  W_BUSY=$(busy $((m1 - m0)) $((t1 - t0)))
}

scenario1() {
  local J=$TMP/s1.db r t0 t1 s w rate lat50 lat99 q50 cpu ratio m0 m1 sm sb
  local -a s_rate=() w_rate=() l50=() l99=() qw=() cpus=() ratios=()
  local -a wcpus=() smock=() wmock=() sbusy=() wbusy=() cratios=()
  local -a p_rate=() p_cpus=() p_ratios=()
  cat >"$TMP/wrk.lua" <<EOF
-- The worker's request: same path, body and headers (a unique
-- Idempotency-Key each, as the mock keeps a set of answered keys).
local n = 0
local body = '$BODY'
function request()
  n = n + 1
  return wrk.format("POST", "/v1/responses",
    {["Content-Type"] = "application/json",
     ["Idempotency-Key"] = "wrk-" .. n .. "-" .. math.random(1e9)}, body)
end
EOF
  echo
  echo "== 1. throughput: $JOBS jobs at zero latency vs wrk" \
    "(median of $RUNS runs)"
  echo "   concurrency $CONC for both: sluice --concurrency $CONC (HTTP/1.1,"
  echo "   $CONC keep-alive connections), wrk -t1 -c$CONC;" \
    "sluice-mock --threads $MOCK_THREADS"
  for r in $(seq 1 "$RUNS"); do
    fresh_journal "$J" "$JOBS"
    start_mock --threads "$MOCK_THREADS"
    # wrk first on odd runs, sluice first on even ones (drift cancels out)
    [ $((r % 2)) -eq 1 ] && run_wrk
    m0=$(cpu_ticks "$MOCK_PID")
    t0=$(now_ns)
    /usr/bin/time -f "%U %S" -o "$TMP/time1" "$SLUICE" work -j "$J" \
      --base-url "$BASE" --exit-when-idle --concurrency "$CONC" \
      --log-level warn 2>"$TMP/worker1.log"
    s=$?
    t1=$(now_ns)
    m1=$(cpu_ticks "$MOCK_PID")
    [ "$PROCS" -gt 1 ] && { run_procs || return; }
    [ $((r % 2)) -eq 0 ] && run_wrk
    w=$W_RATE
    stop_mock
    if [ "$s" -ne 0 ] || [ "$(count "$J" succeeded)" -ne "$JOBS" ]; then
      echo "   run $r: worker exit $s," \
        "$(count "$J" succeeded)/$JOBS succeeded:"
      tail -5 "$TMP/worker1.log"
      failed=1
      return
    fi
    rate=$(per_s "$JOBS" $((t1 - t0)))
    cpu=$(awk -v n="$JOBS" '{printf "%.1f", ($1 + $2) * 1e6 / n}' \
      "$TMP/time1")
    ratio=$(percent "$rate" "${w:-0}")
    # per job: request start to its durable commit (attempt started/finished)
    sqlite3 "$J" "SELECT finished_at - started_at FROM attempts ORDER BY 1" \
      >"$TMP/lat"
    lat50=$(pct 0.50 <"$TMP/lat")
    lat99=$(pct 0.99 <"$TMP/lat")
    # enqueue to result: dominated by the backlog (all jobs enqueued first)
    q50=$(sqlite3 "$J" "SELECT r.created_at - j.created_at FROM results r
      JOIN jobs j ON j.id = r.job_id ORDER BY 1" | pct 0.50)
    sm=$(us_per "$JOBS" $((m1 - m0)))
    sb=$(busy $((m1 - m0)) $((t1 - t0)))
    printf '   run %d: sluice %6s jobs/s (CPU %5s us/job, mock %s%% busy)' \
      "$r" "$rate" "$cpu" "$sb"
    printf '   wrk %9s req/s (CPU %s us/req, mock %s%% busy)   ratio %5s%%\n' \
      "${w:-?}" "$W_CPU" "$W_BUSY" "$ratio"
    s_rate+=("$rate"); w_rate+=("${w:-0}"); cpus+=("$cpu")
    l50+=("$lat50"); l99+=("$lat99"); qw+=("$q50"); ratios+=("$ratio")
    wcpus+=("$W_CPU"); smock+=("$sm"); wmock+=("$W_MOCK")
    sbusy+=("$sb"); wbusy+=("$W_BUSY")
    cratios+=("$(percent "$W_CPU" "$cpu")")
    if [ "$PROCS" -gt 1 ]; then
      printf '   run %d: %d workers %6s jobs/s (CPU %5s us/job)   ratio %5s%%\n' \
        "$r" "$PROCS" "$P_RATE" "$P_CPU" "$(percent "$P_RATE" "${w:-0}")"
      p_rate+=("$P_RATE"); p_cpus+=("$P_CPU")
      p_ratios+=("$(percent "$P_RATE" "${w:-0}")")
    fi
  done
  echo "   ---"
  printf '   sluice:  %s jobs/s end to end (wall time of %s)\n' \
    "$(median "${s_rate[@]}")" '`sluice work --exit-when-idle`'
  printf '   wrk:     %s requests/s\n' "$(median "${w_rate[@]}")"
  printf '   ratio:   %s%% of wrk (median of the per-run ratios;' \
    "$(median "${ratios[@]}")"
  printf ' target >= 50%%)\n'
  printf '   worker CPU (user + system): %s us per job (target <= 30);' \
    "$(median "${cpus[@]}")"
  echo " each job is a"
  echo "   claim, an HTTP exchange through curl, and three rows (job, result,"
  echo "   attempt) group-committed to the journal: see bench_journal for" \
    "the journal alone"
  printf '   wrk CPU: %s us per request; CPU ratio (wrk per request /' \
    "$(median "${wcpus[@]}")"
  printf ' worker per job): %s%%\n' "$(median "${cratios[@]}")"
  echo "   (on a loaded machine the wall-clock ratio follows the CPU ratio:"
  echo "   every process gets a slice; the CPU figures hold either way)"
  printf '   the mock (one thread, C, libmicrohttpd): %s us per request' \
    "$(median "${smock[@]}")"
  printf ' under sluice, %s under wrk;\n' "$(median "${wmock[@]}")"
  printf '   busy %s%% of a core under sluice, %s%% under wrk' \
    "$(median "${sbusy[@]}")" "$(median "${wbusy[@]}")"
  if [ "$(median "${wbusy[@]}")" -ge 90 ]; then
    echo ": the mock limits wrk, so the ratio flatters sluice"
  else
    echo ": below a core, the mock is not the limit"
  fi
  printf '   job latency, request start to durable commit:'
  printf ' p50 %s ms, p99 %s ms\n' "$(median "${l50[@]}")" \
    "$(median "${l99[@]}")"
  printf '   (enqueue to result, backlog wait included: p50 %s ms)\n' \
    "$(median "${qw[@]}")"
  [ "$PROCS" -gt 1 ] || return 0
  printf '   %d workers on one journal (--concurrency %d each): %s jobs/s,' \
    "$PROCS" $((CONC / PROCS)) "$(median "${p_rate[@]}")"
  printf ' %s%% of wrk (median of the per-run ratios), CPU %s us per job\n' \
    "$(median "${p_ratios[@]}")" "$(median "${p_cpus[@]}")"
  echo "   (one loop a process: the worker above is one core's worth; more"
  echo "   processes share the journal's write lock and the machine's cores)"
}

# run_procs: PROCS workers on a fresh journal of JOBS jobs against the
# running mock; sets P_RATE (jobs/s) and P_CPU (us per job, all of them)
run_procs() {
  local J2=$TMP/s1p.db t0 t1 p bad=0 ticks=0
  local -a pids=()
  fresh_journal "$J2" "$JOBS"
  t0=$(now_ns)
  for p in $(seq 1 "$PROCS"); do
    /usr/bin/time -f "%U %S" -o "$TMP/timep$p" "$SLUICE" work -j "$J2" \
      --base-url "$BASE" --exit-when-idle \
      --concurrency $((CONC / PROCS > 0 ? CONC / PROCS : 1)) \
      --log-level warn 2>"$TMP/workerp$p.log" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || bad=1; done
  t1=$(now_ns)
  if [ "$bad" -ne 0 ] || [ "$(count "$J2" succeeded)" -ne "$JOBS" ]; then
    echo "   $PROCS workers: a worker failed or jobs were left:" \
      "$(count "$J2" succeeded)/$JOBS succeeded"
    tail -3 "$TMP"/workerp*.log
    failed=1
    return 1
  fi
  P_RATE=$(per_s "$JOBS" $((t1 - t0)))
  P_CPU=$(cat "$TMP"/timep* | awk -v n="$JOBS" \
    '{t += $1 + $2} END {printf "%.1f", t * 1e6 / n}')
}

# ---------------------------------------------------------------- 2
scenario2() {
  local J=$TMP/s2.db t0 t1 s rss maxin conns nofile
  echo
  echo "== 2. $INFLIGHT calls in flight at once, $INFLIGHT_LATENCY_MS ms" \
    "mock latency, one worker"
  fresh_journal "$J" "$INFLIGHT"
  start_mock --latency-ms "$INFLIGHT_LATENCY_MS" --threads 2
  nofile=$(ulimit -Hn)
  echo "   sluice work --concurrency $INFLIGHT --max-connections $INFLIGHT" \
    "--claim-batch $INFLIGHT"
  echo "   (HTTP/1.1: a connection per request; started with the soft fd"
  echo "   limit at 1024, hard $nofile: the worker raises its own)"
  t0=$(now_ns)
  (
    ulimit -Sn 1024
    exec /usr/bin/time -v -o "$TMP/time2" "$SLUICE" work -j "$J" \
      --base-url "$BASE" --exit-when-idle --concurrency "$INFLIGHT" \
      --max-connections "$INFLIGHT" --claim-batch "$INFLIGHT" \
      --log-level warn 2>"$TMP/worker2.log"
  )
  s=$?
  t1=$(now_ns)
  maxin=$(mock_stat max_in_flight)
  conns=$(mock_stat connections)
  stop_mock
  if [ "$s" -ne 0 ] || [ "$(count "$J" succeeded)" -ne "$INFLIGHT" ]; then
    echo "   worker exit $s, $(count "$J" succeeded)/$INFLIGHT succeeded:"
    tail -5 "$TMP/worker2.log"
    failed=1
  fi
  rss=$(awk -F: '/Maximum resident/ {gsub(/ /, "", $2); print $2}' \
    "$TMP/time2")
  printf '   peak RSS:  %.1f MB   (target < 150 MB)\n' \
    "$(awk -v k="${rss:-0}" 'BEGIN {print k / 1024}')"
  printf '   jobs/s:    %s   (%s jobs in %.2f s; ideal ~%s in %s ms)\n' \
    "$(per_s "$INFLIGHT" $((t1 - t0)))" "$INFLIGHT" \
    "$(awk -v ns=$((t1 - t0)) 'BEGIN {print ns / 1e9}')" "$INFLIGHT" \
    "$INFLIGHT_LATENCY_MS"
  echo "   mock saw:  ${maxin:-?} requests in flight at most," \
    "${conns:-?} connections"
  if [ "${maxin:-0}" -lt $((INFLIGHT * 95 / 100)) ]; then
    echo "   (fewer than 95% of $INFLIGHT were in flight at once: the RSS" \
      "is not for $INFLIGHT; raise INFLIGHT_LATENCY_MS)"
  fi
  echo "   worker CPU: user" \
    "$(awk -F': ' '/User time/ {print $2}' "$TMP/time2") s, system" \
    "$(awk -F': ' '/System time/ {print $2}' "$TMP/time2") s"
}

# ---------------------------------------------------------------- 3
scenario3() {
  local J=$TMP/s3.db i c0 c1 done_n hz wpid re traced=
  echo
  echo "== 3. wake latency: $WAKE_N jobs, one every $WAKE_MS ms, from" \
    "another process"
  fresh_journal "$J" 0
  start_mock --log "$TMP/mock3.log"
  # With strace, the moment each request leaves is also taken at the
  # worker's send() to the microsecond; --seccomp-bpf stops the worker on
  # sendto only (after the timestamp is taken), nothing else is slowed.
  if command -v strace >/dev/null && [ "${STRACE:-1}" != 0 ]; then
    strace --seccomp-bpf -f -ttt -e trace=sendto -e signal=none -s 1024 \
      -o "$TMP/strace3" "$SLUICE" work -j "$J" --base-url "$BASE" \
      --log-level warn 2>"$TMP/worker3.log" &
    traced=1
  else
    "$SLUICE" work -j "$J" --base-url "$BASE" --log-level warn \
      2>"$TMP/worker3.log" &
  fi
  WORKER_PID=$!
  sleep 0.5 # idle: its first claim found nothing
  hz=$(getconf CLK_TCK)
  wpid=$WORKER_PID
  [ -n "$traced" ] && wpid=$(pgrep -P "$WORKER_PID" | head -1)
  c0=$(awk '{print $14 + $15}' "/proc/$wpid/stat")
  "$PROBE" trickle "$J" "$WAKE_N" "$WAKE_MS" >"$TMP/commits" || failed=1
  for i in $(seq 1 100); do
    done_n=$(count "$J" succeeded)
    [ "$done_n" -ge "$WAKE_N" ] && break
    sleep 0.1
  done
  c1=$(awk '{print $14 + $15}' "/proc/$wpid/stat")
  kill "$wpid"; wait "$WORKER_PID"; WORKER_PID= # strace exits with it
  stop_mock
  if [ "$done_n" -lt "$WAKE_N" ]; then
    echo "   only $done_n/$WAKE_N jobs succeeded"; failed=1
  fi
  # commit (us) -> mock log line (ms, truncated): the latency lies in
  # [log_ms*1000 - commit_us, that + 1000) us; print both ends' percentiles.
  awk 'NR == FNR {c[$1] = $2; next} ($4 in c) {lo = $1 * 1000 - c[$4];
       print lo, lo + 1000}' "$TMP/commits" "$TMP/mock3.log" >"$TMP/wake"
  sort -n -k1,1 "$TMP/wake" | awk '{print $1}' >"$TMP/wake_lo"
  sort -n -k2,2 "$TMP/wake" | awk '{print $2}' >"$TMP/wake_hi"
  # the journal's view: attempt started_at (ms) - job created_at (ms)
  sqlite3 "$J" "SELECT a.started_at - j.created_at FROM attempts a
    JOIN jobs j ON j.id = a.job_id ORDER BY 1" >"$TMP/wake_j"
  echo "   matched $(wc -l <"$TMP/wake") of $WAKE_N requests in the" \
    "mock's log"
  echo "   commit -> mock receives the request (the mock logs whole ms, so"
  echo "   each figure is a range: between the lower and the upper bound):"
  printf '   p50: %.2f .. %.2f ms    p99: %.2f .. %.2f ms' \
    "$(pct 0.50 <"$TMP/wake_lo" | ms)" "$(pct 0.50 <"$TMP/wake_hi" | ms)" \
    "$(pct 0.99 <"$TMP/wake_lo" | ms)" "$(pct 0.99 <"$TMP/wake_hi" | ms)"
  printf '   (aim p50 < 1 ms, p99 < 5 ms)\n'
  if [ -n "$traced" ]; then
    # "PID SECONDS.MICROS sendto(fd, "POST ...Idempotency-Key: KEY\r\n..."
    re='s/^[0-9]* \([0-9]*\)\.\([0-9]*\) sendto(.*Idempotency-Key: '
    re+='\([^\\]*\)\\r.*/\3 \1\2/p'
    sed -n "$re" "$TMP/strace3" |
      awk 'NR == FNR {c[$1] = $2; next}
        ($1 in c) && !($1 in seen) {seen[$1] = 1; print $2 - c[$1]}' \
        "$TMP/commits" - | sort -n >"$TMP/wake_us"
    echo "   commit -> the worker calls send() (strace -ttt," \
      "microseconds): $(wc -l <"$TMP/wake_us") requests"
    [ -s "$TMP/wake_us" ] &&
      printf '   p50: %.3f ms    p99: %.3f ms    max %.3f ms\n' \
        "$(pct 0.50 <"$TMP/wake_us" | ms)" \
        "$(pct 0.99 <"$TMP/wake_us" | ms)" "$(tail -1 "$TMP/wake_us" | ms)"
  fi
  echo "   journal view (attempt started_at - job created_at, whole ms):" \
    "p50 $(pct 0.50 <"$TMP/wake_j") ms, p99 $(pct 0.99 <"$TMP/wake_j") ms"
  echo "   worker CPU over the" \
    "$(awk -v n="$WAKE_N" -v m="$WAKE_MS" 'BEGIN {print n * m / 1000}')" \
    "s run: $(awk -v t=$((c1 - c0)) -v hz="$hz" 'BEGIN {print t / hz}') s" \
    "(no busy polling; fallback tick at its 1 s default)"
}

[ -z "$ONLY" ] || [ "$ONLY" = 1 ] && scenario1
[ -z "$ONLY" ] || [ "$ONLY" = 2 ] && scenario2
[ -z "$ONLY" ] || [ "$ONLY" = 3 ] && scenario3
exit $failed
