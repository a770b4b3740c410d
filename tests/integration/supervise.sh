#!/usr/bin/env bash
# Running under a supervisor: sd_notify READY/STOPPING/WATCHDOG, config
# file < environment < flags, a bad value named with its file and line,
# SIGHUP reopening the log file and reloading settings, several workers on
# one journal.
. "$(dirname "$0")/../lib/testlib.sh"
LISTEN="$SLUICE_BUILD/tests/helpers/notify_listen"

start_mock --latency-ms 50
"$SLUICE" init >/dev/null
for i in $(seq 1 300); do printf '{"model":"m","input":"%d"}\n' "$i"; done |
  "$SLUICE" enqueue >/dev/null

# --- sd_notify protocol over a stand-in notify socket
"$LISTEN" "$T/notify.sock" 180 >"$T/notify.log" & # (killed on exit)
PIDS+=("$!")
wait_for 5 test -S "$T/notify.sock"
cat >"$T/sluice.conf" <<CONF
; a comment
[work]
base_url = $MOCK_URL
concurrency = 4
log-level = info
log_file = $T/worker.log
CONF
NOTIFY_SOCKET="$T/notify.sock" WATCHDOG_USEC=400000 \
  "$SLUICE" work --config "$T/sluice.conf" --poll 100ms 2>"$T/stderr" &
w=$!
PIDS+=("$w")
wait_for 10 grep -q "READY=1" "$T/notify.log"
check "READY=1 sent once claiming" grep -q "READY=1" "$T/notify.log"
# pinged every 200 ms (half of WATCHDOG_USEC); a fixed 0.5 s could pass
# with no ping on a loaded machine
check "watchdog pinged (WatchdogSec honoured)" \
  wait_for 10 grep -q "WATCHDOG=1" "$T/notify.log"
check "config file: log_file used" test -s "$T/worker.log"
check "config file: concurrency 4" grep -q "concurrency 4" "$T/worker.log"

# --- SIGHUP: log file reopened (logrotate), concurrency reloaded
mv "$T/worker.log" "$T/worker.log.1"
sed -i 's/concurrency = 4/concurrency = 9/' "$T/sluice.conf"
kill -HUP "$w"
wait_for 5 test -s "$T/worker.log"
check "SIGHUP reopens the log file" test -s "$T/worker.log"
wait_for 5 grep -q "concurrency 9" "$T/worker.log"
check "SIGHUP reloads concurrency" grep -q "reloaded .*concurrency 9" "$T/worker.log"
# a bad value on SIGHUP is logged with its line, and nothing changes
sed -i 's/concurrency = 9/concurrency = lots/' "$T/sluice.conf"
kill -HUP "$w"
wait_for 5 grep -q "settings kept" "$T/worker.log"
check "SIGHUP refuses a bad value, naming file and line" \
  grep -q "concurrency wants an integer.*sluice.conf:4; settings kept" "$T/worker.log"
sed -i 's/concurrency = lots/concurrency = 5/' "$T/sluice.conf"
kill -HUP "$w"
wait_for 5 grep -q "concurrency 5" "$T/worker.log"
check "... and the next good SIGHUP applies" grep -q "reloaded .*concurrency 5" "$T/worker.log"
kill -TERM "$w"
wait "$w"
eq "SIGTERM under a supervisor exits 0" 0 $?
# the listener prints what it receives on its own time, maybe after the
# worker exited
check "STOPPING=1 sent on SIGTERM" wait_for 10 grep -q "STOPPING=1" "$T/notify.log"
eq "nothing logged to stderr with a log file" "" "$(cat "$T/stderr")"

# --- precedence: file < environment < flags
printf '[work]\nconcurrency = 2\nbase_url = %s\n' "$MOCK_URL" >"$T/p.conf"
SLUICE_CONCURRENCY=3 timeout 60 "$SLUICE" work --config "$T/p.conf" \
  --exit-when-idle 2>"$T/p1.log"
check "environment beats the file" grep -q "concurrency 3" "$T/p1.log"
for i in $(seq 1 5); do printf '{"model":"m","input":"p%d"}\n' "$i"; done |
  "$SLUICE" enqueue >/dev/null
SLUICE_CONCURRENCY=3 timeout 60 "$SLUICE" work --config "$T/p.conf" \
  --concurrency 5 --exit-when-idle 2>"$T/p2.log"
check "a flag beats both" grep -q "concurrency 5" "$T/p2.log"
# ... on SIGHUP too: the file is read again, and the flag still wins
"$SLUICE" work --config "$T/p.conf" --concurrency 5 --poll 100ms \
  --log-file "$T/p3.log" 2>/dev/null &
w=$!
PIDS+=("$w")
wait_for 10 grep -q "concurrency 5" "$T/p3.log"
sed -i 's/concurrency = 2/concurrency = 7/' "$T/p.conf"
kill -HUP "$w"
wait_for 5 grep -q "reloaded" "$T/p3.log"
check "SIGHUP keeps a flag over the file" grep -q "reloaded .*concurrency 5" "$T/p3.log"
kill -TERM "$w"
wait "$w"

# --- bad values: file, line and reason; exit 4
printf '[work]\n\nconcurrency = many\n' >"$T/bad.conf"
"$SLUICE" work --config "$T/bad.conf" 2>"$T/err"
eq "bad config value exits 4" 4 $?
check "bad value names file and line" grep -q "bad.conf:3" "$T/err"
printf '[work]\nconcurency = 3\n' >"$T/typo.conf"
"$SLUICE" work --config "$T/typo.conf" 2>"$T/err"
eq "unknown key exits 4" 4 $?
check "unknown key is named" grep -q "typo.conf:2: unknown key 'concurency'" "$T/err"
SLUICE_CONFIG="$T/typo.conf" "$SLUICE" work 2>/dev/null
eq "\$SLUICE_CONFIG is read" 4 $?

# --- several processes on one journal
for i in $(seq 1 600); do printf '{"model":"m","input":"multi %d"}\n' "$i"; done |
  "$SLUICE" enqueue -q multi >/dev/null
for k in 1 2 3; do
  timeout 120 "$SLUICE" work --base-url "$MOCK_URL" -q multi --concurrency 8 \
    --exit-when-idle 2>"$T/multi.$k.log" &
  PIDS+=("$!")
done
# (each worker exits when idle, under timeout 120: waiting for them is the
# bound; a wait_for on "$(sql ...)" evaluated that query once)
for k in 1 2 3; do wait "${PIDS[-$k]}" 2>/dev/null; done
eq "three workers drain one queue, each job once" "600|600" \
  "$(sql "SELECT count(*), count(DISTINCT r.job_id) FROM jobs j JOIN results r ON r.job_id=j.id WHERE j.queue='multi'")"
shares=0
for k in 1 2 3; do
  n=$(grep -o '"msg":"stopping: claimed [0-9]*' "$T/multi.$k.log" | grep -o '[0-9]*$')
  [ "${n:-0}" -gt 0 ] && shares=$((shares + 1))
done
eq "every worker took a share" 3 "$shares"
# --exit-when-idle looks at what this worker could still do: its own
# queues, and not pending jobs a pause holds back
"$SLUICE" enqueue -q mine '{"model":"m","input":"mine"}' >/dev/null
"$SLUICE" enqueue -q other '{"model":"m","input":"other"}' >/dev/null
timeout 30 "$SLUICE" work --base-url "$MOCK_URL" -q mine --exit-when-idle \
  2>"$T/idle1.log"
eq "--queue: exits once its own queue is done" "0|succeeded|pending" \
  "$?|$(sql "SELECT state FROM jobs WHERE queue='mine'")|$(sql "SELECT state FROM jobs WHERE queue='other'")"
"$SLUICE" pause other >/dev/null
timeout 30 "$SLUICE" work --base-url "$MOCK_URL" --exit-when-idle \
  2>"$T/idle2.log"
eq "a paused queue's jobs do not keep it running" "0|pending" \
  "$?|$(sql "SELECT state FROM jobs WHERE queue='other'")"
check "it says what waits" grep -q "wait in paused queues" "$T/idle2.log"
stop_mock
finish
