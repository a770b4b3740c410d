#!/usr/bin/env bash
# Storm control figures against sluice-mock (never pass/fail on time), one
# line per scenario:
#   amplification  requests sent / jobs attempted, during the outage
#   wasted         requests sent during the outage (issue 12: at most 2x
#                  the configured concurrency over a 10 s outage)
#   drain          ms from the API's recovery to the last job's success
#                  (aim: a 2,000-job backlog within 8 s)
#   utilisation    2xx per second at steady state / the limit's rate
#                  (aim: at least 95%)
#   429 share      429 answers / all requests (aim: under 1% afterwards)
# Scenarios: a 10 s total outage of each retryable class (429 with
# Retry-After, 429 with no headers, 503, 500, a server that never answers),
# a 503 outage that starts under full load, the 429 outage with a worker
# restart in the middle, four processes
# sharing one RPM limit, the same on a TPM limit.
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
#     [RESTART_AT_S]
run() {
  local name=$1 jobs=$2 workers=$3 margs=$4 wargs=$5 outage=$6 rate=$7
  local restart=${8:-} d="$T/$name" pf p i pids=() rc=0 tm
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
  tm=$(date +%s%3N) # the mock's clock for its ~T1-T2 faults starts here
  wk() {
    # shellcheck disable=SC2086
    timeout 300 "$SLUICE" work --base-url "http://127.0.0.1:$(cat "$pf")/v1" \
      --exit-when-idle --no-batch --poll 100ms --concurrency 32 \
      --backoff-base 100ms --backoff-cap 2s $wargs 2>>"$d/w$1.log" &
    pids+=($!)
    PIDS+=($!)
  }
  for i in $(seq 1 "$workers"); do wk "$i"; done
  if [ -n "$restart" ]; then # SIGTERM one worker mid-outage, start anew
    sleep "$restart"
    kill -TERM "${pids[0]}"
    wait "${pids[0]}"
    pids=("${pids[@]:1}")
    wk r
  fi
  for i in "${pids[@]}"; do wait "$i" || rc=1; done
  kill "$p"; wait "$p" 2>/dev/null
  local ok
  ok=$(sqlite3 "$d/j.db" "SELECT count(*) FROM jobs WHERE state = 'succeeded'")
  [ "$ok" = "$jobs" ] || { echo "$name: only $ok of $jobs jobs succeeded"; rc=1; }
  case $rate in # tpm:N: the request rate a token limit allows
  tpm:*) rate=$(sqlite3 "$d/j.db" "SELECT ${rate#tpm:} / 60.0 / avg(total_tokens) FROM results") ;;
  esac
  # requests that never got an answer (hang) are not in the mock's log:
  # count the journal's attempts for the outage instead
  local hung
  hung=$(sqlite3 "$d/j.db" "SELECT count(*) FROM attempts WHERE
    failure_class IN ('timeout', 'ambiguous', 'network')")
  # OUTAGE_S: seconds from the mock's start, or FROM-TO
  case $outage in *-*) outage=${outage#*-} ;; esac
  grep ' /v1/responses ' "$d/mock.log" | awk -v outage="$outage" \
    -v rate="$rate" -v name="$name" -v jobs="$jobs" -v tm="$tm" \
    -v hung="$hung" '
    { n++; s = int(($1 - tm) / 1000); if (s > last) last = s
      if (seen[$4]++) retries++
      # wasted: the failed answers of an outage scenario (the mock clock
      # starts a little before tm, so a window would cut the first wave)
      if (outage > 0 && $5 != 200) { on++; if (!oseen[$4]++) ojobs++ }
      else { after++; if ($5 == 429) a429++ }
      if ($5 == 429) n429++
      if ($5 == 200) { ok[s]++; if ($1 > lastok) lastok = $1 } }
    END {
      on += hung
      # steady state: whole seconds after the outage and the first bucket
      from = outage + 2; to = last - 1; good = 0; secs = 0
      for (k = from; k < to; k++) { good += ok[k]; secs++ }
      fmt = "%-16s jobs %5d  requests %5d  amplification %5s  wasted %4d"
      fmt = fmt "  drain %7s  utilisation %6s  429 share %.4f (after %.4f)\n"
      printf fmt,
        name, jobs, n, ojobs ? sprintf("%.2f", on / ojobs) : "-", on,
        (outage > 0) ? sprintf("%dms", lastok - tm - outage * 1000) : "-",
        (secs > 0 && rate > 0) ? sprintf("%.1f%%", 100 * good / secs / rate) : "-",
        n ? n429 / n : 0, after ? a429 / after : 0
    }'
  return $rc
}

rc=0
# A 10 s total outage of each retryable class, 2,000 jobs, one worker of
# concurrency 32, then recovery (the mock has no limit: utilisation "-").
run out-429 2000 1 "--faults 429~0-10" "" 10 0 || rc=1
run out-429bare 2000 1 "--faults 429bare~0-10" "" 10 0 || rc=1
run out-503 2000 1 "--faults 503~0-10" "" 10 0 || rc=1
run out-500 2000 1 "--faults 500~0-10" "" 10 0 || rc=1
run out-hang 2000 1 "--faults hang~0-10" "--timeout 2s" 10 0 || rc=1
# one wave, then probes: a 503 outage that starts while 32 requests are in
# flight (1 s in, for 10 s); mock latency 20 ms
run mid-503 8000 1 "--latency-ms 20 --faults 503~1-11" "" 1-11 0 || rc=1
# the 429 outage, two workers, one replaced 4 s in
run out-429-restart 2000 2 "--faults 429~0-10" "" 10 0 4 || rc=1
# four processes share one RPM limit learned from headers (50 req/s)
run shared-rpm 4500 4 "--rpm 3000" "" 0 50 || rc=1
# four processes share a TPM limit (1000 tokens/s; ~33 tokens a job)
run shared-tpm 3000 4 "--tpm 60000" "" 0 tpm:60000 || rc=1
exit $rc
