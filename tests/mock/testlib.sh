# Shared helpers for tests/integration/mock_*.sh (sourced, not run).
# Starts sluice-mock on a free port, wraps curl, checks JSON with the
# sqlite3 CLI's json functions (no jq, no python), prints PASS:/FAIL:.
set -u
BUILD=${SLUICE_BUILD:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build}
MOCK_BIN="$BUILD/sluice-mock"
TMP=$(mktemp -d /tmp/sluice-mock-test.XXXXXX)
FAILS=0
MOCK_PID=
PORT=
STATUS=
CURL_RC=

cleanup() {
  if [ -n "$MOCK_PID" ] && kill -0 "$MOCK_PID" 2>/dev/null; then
    kill -KILL "$MOCK_PID" 2>/dev/null
    wait "$MOCK_PID" 2>/dev/null
  fi
  # Background curls a test left behind are bounded by -m; reap them.
  jobs -p | xargs -r kill 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT

pass() { echo "PASS: $1"; }
fail() {
  echo "FAIL: $1${2:+ ($2)}"
  FAILS=$((FAILS + 1))
}
# check NAME TEST... : run a test(1) expression, PASS or FAIL with detail.
check() {
  local name=$1
  shift
  if [ "$@" ]; then pass "$name"; else fail "$name" "$*"; fi
}

# start_mock ARGS... : start a fresh mock (stopping any running one).
start_mock() {
  local i
  [ -n "$MOCK_PID" ] && stop_mock >/dev/null
  rm -f "$TMP/port"
  "$MOCK_BIN" --port 0 --port-file "$TMP/port" "$@" 2>"$TMP/mock.err" &
  MOCK_PID=$!
  for i in $(seq 1 100); do
    [ -s "$TMP/port" ] && break
    kill -0 "$MOCK_PID" 2>/dev/null || break
    sleep 0.05
  done
  PORT=$(cat "$TMP/port" 2>/dev/null)
  if [ -z "$PORT" ]; then
    echo "mock did not start: $(cat "$TMP/mock.err")"
    MOCK_PID=
    return 1
  fi
  BASE="http://127.0.0.1:$PORT"
}

# stop_mock: SIGTERM, wait, and return the mock's exit status (ASan leak
# reports make it non-zero).
stop_mock() {
  local rc
  kill -TERM "$MOCK_PID" 2>/dev/null
  wait "$MOCK_PID"
  rc=$?
  MOCK_PID=
  return $rc
}

# req METHOD PATH [curl args...]: body -> $TMP/body, headers -> $TMP/hdr,
# status -> $STATUS, curl's exit code -> $CURL_RC. Bounded by -m 10.
req() {
  local method=$1 path=$2
  shift 2
  # curl -o leaves an earlier file in place when a request fails: a failed
  # request must not be checked against the previous answer.
  rm -f "$TMP/body" "$TMP/hdr"
  STATUS=$(curl -sS -m 10 -X "$method" -o "$TMP/body" -D "$TMP/hdr" \
    -w '%{http_code}' "$@" "$BASE$path" 2>"$TMP/curl.err")
  CURL_RC=$?
}
post() { # post PATH JSON [curl args...]
  local path=$1 data=$2
  shift 2
  req POST "$path" -H 'Content-Type: application/json' --data-binary "$data" \
    "$@"
}
# hdr NAME: value of response header NAME from the last req.
hdr() {
  grep -i "^$1:" "$TMP/hdr" | tail -1 | cut -d' ' -f2- | tr -d '\r'
}
# jq_ FILE PATH: json_extract of a file's JSON (empty if invalid).
jx() {
  sqlite3 :memory: "SELECT json_extract(readfile('$1'), '$2');" 2>/dev/null
}
# jb PATH: json_extract on the last body.
jb() { jx "$TMP/body" "$1"; }
# jvalid FILE: 1 when the file is valid JSON.
jvalid() {
  sqlite3 :memory: "SELECT json_valid(readfile('$1'));" 2>/dev/null
}
# stat_of PATH: a field of GET /_mock/stats.
stat_of() {
  rm -f "$TMP/stats" # a failed fetch must not read an earlier answer
  curl -sS -m 5 "$BASE/_mock/stats" -o "$TMP/stats"
  jx "$TMP/stats" "$1"
}
# wait_stat PATH VALUE: poll stats until PATH == VALUE (max 10 s).
wait_stat() {
  local i
  for i in $(seq 1 200); do
    [ "$(stat_of "$1")" = "$2" ] && return 0
    sleep 0.05
  done
  return 1
}
finish() {
  if [ "$FAILS" -gt 0 ]; then
    echo "$FAILS check(s) failed"
    exit 1
  fi
  exit 0
}
