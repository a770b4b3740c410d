#!/usr/bin/env bash
# Invariant 7: the API key reaches the server and nowhere else: not the
# journal (or its WAL), not a log line, not an error message, not the CLI.
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

"$SLUICE" show --json 21 >"$T/show.json" 2>&1
"$SLUICE" status --json >"$T/status.json" 2>&1
for k in "$KEY" "$WRONG"; do
  for f in "$SLUICE_JOURNAL" "$SLUICE_JOURNAL-wal" "$T/worker.log" \
    "$T/mock.log" "$T/mock.stderr" "$T/show.json" "$T/status.json" "$T/err"; do
    [ -f "$f" ] || continue
    if grep -aqF "$k" "$f"; then
      fail "key absent from $(basename "$f")"
    else
      pass "key absent from $(basename "$f")"
    fi
  done
done
sqlite3 "$SLUICE_JOURNAL" .dump >"$T/dump.sql"
check "key absent from a full dump of the journal" \
  bash -c "! grep -aqF '$KEY' '$T/dump.sql' && ! grep -aqF '$WRONG' '$T/dump.sql'"
check "the worker logged (the check above looked at real lines)" \
  grep -q '"level":"debug"' "$T/worker.log"
finish
