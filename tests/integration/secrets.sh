#!/usr/bin/env bash
# Invariant 7: the API key reaches the server and nowhere else: not the
# journal (or its WAL), not a log line, not an error message, not metrics,
# not the CLI; whatever the key's shape, even when the server echoes it.
. "$(dirname "$0")/../lib/testlib.sh"

KEY="sk-test-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
WRONG="sk-wrong-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
start_mock --require-key "$KEY" --log "$T/mock.log"
"$SLUICE" init >/dev/null
for i in $(seq 1 20); do printf '{"model":"m","input":"%d"}\n' "$i"; done |
  "$SLUICE" enqueue >/dev/null

OPENAI_API_KEY="$KEY" timeout 60 "$SLUICE" work --base-url "$MOCK_URL" \
  --exit-when-idle --log-level debug 2>"$T/worker.log"
eq "the key from \$OPENAI_API_KEY authenticates" 20 \
  "$(sql "SELECT count(*) FROM jobs WHERE state='succeeded'")"

# the key from a file; a wrong key is classified auth and pauses the
# queue's online route (storm control: no attempt spent), saying so
# without the key
printf '%s\n' "$WRONG" >"$T/keyfile"
chmod 600 "$T/keyfile"
"$SLUICE" enqueue -m 1 '{"model":"m","input":"wrong key"}' >/dev/null
timeout 60 "$SLUICE" work --base-url "$MOCK_URL" --api-key-file "$T/keyfile" \
  --poll 100ms --log-level debug 2>>"$T/worker.log" &
wpid=$!
PIDS+=($wpid)
paused() { [ "$(sql "SELECT online_paused FROM queue_limits")" = 1 ]; }
wait_for 20 paused
kill -TERM $wpid
wait $wpid
eq "a wrong key is classified auth" auth \
  "$(sql "SELECT last_class FROM jobs WHERE state='pending'")"
"$SLUICE" resume default >/dev/null
printf '%s\n' "$KEY" >"$T/keyfile"
"$SLUICE" enqueue '{"model":"m","input":"file key"}' >/dev/null
timeout 60 "$SLUICE" work --base-url "$MOCK_URL" --api-key-file "$T/keyfile" \
  --exit-when-idle --log-level debug 2>>"$T/worker.log"
# 22: the job refused for the wrong key was kept, and now succeeds too
eq "the key from --api-key-file authenticates" 22 \
  "$(sql "SELECT count(*) FROM jobs WHERE state='succeeded'")"
"$SLUICE" work --api-key-file "$T/missing" --exit-when-idle 2>"$T/err"
eq "a missing key file is a configuration error" 4 $?
stop_mock

# Secrets by value: keys of several shapes, and a careless server that
# echoes the key it was sent in a 400's message, a 401's message (the
# wrong key) and every 200 body. Redaction by shape (sk-...) cannot catch
# most of these; the worker scrubs the value itself.
hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }
b64() { head -c "$1" /dev/urandom | base64 -w0 | tr '+/' '-_' | tr -d '='; }
SHAPES=("sk-$(hex 24)" "sk-proj-$(b64 48)" "$(hex 16)" "sess-$(b64 30)"
  "eyJhbGciOiJIUzI1NiJ9.$(b64 40).$(b64 32)")
WRONGS=("sk-$(hex 24)" "sk-proj-$(b64 48)" "$(hex 16)" "sess-$(b64 30)"
  "eyJhbGciOiJIUzI1NiJ9.$(b64 40).$(b64 32)")
: >"$T/metrics.txt"
# (not $i: wait_for has a local i, which the polled functions would see)
for sh in "${!SHAPES[@]}"; do
  K=${SHAPES[$sh]}
  W=${WRONGS[$sh]}
  start_mock --require-key "$K" --echo-key --log "$T/mock.log"
  # each shape on its own queue and model: no round sees another's jobs
  "$SLUICE" enqueue -q "s$sh" "{\"model\":\"m$sh\",\"input\":\"echo in 200\"}" \
    >/dev/null
  "$SLUICE" enqueue -q "s$sh" -m 1 \
    "{\"model\":\"m$sh\",\"input\":\"echo-400\"}" \
    >/dev/null
  OPENAI_API_KEY="$K" timeout 60 "$SLUICE" work --base-url "$MOCK_URL" \
    -q "s$sh" --poll 100ms --metrics-port 0 --log-level debug \
    2>"$T/worker.$sh.log" &
  wpid=$!
  PIDS+=($wpid)
  done2() { [ "$(sql "SELECT count(*) FROM jobs WHERE queue='s$sh'
    AND state IN ('succeeded','failed')")" = 2 ]; }
  wait_for 30 done2
  port=$(grep -o 'metrics on http://127.0.0.1:[0-9]*' "$T/worker.$sh.log" |
    grep -o '[0-9]*$')
  curl -s "http://127.0.0.1:$port/metrics" >>"$T/metrics.txt"
  kill -TERM $wpid
  wait $wpid
  eq "shape $sh: the echoing 200 is stored, the key scrubbed" 1 \
    "$(sql "SELECT count(*) FROM jobs j JOIN results r ON r.job_id = j.id
      WHERE j.queue='s$sh' AND j.state='succeeded'
      AND r.body LIKE '%echo___[redacted]%'")"
  eq "shape $sh: the echoing 400 is an invalid request" invalid_request \
    "$(sql "SELECT last_class FROM jobs WHERE queue='s$sh' AND state='failed'")"
  check "shape $sh: its error says the key was redacted" \
    grep -q 'redacted' <(sql "SELECT last_error FROM jobs WHERE queue='s$sh'
      AND state='failed'")
  # the wrong key, echoed in the 401
  "$SLUICE" enqueue -q "w$sh" "{\"model\":\"w$sh\",\"input\":\"wrong\"}" \
    >/dev/null
  OPENAI_API_KEY="$W" timeout 60 "$SLUICE" work --base-url "$MOCK_URL" \
    -q "w$sh" --poll 100ms --log-level debug 2>>"$T/worker.$sh.log" &
  wpid=$!
  PIDS+=($wpid)
  paused_w() { [ "$(sql "SELECT online_paused FROM queue_limits
    WHERE queue='w$sh'")" = 1 ]; }
  wait_for 20 paused_w
  kill -TERM $wpid
  wait $wpid
  check "shape $sh: the echoed wrong key is redacted in last_error" \
    grep -q 'Incorrect API key provided: \[redacted\]' \
      <(sql "SELECT last_error FROM jobs WHERE queue='w$sh'")
  stop_mock
  cat "$T/worker.$sh.log" >>"$T/worker.log"
done
check "metrics were scraped" grep -q '^sluice_' "$T/metrics.txt"
for id in $(sql "SELECT id FROM jobs WHERE queue GLOB '[sw][0-9]'"); do
  "$SLUICE" show "$id" >>"$T/show.txt" 2>&1
  "$SLUICE" show --json "$id" >>"$T/show.txt" 2>&1
done

"$SLUICE" show --json 21 >"$T/show.json" 2>&1
"$SLUICE" status --json >"$T/status.json" 2>&1
for k in "$KEY" "$WRONG" "${SHAPES[@]}" "${WRONGS[@]}"; do
  for f in "$SLUICE_JOURNAL" "$SLUICE_JOURNAL-wal" "$T/worker.log" \
    "$T/mock.log" "$T/mock.stderr" "$T/show.json" "$T/status.json" "$T/err" \
    "$T/metrics.txt" "$T/show.txt"; do
    [ -f "$f" ] || continue
    if grep -aqF "$k" "$f"; then
      fail "key absent from $(basename "$f")"
    else
      pass "key absent from $(basename "$f")"
    fi
  done
done
sqlite3 "$SLUICE_JOURNAL" .dump >"$T/dump.sql"
for k in "$KEY" "$WRONG" "${SHAPES[@]}" "${WRONGS[@]}"; do
  check "key absent from a full dump of the journal" \
    bash -c "! grep -aqF -- '$k' '$T/dump.sql'"
done
check "the worker logged (the check above looked at real lines)" \
  grep -q '"level":"debug"' "$T/worker.log"
finish
