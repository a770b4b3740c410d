#!/usr/bin/env bash
# Storm control figures against sluice-mock (never pass/fail on time):
#   amplification  requests sent / jobs attempted, during an outage
#   retry share    requests that were retries / all requests
#   429 share      429 answers / all requests
#   utilisation    2xx per second at steady state / the mock's limit rate
# Scenarios: a total 429 outage then recovery, a total 503 outage then
# recovery, four processes sharing one RPM limit, the same on a TPM limit.
# Usage: bench/storm.sh [BUILD_DIR]
set -u
BUILD=${1:-${SLUICE_BUILD:-build}}
BUILD=$(cd "$BUILD" && pwd)
SLUICE="$BUILD/sluice"
MOCK="$BUILD/sluice-mock"
T=$(mktemp -d /tmp/sluice-bench-storm.XXXXXX)
PIDS=()
trap 'for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$T"' EXIT
export SLUICE_JOURNAL

# run NAME JOBS WORKERS "MOCK ARGS" "WORKER ARGS" OUTAGE_S RATE_PER_S
run() {
  local name=$1 jobs=$2 workers=$3 margs=$4 wargs=$5 outage=$6 rate=$7
  local d="$T/$name" pf p i pids=() rc=0
  mkdir -p "$d"
  SLUICE_JOURNAL="$d/j.db"
  "$SLUICE" init >/dev/null
  for i in $(seq 1 "$jobs"); do
    printf '{"model":"gpt-4o-mini","input":"job %d","max_output_tokens":16}\n' "$i"
  done | "$SLUICE" enqueue --max-attempts 20 >/dev/null
  pf="$d/port"
  # shellcheck disable=SC2086
  "$MOCK" --port 0 --port-file "$pf" --log "$d/mock.log" $margs 2>"$d/mock.err" &
  p=$!
  PIDS+=("$p")
  for i in $(seq 1 100); do [ -s "$pf" ] && break; sleep 0.05; done
  for i in $(seq 1 "$workers"); do
    # shellcheck disable=SC2086
    timeout 300 "$SLUICE" work --base-url "http://127.0.0.1:$(cat "$pf")/v1" \
      --exit-when-idle --no-batch --poll 100ms --concurrency 32 \
      --backoff-base 100ms --backoff-cap 2s $wargs 2>"$d/w$i.log" &
    pids+=($!)
    PIDS+=($!)
  done
  for i in "${pids[@]}"; do wait "$i" || rc=1; done
  kill "$p"; wait "$p" 2>/dev/null
  local ok
  ok=$(sqlite3 "$d/j.db" "SELECT count(*) FROM jobs WHERE state = 'succeeded'")
  [ "$ok" = "$jobs" ] || { echo "$name: only $ok of $jobs jobs succeeded"; rc=1; }
  case $rate in # tpm:N: the request rate a token limit allows
  tpm:*) rate=$(sqlite3 "$d/j.db" "SELECT ${rate#tpm:} / 60.0 / avg(total_tokens) FROM results") ;;
  esac
  grep ' /v1/responses ' "$d/mock.log" | awk -v outage="$outage" -v rate="$rate" \
    -v name="$name" -v jobs="$jobs" '
    NR == 1 { t0 = $1 }
    { n++; s = int(($1 - t0) / 1000); if (s > last) last = s
      if ($5 == 429) n429++
      if (seen[$4]++) retries++
      if (($1 - t0) < outage * 1000) { on++; if (!oseen[$4]++) ojobs++ }
      if ($5 == 200) ok[s]++ }
    END {
      # steady state: whole seconds after the outage and the first bucket
      from = outage + 2; to = last - 1; good = 0; secs = 0
      for (k = from; k < to; k++) { good += ok[k]; secs++ }
      printf "%-12s jobs %5d  requests %5d  amplification(outage) %s  retry share %.3f  429 share %.4f  utilisation %s\n",
        name, jobs, n, ojobs ? sprintf("%.2f", on / ojobs) : "-",
        retries / n, n429 / n,
        (secs > 0 && rate > 0) ? sprintf("%.1f%%", 100 * good / secs / rate) : "-"
    }'
  return $rc
}

rc=0
# 1. total 429 outage (Retry-After 1 s) for 5 s, then recovery (20 req/s).
run outage429 600 2 "--rpm 1200 --faults 429~0-5" "--recover-rate 0.5" 5 20 || rc=1
# 2. total 503 outage for 5 s (the breaker opens, probes close it).
run outage503 600 2 "--rpm 1200 --faults 503~0-5" \
  "--breaker-open 500ms --breaker-min 5 --breaker-window 2s" 5 0 || rc=1
# (no utilisation: the mock's bucket stays full through a 503 outage)
# 3. four processes share one RPM limit learned from headers (50 req/s).
run shared-rpm 4500 4 "--rpm 3000" "" 0 50 || rc=1
# 4. four processes share a TPM limit (1000 tokens/s; ~33 tokens a job).
run shared-tpm 3000 4 "--tpm 60000" "" 0 tpm:60000 || rc=1
exit $rc
