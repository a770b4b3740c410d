#!/usr/bin/env bash
# Waking behind the storage seam: an idle `sluice work` sleeps on the
# journal's wake descriptor (sl_journal_wake_fd in a uv_poll), so a job
# enqueued by another process, through the CLI or plain SQL, starts at once
# even though the fallback tick (--poll) is a minute away, and the idle
# worker burns no CPU meanwhile (no polling of the tables).
. "$(dirname "$0")/../lib/testlib.sh"

start_mock --log "$T/mock.log"
"$SLUICE" init >/dev/null
"$SLUICE" work --base-url "$MOCK_URL" --no-batch --poll 60s \
  2>"$T/worker.log" &
w=$!
PIDS+=("$w")
check "the worker starts" wait_for 10 grep -q "worker started" "$T/worker.log"
sleep 1 # past the first claim, which found nothing

cpu() { awk '{print $14 + $15}' "/proc/$w/stat"; }
c0=$(cpu)
sleep 3
c1=$(cpu)
check "an idle worker uses (almost) no CPU: $((c1 - c0)) ticks in 3 s" \
  test $((c1 - c0)) -lt 30

# The bounds below (15 s each, 30 s at most from here, about 35 s after
# the worker started) stay below the 60 s tick, with room for a loaded
# machine (an ASan worker at load 5+).
"$SLUICE" enqueue '{"model":"m","input":"cli"}' >/dev/null
check "a job enqueued by the CLI is done long before the 60 s tick" \
  wait_for 15 bash -c "[ \"\$(sqlite3 -cmd '.timeout 5000' '$SLUICE_JOURNAL' \
    \"SELECT count(*) FROM jobs WHERE state = 'succeeded'\")\" = 1 ]"
sql "INSERT INTO jobs(body) VALUES ('{\"model\":\"m\",\"input\":\"sql\"}')"
check "... and so is one inserted with plain SQL" \
  wait_for 15 bash -c "[ \"\$(sqlite3 -cmd '.timeout 5000' '$SLUICE_JOURNAL' \
    \"SELECT count(*) FROM jobs WHERE state = 'succeeded'\")\" = 2 ]"
check "the worker never names the WAL in its log" \
  bash -c "! grep -q -- '-wal' '$T/worker.log'"
kill -TERM "$w"
wait "$w"
eq "SIGTERM: the worker exits 0" 0 $?
stop_mock
eq "each job sent once" 2 "$(api_calls "$T/mock.log" | wc -l)"
finish
