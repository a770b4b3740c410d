# bench/lib.sh: what the shell benchmarks share. Source it after setting
# BUILD and NAME (the script's name, for messages and the temp dir). Sets
# TMP (removed on exit) and MOCK_PID; fail() prints and exits 1.

TMP=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench-$NAME.XXXXXX")
MOCK_PID=
bench_cleanup() {
  [ -n "$MOCK_PID" ] && kill "$MOCK_PID" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$TMP"
}
trap bench_cleanup EXIT
fail() { echo "$NAME.sh: $*" >&2; exit 1; }

# bench_mock [MOCK ARGS...]: start sluice-mock on a free loopback port;
# sets MOCK_URL.
bench_mock() {
  rm -f "$TMP/port" # an earlier mock's port would be read back at once
  "$BUILD/sluice-mock" --port 0 --port-file "$TMP/port" "$@" \
    2>"$TMP/mock.log" &
  MOCK_PID=$!
  for _ in $(seq 1 100); do [ -s "$TMP/port" ] && break; sleep 0.05; done
  [ -s "$TMP/port" ] || fail "the mock did not start"
  MOCK_URL="http://127.0.0.1:$(cat "$TMP/port")/v1"
}

# bench_deferrable JOURNAL JOBS BODY: a new journal holding JOBS deferrable
# jobs of about BODY bytes each.
bench_deferrable() {
  local pad
  "$BUILD/sluice" init --journal "$1" >/dev/null 2>&1 || fail "init"
  pad=$(head -c "$3" /dev/zero | tr '\0' x)
  awk -v n="$2" -v p="$pad" \
    'BEGIN { for (i = 1; i <= n; i++)
      printf "{\"model\":\"gpt-4o-mini\",\"input\":\"%d %s\"}\n", i, p }' |
    "$BUILD/sluice" enqueue --journal "$1" -u deferrable >/dev/null ||
    fail "enqueue"
}
