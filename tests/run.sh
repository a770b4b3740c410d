#!/usr/bin/env bash
# Run every test: unit binaries (cmocka, one process per test case group)
# and integration scripts, each under a timeout, then print the totals as
# "N passed, N failed". Usage: tests/run.sh BUILD_DIR [FILTER]
set -u
BUILD=${1:-build/san}
FILTER=${2:-}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "$ROOT" && cd "$BUILD" && pwd) || { echo "no build dir $1"; exit 2; }
export SLUICE_BUILD="$BUILD" SLUICE_ROOT="$ROOT"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
unset OPENAI_API_KEY OPENAI_BASE_URL SLUICE_JOURNAL
LOGDIR=$(mktemp -d /tmp/sluice-tests.XXXXXX)
passed=0
failed=0
failures=()

run_one() { # name timeout cmd...
  local name=$1 limit=$2 log="$LOGDIR/$(basename "$1").log" p f rc
  shift 2
  timeout --kill-after=10 "$limit" "$@" >"$log" 2>&1
  rc=$?
  # cmocka: "[  PASSED  ] N test(s)."; scripts: "PASS: name" / "FAIL: name"
  p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
  f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
  if [ -z "$p" ]; then
    p=$(grep -c '^PASS: ' "$log")
    f=$(grep -c '^FAIL: ' "$log")
  fi
  p=${p:-0}
  f=${f:-0}
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    f=1 # crashed, timed out or failed outside a counted case
    echo "FAIL: $name exited $rc" >>"$log"
  fi
  passed=$((passed + p))
  failed=$((failed + f))
  if [ "$f" -gt 0 ]; then
    failures+=("$name")
    echo "--- $name: $p passed, $f failed (exit $rc); log follows"
    tail -n 40 "$log"
  else
    echo "--- $name: $p passed"
  fi
}

for t in "$BUILD"/tests/test_*; do
  [ -x "$t" ] || continue
  case "$t" in *"$FILTER"*) ;; *) continue ;; esac
  run_one "$(basename "$t")" 600 "$t"
done
for t in "$ROOT"/tests/integration/*.sh; do
  [ -f "$t" ] || continue
  case "$t" in *"$FILTER"*) ;; *) continue ;; esac
  run_one "$(basename "$t" .sh)" 1200 bash "$t"
done

if [ ${#failures[@]} -gt 0 ]; then
  echo "failed: ${failures[*]} (logs in $LOGDIR)"
else
  rm -rf "$LOGDIR"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
