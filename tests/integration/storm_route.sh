#!/usr/bin/env bash
# Storm control II (issue 12): in a total outage of any retryable class the
# route as a whole backs off: one wave, then probes. Two processes share one
# journal (concurrency 16 each); one of them is stopped and replaced in the
# middle of the outage. Asserts, per class:
#   - requests that met the outage <= 2 x the configured concurrency (32);
#   - every job succeeds, within a generous bound after recovery (speed is
#     measured by bench/storm.sh, not here).
# Classes: 429 with Retry-After, 429 with no headers at all, 503, 500, and a
# server that never answers (timeout).
# STORM_PHASES="r500 hang" runs only the named phases (default: all);
# STORM_KEEP=DIR keeps each phase's journal and logs there.
. "$(dirname "$0")/../lib/testlib.sh"

JOBS=600
OUT=8 # seconds of outage, from the workers' first claim
CONC=16

claimed() { [ "$(sql "SELECT count(*) FROM jobs WHERE attempts > 0")" -gt 0 ]; }
# sleep_until MS: until the epoch time MS (milliseconds), if still ahead
sleep_until() {
  local d=$(($1 - $(date +%s%3N)))
  [ "$d" -gt 0 ] && sleep "$((d / 1000)).$(printf '%03d' $((d % 1000)))"
  return 0
}

# scenario NAME FAULT LABEL [WORKER ARGS...]
scenario() {
  local name=$1 fault=$2 fclass=$3 pids=() p rc=0 t0 tend now ok i
  shift 3
  case " ${STORM_PHASES:-$name} " in *" $name "*) ;; *) return ;; esac
  reset_journal
  "$SLUICE" init >/dev/null
  for i in $(seq 1 "$JOBS"); do
    printf '{"model":"gpt-4o-mini","input":"%s %d","max_output_tokens":16}\n' \
      "$name" "$i"
  done | "$SLUICE" enqueue --max-attempts 50 >/dev/null
  # The outage lasts until the script lifts it, OUT s after the workers
  # began: a loaded machine that starts them late shortens nothing.
  start_mock --faults "$fault" --log "$T/$name.mock.log" ||
    { fail "$name: mock starts"; return; }
  wk() {
    timeout 120 "$SLUICE" work --base-url "$MOCK_URL" --exit-when-idle \
      --no-batch --poll 100ms --concurrency "$CONC" --backoff-base 100ms \
      --backoff-cap 2s "$@" 2>>"$T/$name.w.log" &
    pids+=($!)
    PIDS+=($!)
  }
  wk "$@"
  wk "$@"
  wait_for 30 claimed || fail "$name: the workers claim"
  t0=$(date +%s%3N)
  # a restart in the middle of the outage: the newcomer must not send a
  # fresh wave (it reads the route's state from the journal)
  sleep 3
  # (the pid is timeout(1)'s: it passes SIGTERM on and exits 143)
  kill -TERM "${pids[0]}"
  wait "${pids[0]}"
  pids=("${pids[@]:1}")
  wk "$@"
  "$SLUICE" status >"$T/$name.status" 2>&1
  check "$name: sluice status shows the route held" \
    grep -Eq '^/v1/responses +gpt-4o-mini +held' "$T/$name.status"
  # recovery: lift the fault, then wait (bounded) for the backlog to drain
  sleep_until $((t0 + OUT * 1000))
  curl -s -o /dev/null -X PUT --data-binary '' \
    "http://127.0.0.1:$MOCK_PORT/_mock/faults" ||
    fail "$name: the mock takes the fault back"
  tend=$(date +%s%3N)
  for i in $(seq 1 1200); do
    ok=$(sql "SELECT count(*) FROM jobs WHERE state = 'succeeded'")
    [ "$ok" = "$JOBS" ] && break
    sleep 0.1
  done
  now=$(date +%s%3N)
  for p in "${pids[@]}"; do wait "$p" || rc=$?; done
  stop_mock
  eq "$name: workers exit 0" 0 "$rc"
  eq "$name: every job succeeded" "$JOBS" "$ok"
  eq "$name: none failed" 0 "$(sql "SELECT count(*) FROM jobs WHERE state = 'failed'")"
  local sent
  sent=$(sql "SELECT count(*) FROM attempts WHERE route = 'online'
              AND failure_class IS NOT NULL")
  check "$name: requests in the outage <= 2 x concurrency ($sent <= $((4 * CONC)))" \
    [ "$sent" -le $((4 * CONC)) ]
  check "$name: the outage was seen ($sent requests)" [ "$sent" -ge 1 ]
  local drain=$((now - tend))
  check "$name: drained within 30 s of recovery (${drain} ms)" \
    [ "$drain" -le 30000 ]
  echo "figures: $name: $sent requests in the outage, drained ${drain} ms after recovery"
  if [ -n "${STORM_KEEP:-}" ]; then
    mkdir -p "$STORM_KEEP"
    cp "$T/$name".* "$STORM_KEEP/" 2>/dev/null
    sql ".backup '$STORM_KEEP/$name.db'"
  fi
}

scenario r429 429 rate_limited
scenario r429bare 429bare rate_limited
scenario r503 503 overloaded
scenario r500 500 server_error
scenario hang hang timeout --timeout 1s
finish
