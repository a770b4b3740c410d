# testlib.sh: what the integration scripts share. Source it; it sets
# SLUICE (the binary), MOCK, a fresh temp dir $T removed on exit, and
# pass/fail/check helpers that print "PASS: name" / "FAIL: name".
set -u
: "${SLUICE_BUILD:?run through tests/run.sh or set SLUICE_BUILD}"
: "${SLUICE_ROOT:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
SLUICE="$SLUICE_BUILD/sluice"
MOCK="$SLUICE_BUILD/sluice-mock"
T=$(mktemp -d /tmp/sluice-it.XXXXXX)
export SLUICE_JOURNAL="$T/journal.db"
unset OPENAI_API_KEY OPENAI_BASE_URL
FAILS=0
PIDS=()

cleanup() {
  local p
  for p in "${PIDS[@]:-}"; do
    [ -n "$p" ] && kill -9 "$p" 2>/dev/null
  done
  wait 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT

pass() { echo "PASS: $1"; }
fail() { echo "FAIL: $1${2:+: $2}"; FAILS=$((FAILS + 1)); }
# check NAME CONDITION-COMMAND...: pass if the command succeeds.
check() { local n=$1; shift; if "$@"; then pass "$n"; else fail "$n"; fi; }
# eq NAME EXPECTED ACTUAL
eq() {
  if [ "$2" = "$3" ]; then pass "$1"; else fail "$1" "expected '$2', got '$3'"; fi
}
finish() { [ "$FAILS" -eq 0 ]; exit $?; }

# api_calls LOG: the mock's log lines for online API calls only (a worker's
# batch route also lists /v1/batches and /v1/files at start).
api_calls() {
  awk '$3 ~ /^\/v1\/(responses|chat\/completions|embeddings|completions|moderations)$/' "$1"
}

# A fresh journal: the file and its -wal/-shm, by name (never a glob).
reset_journal() {
  : "${SLUICE_JOURNAL:?}"
  rm -f "$SLUICE_JOURNAL" "$SLUICE_JOURNAL-wal" "$SLUICE_JOURNAL-shm"
}

sql() { sqlite3 -cmd ".timeout 10000" "$SLUICE_JOURNAL" "$@"; }

# start_mock [ARGS...]: start sluice-mock on a free port; sets MOCK_PORT,
# MOCK_PID, MOCK_URL. Waits (bounded) for the port file.
start_mock() {
  # A new name each time: a reused name would hand back the port of a mock
  # already stopped (the port file is there before the new mock writes it).
  MOCK_SEQ=$((${MOCK_SEQ:-0} + 1))
  local pf="$T/mock.port.$MOCK_SEQ" i
  rm -f "$pf"
  "$MOCK" --port 0 --port-file "$pf" "$@" 2>>"$T/mock.stderr" &
  MOCK_PID=$!
  PIDS+=("$MOCK_PID")
  for i in $(seq 1 100); do
    [ -s "$pf" ] && break
    sleep 0.05
  done
  if [ ! -s "$pf" ]; then
    echo "sluice-mock did not start:"; cat "$T/mock.stderr"
    return 1
  fi
  MOCK_PORT=$(cat "$pf")
  MOCK_URL="http://127.0.0.1:$MOCK_PORT/v1"
}

stop_mock() {
  kill "$MOCK_PID" 2>/dev/null
  wait "$MOCK_PID" 2>/dev/null
}

# wait_for SECONDS COMMAND...: poll until the command succeeds (bounded).
wait_for() {
  local limit=$1 i
  shift
  for i in $(seq 1 $((limit * 20))); do
    "$@" && return 0
    sleep 0.05
  done
  return 1
}

# loop_lag_max_ms URL: the worker's longest loop hold so far in ms, from
# sluice_loop_lag_max_seconds on its metrics endpoint URL (served off the
# loop, so a scrape never measures itself); empty when the scrape fails.
loop_lag_max_ms() {
  curl -sS -m 20 "$1" 2>/dev/null |
    awk '/^sluice_loop_lag_max_seconds /{printf "%d\n", $2 * 1000}'
}

# wait_metrics LOG: wait (30 s) for a worker started with --metrics-port 0
# to log its endpoint in LOG, and set MURL to it; a worker that never
# does fails the test and ends it.
wait_metrics() {
  wait_for 30 grep -q 'metrics on http://127.0.0.1:' "$1" ||
    { fail "metrics listening"; finish; }
  MURL=$(sed -n 's/.*metrics on \(http:[^"]*\)".*/\1/p' "$1" | head -1)
}
