#!/usr/bin/env bash
# Transport timeouts in layers (issue 12): a server that accepts the
# connection and never answers is cut off by the stall timeout (curl's
# low-speed limit), by the first-byte timeout, or by the total --timeout,
# and each expiry is named apart in the attempt row's error.
. "$(dirname "$0")/../lib/testlib.sh"

# layer NAME EXPECTED-PREFIX WORKER-ARGS...
layer() {
  local name=$1 want=$2 t0 t1 err
  shift 2
  reset_journal
  "$SLUICE" init >/dev/null
  echo '{"model":"gpt-4o-mini","input":"hello","max_output_tokens":16}' |
    "$SLUICE" enqueue --max-attempts 1 >/dev/null
  start_mock --faults 'hang' || { fail "$name: mock starts"; return; }
  t0=$(date +%s%3N)
  timeout 60 "$SLUICE" work --base-url "$MOCK_URL" --exit-when-idle \
    --no-batch --poll 100ms "$@" 2>"$T/$name.log"
  t1=$(date +%s%3N)
  stop_mock
  err=$(sql "SELECT error FROM attempts ORDER BY id LIMIT 1")
  check "$name: the attempt names the layer ('$err')" \
    sh -c "printf '%s' \"\$1\" | grep -q \"\$2\"" _ "$err" "$want"
  eq "$name: classed as a timeout after sending" ambiguous \
    "$(sql "SELECT failure_class FROM attempts ORDER BY id LIMIT 1")"
  check "$name: cut off well before the 30 s total ($((t1 - t0)) ms)" \
    [ $((t1 - t0)) -lt 20000 ]
}

layer stall 'stall timeout' --timeout 30s --stall-timeout 1s
layer first_byte 'first-byte timeout' --timeout 30s --stall-timeout 0 \
  --first-byte-timeout 1s
# the total layer with the others off
layer total 'total timeout' --timeout 1s --stall-timeout 0

"$SLUICE" work --stall-timeout -1 >/dev/null 2>"$T/bad.log"
check "a bad --stall-timeout is refused with a clear message" \
  grep -q 'stall-timeout' "$T/bad.log"
finish
