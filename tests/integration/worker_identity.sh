#!/usr/bin/env bash
# Worker identity (DESIGN.md "Worker identity"): a worker that starts on a
# host where a recorded predecessor's process is gone takes back that
# predecessor's leases and open batches at once, not after --lease (5m by
# default, what systemd's Restart= sees after a crash). Live workers and
# workers on other hosts are left alone. A lease the heartbeat cannot keep
# is refused at startup.
. "$(dirname "$0")/../lib/testlib.sh"
. "$SLUICE_ROOT/tests/lib/batchlib.sh"

# --- kill -9 a worker holding leased online jobs and an open batch ---
# hang#1-5: the first five online requests never answer (the worker holds
# their leases); batch_stuck: its batch stays open until the rule goes.
start_mock --faults "hang#1-5,batch_stuck" --batch-phase-ms 100 \
  --log "$T/mock.log" || { fail "mock"; finish; }
"$SLUICE" init >/dev/null
for i in 1 2 3 4 5; do printf '{"model":"m","input":"online %d"}\n' "$i"; done |
  "$SLUICE" enqueue >/dev/null
enq_deferrable 10
wargs=(--base-url "$MOCK_URL" --poll 100ms --batch-max-wait 300ms
  --batch-poll 100ms)
"$SLUICE" work "${wargs[@]}" 2>"$T/a.log" &
a=$!
PIDS+=("$a")
held() {
  [ "$(sql "SELECT (SELECT count(*) FROM jobs WHERE state = 'running')
    || '|' || (SELECT count(*) FROM batches WHERE state = 'submitted')")" \
    = "5|1" ]
}
wait_for 30 held
eq "the first worker holds 5 leased jobs and a submitted batch" "5|1" \
  "$(sql "SELECT (SELECT count(*) FROM jobs WHERE state = 'running')
    || '|' || (SELECT count(*) FROM batches WHERE state = 'submitted')")"
eq "it is recorded: host, pid, and it holds what it claimed" \
  "$(hostname)|$a|5|1" \
  "$(sql "SELECT host, pid, (SELECT count(*) FROM jobs WHERE worker_id = w.id
    AND state = 'running'), (SELECT count(*) FROM batches
    WHERE worker_id = w.id) FROM workers w")"
# The requests reach the mock and hang there: four of the five, the
# route's first window (worker/storm/route.c, initial 4) until rate-limit
# headers come back, which hung requests never bring. in_flight counts
# them from their arrival; a fixed sleep could kill before they were sent.
hanging() { [ "$(mock_stat in_flight)" -ge 4 ] 2>/dev/null; }
wait_for 20 hanging
kill -9 "$a"
wait "$a" 2>/dev/null
put_faults "" # the batch may finish now; online requests answer

# The default lease is 5 minutes: only a take-over finishes within 60 s.
timeout 60 "$SLUICE" work "${wargs[@]}" --exit-when-idle 2>"$T/b.log"
eq "the restarted worker (default 5m lease) finishes within 60 s" 0 $?
check "it says it took the dead worker's jobs and batch back" \
  grep -q "pid $a on this host) is gone: took back 5 leased jobs and 1 open" \
  "$T/b.log"
eq "every job succeeded" 15 \
  "$(sql "SELECT count(*) FROM jobs WHERE state = 'succeeded'")"
check_exactly_once "take-over"
eq "the five lost attempts are recorded by rescue" 5 \
  "$(sql "SELECT count(*) FROM attempts WHERE route = 'rescue'")"
eq "one local batch, done, one remote batch" "1|done|1" \
  "$(sql "SELECT count(*), group_concat(state) FROM batches")|$(remote_count 1)"
eq "the dead worker's row is gone, and the clean one removed its own" 0 \
  "$(sql "SELECT count(*) FROM workers")"
stop_mock

# --- which recorded workers are gone ---
start_mock --log "$T/mock2.log" || { fail "mock"; finish; }
fresh_journal
host=$(hostname)
boot=$(cat /proc/sys/kernel/random/boot_id)
sleep 300 &
live=$!
PIDS+=("$live")
start=$(awk '{print $22}' "/proc/$live/stat")
true &
dead=$!
wait "$dead"
now=$(($(date +%s) * 1000))
ns=$(readlink /proc/self/ns/pid)
# id|host|boot_id|pid|proc_start|pid_ns: each fake predecessor
rows=("101|$host|$boot|$live|$start|$ns"            # alive: kept
  "102|$host|$boot|$live|$((start + 1))|$ns"          # pid reused: gone
  "103|$host|$boot|$dead|0|$ns"                       # pid gone: gone
  "104|$host|00000000-0000-0000-0000-000000000000|$live|$start|$ns" # reboot
  "105|other-host.invalid|$boot|$dead|0|$ns"          # another host: kept
  "106|$host|$boot|$dead|0|pid:[1]")  # another pid namespace: kept
for r in "${rows[@]}"; do
  IFS='|' read -r id h b p s n <<<"$r"
  "$SLUICE" enqueue "{\"model\":\"m\",\"input\":\"held by $id\"}" >/dev/null
  sql "INSERT INTO workers (id, host, boot_id, pid, proc_start, pid_ns,
         lease_ms, started_at, heartbeat_at) VALUES ($id, '$h', '$b', $p, $s,
         '$n', 300000, $now, $now);
       UPDATE jobs SET state = 'running', attempts = 1, lease_token = $id,
         lease_expires = $now + 3600000, worker_id = $id
       WHERE id = (SELECT max(id) FROM jobs);"
done
"$SLUICE" work --base-url "$MOCK_URL" --poll 100ms 2>"$T/c.log" &
c=$!
PIDS+=("$c")
three() {
  [ "$(sql "SELECT count(*) FROM jobs WHERE state = 'succeeded'")" = 3 ]
}
wait_for 30 three
eq "jobs of gone workers (pid reused, pid gone, rebooted) are done" \
  "102,103,104" \
  "$(sql "SELECT group_concat(w, ',') FROM (SELECT CAST(substr(
    json_extract(b.body, '$.input'), 9) AS INTEGER) AS w FROM jobs
    JOIN job_bodies b ON b.job_id = jobs.id
    WHERE state = 'succeeded' ORDER BY w)")"
eq "a live worker, another host's, another pid namespace's keep leases" \
  "101,105,106" \
  "$(sql "SELECT group_concat(worker_id, ',') FROM (SELECT worker_id
    FROM jobs WHERE state = 'running' ORDER BY worker_id)")"
eq "their rows stay; the gone ones' rows are removed" "101,105,106" \
  "$(sql "SELECT group_concat(id, ',') FROM (SELECT id FROM workers
    WHERE id < 1000 AND id <> (SELECT max(id) FROM workers WHERE pid = $c)
    ORDER BY id)")"
eq "the running worker is recorded with its own pid" 1 \
  "$(sql "SELECT count(*) FROM workers WHERE pid = $c AND host = '$host'")"
kill -TERM "$c"
wait "$c"
eq "the worker drains and exits 0" 0 $?
kill "$live" 2>/dev/null
stop_mock

# --- the worker row is heartbeated every third of the lease ---
"$SLUICE" work --base-url http://127.0.0.1:9/v1 --lease 1500ms --poll 100ms \
  --no-batch 2>"$T/d.log" &
d=$!
PIDS+=("$d")
beat() {
  [ "$(sql "SELECT count(*) FROM workers WHERE pid = $d
    AND heartbeat_at >= started_at + 900")" = 1 ]
}
wait_for 20 beat
check "a live worker's heartbeat_at moves" beat
kill -TERM "$d"
wait "$d"
eq "a clean stop removes the worker's row" 0 \
  "$(sql "SELECT count(*) FROM workers WHERE pid = $d")"

# --- a lease the heartbeat cannot keep is refused ---
"$SLUICE" work --journal "$T/new.db" --lease 200ms 2>"$T/err"
eq "--lease 200ms is a usage error" 2 $?
check "it says why and what to use" grep -q \
  "lease 200 ms is shorter than the heartbeat can keep.*use --lease 4000 ms" \
  "$T/err"
check "and creates no journal" test ! -e "$T/new.db"
"$SLUICE" work --journal "$T/new.db" --lease 1s --poll 500ms 2>"$T/err"
eq "--lease 1s with --poll 500ms (two ticks) is refused too" 2 $?
finish
