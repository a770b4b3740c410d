#!/usr/bin/env bash
# A full disk: the journal lives on a small tmpfs that fills up while
# requests are in flight, so the worker's group commit fails with
# SQLITE_FULL. The worker keeps running and says the disk is full; on
# SIGTERM (disk still full) it writes the outcomes it could not record to
# its spill file, in space reserved at startup. The next start ingests the
# spill file before claiming: every job is final once and no request is
# sent twice. Then: the disk comes back while the worker runs (it records
# in place and clears its spill file); kill -9 on a full disk (the outcomes
# were spilled at the first refused commit); and a live peer that ingests a
# dead worker's spill file before its rescue would resend those jobs.
. "$(dirname "$0")/../lib/testlib.sh"

MNT="$T/mnt"
mkdir -p "$MNT"
if ! mount -t tmpfs -o size=24m tmpfs "$MNT" 2>"$T/mount.err"; then
  echo "SKIP: full_disk: cannot mount a tmpfs: $(cat "$T/mount.err")"
  exit 0
fi
trap 'cleanup_mnt; cleanup' EXIT
cleanup_mnt() {
  local p
  for p in "${PIDS[@]:-}"; do
    [ -n "$p" ] && kill -9 "$p" 2>/dev/null
  done
  wait 2>/dev/null
  umount "$MNT" 2>/dev/null || umount -l "$MNT"
}
export SLUICE_JOURNAL="$MNT/journal.db"
SPILL="$SLUICE_JOURNAL.spill"
# Storm control's route starts with a window of 4 requests in flight (slow
# start, worker/storm/route.c), so 4 jobs are all in flight at once; before the
# disk fills, the test waits until the mock holds every request.
N=4
# (at least: the batch route's startup listing may be in flight too)
in_flight_is() {
  [ "$(curl -s "http://127.0.0.1:$MOCK_PORT/_mock/stats" |
    grep -o '"in_flight":[0-9]*' | cut -d: -f2)" -ge "$1" ] 2>/dev/null
}

# Each reply takes 3 s, so all jobs are in flight while the disk fills.
KEY=0123456789abcdef0123456789abcdefspillkey
start_mock --latency-ms 3000 --require-key "$KEY" --log "$T/mock.log"
"$SLUICE" init >/dev/null
for i in $(seq 1 "$N"); do printf '{"model":"m","input":"disk %d"}\n' "$i"; done |
  "$SLUICE" enqueue >/dev/null
wargs=(--base-url "$MOCK_URL" --concurrency 32 --lease 20s --poll 200ms
  --drain-timeout 5s)
OPENAI_API_KEY=$KEY "$SLUICE" work "${wargs[@]}" 2>"$T/worker1.log" &
w=$!
PIDS+=("$w")
running_is() { [ "$(sql "SELECT count(*) FROM jobs WHERE state='running'")" = "$1" ]; }
succeeded_is() { [ "$(sql "SELECT count(*) FROM jobs WHERE state='succeeded'")" = "$1" ]; }
wait_for 10 running_is "$N" || fail "all jobs claimed" "$(sql "SELECT state, count(*) FROM jobs GROUP BY 1")"
wait_for 10 in_flight_is "$N" || fail "all requests sent before the disk fills"
ls "$SPILL"/*.spill >/dev/null 2>&1
check "the worker reserved its spill file at startup" [ $? -eq 0 ]
# fill the disk: dd stops at ENOSPC
dd if=/dev/zero of="$MNT/filler" bs=64k 2>/dev/null
check "the disk is full" [ "$(df --output=avail "$MNT" | tail -1 | tr -d ' ')" -lt 64 ]

# The replies arrive; their commits fail. The worker says so and stays up.
wait_for 15 grep -q "the journal's disk is full" "$T/worker1.log"
check "the worker says the disk is full" grep -q "the journal's disk is full" "$T/worker1.log"
sleep 1
check "the worker keeps running on a full disk" kill -0 "$w"
eq "nothing could be recorded" 0 "$(sql "SELECT count(*) FROM results")"

kill -TERM "$w"
for i in $(seq 1 200); do kill -0 "$w" 2>/dev/null || break; sleep 0.05; done
wait "$w"
eq "SIGTERM on a full disk: exit 0" 0 $?
spills=$(ls "$SPILL"/*.spill 2>/dev/null | wc -l)
eq "one spill file left behind" 1 "$spills"
eq "the spill file holds every reply" "$N" \
  "$(cat "$SPILL"/*.spill 2>/dev/null | grep -ao 'This is a mock reply' | wc -l)"
check "the worker logged the spill" \
  grep -q "$N outcomes not recorded in the journal are in spill file" "$T/worker1.log"
if grep -rqa "$KEY" "$SPILL" "$T/worker1.log"; then
  fail "the key is not in the spill file or the log"
else
  pass "the key is not in the spill file or the log"
fi

# free the space, restart: the spill file is ingested before any claim
rm -f "$MNT/filler"
OPENAI_API_KEY=$KEY timeout 60 "$SLUICE" work "${wargs[@]}" --exit-when-idle 2>"$T/worker2.log"
eq "restarted worker exits 0" 0 $?
stop_mock
check "the restart ingested the spill file" grep -q "ingested $N outcomes" "$T/worker2.log"
eq "every job succeeded once" "$N|$N|$N" \
  "$(sql "SELECT count(*), (SELECT count(*) FROM results),
          (SELECT count(DISTINCT job_id) FROM results) FROM jobs WHERE state='succeeded'")"
eq "one attempt per job" "$N" "$(sql "SELECT count(*) FROM attempts")"
eq "no job was sent twice" "$N" "$(api_calls "$T/mock.log" | wc -l)"
eq "integrity_check" ok "$(sql 'PRAGMA integrity_check')"
eq "the spill file is gone" 0 "$(ls "$SPILL"/*.spill 2>/dev/null | wc -l)"

# --- The disk comes back while the worker runs: it records everything
# itself, clears its spill file, and nothing is sent twice.
# Also: kill -9 on a full disk. The outcomes were spilled when the first
# commit failed, so the next start ingests them.
spill_replies() { cat "$SPILL"/*.spill 2>/dev/null | grep -ao 'This is a mock reply' | wc -l; }
replies_are() { [ "$(spill_replies)" = "$1" ]; }
for how in recover kill9; do
  reset_journal
  start_mock --latency-ms 2000 --log "$T/mock.$how.log"
  for i in $(seq 1 "$N"); do printf '{"model":"m","input":"%s %d"}\n' "$how" "$i"; done |
    "$SLUICE" enqueue >/dev/null
  wargs=(--base-url "$MOCK_URL" --concurrency 32 --lease 20s --poll 200ms)
  "$SLUICE" work "${wargs[@]}" 2>"$T/$how.log" &
  w=$!
  PIDS+=("$w")
  wait_for 10 running_is "$N" || fail "$how: all jobs claimed"
  wait_for 10 in_flight_is "$N" || fail "$how: all requests sent"
  dd if=/dev/zero of="$MNT/filler" bs=64k 2>/dev/null
  wait_for 15 replies_are "$N"
  eq "$how: outcomes spilled as soon as the journal refused them" "$N" "$(spill_replies)"
  check "$how: the worker is still up" kill -0 "$w"
  if [ "$how" = recover ]; then
    rm -f "$MNT/filler"
    wait_for 20 succeeded_is "$N"
    eq "recover: every job recorded without a restart" "$N" \
      "$(sql "SELECT count(DISTINCT job_id) FROM results")"
    check "recover: the worker said the journal takes outcomes again" \
      grep -q "takes outcomes again" "$T/$how.log"
    eq "recover: the spill file is cleared" 0 "$(spill_replies)"
    kill -TERM "$w"
    wait "$w"
    eq "recover: exit 0" 0 $?
  else
    kill -9 "$w"
    wait "$w" 2>/dev/null
    rm -f "$MNT/filler"
    timeout 60 "$SLUICE" work "${wargs[@]}" --exit-when-idle 2>"$T/$how.2.log"
    eq "kill9: restarted worker exits 0" 0 $?
    check "kill9: the restart ingested the spill file" \
      grep -q "ingested $N outcomes" "$T/$how.2.log"
    eq "kill9: every job succeeded once" "$N|$N" \
      "$(sql "SELECT count(*), (SELECT count(DISTINCT job_id) FROM results) FROM jobs WHERE state='succeeded'")"
  fi
  stop_mock
  eq "$how: no job was sent twice" "$N" "$(api_calls "$T/mock.$how.log" | wc -l)"
  eq "$how: no spill file left" 0 "$(ls "$SPILL"/*.spill 2>/dev/null | wc -l)"
  eq "$how: integrity_check" ok "$(sql 'PRAGMA integrity_check')"
done

# --- A peer stays up: worker A holds every job when the disk fills, spills
# and dies (kill -9); worker B, idle beside it, ingests A's spill file on
# its next tick, before its rescue would send A's jobs again.
reset_journal
start_mock --latency-ms 2000 --log "$T/mock.peer.log"
for i in $(seq 1 "$N"); do printf '{"model":"m","input":"peer %d"}\n' "$i"; done |
  "$SLUICE" enqueue >/dev/null
wargs=(--base-url "$MOCK_URL" --concurrency 32 --lease 4s --poll 200ms)
"$SLUICE" work "${wargs[@]}" 2>"$T/peerA.log" &
a=$!
PIDS+=("$a")
wait_for 10 running_is "$N" || fail "peer: A claimed every job"
"$SLUICE" work "${wargs[@]}" 2>"$T/peerB.log" &
b=$!
PIDS+=("$b")
wait_for 10 grep -q "worker started" "$T/peerB.log"
wait_for 10 in_flight_is "$N" || fail "peer: all requests sent"
dd if=/dev/zero of="$MNT/filler" bs=64k 2>/dev/null
wait_for 15 replies_are "$N"
eq "peer: A spilled every outcome" "$N" "$(spill_replies)"
kill -9 "$a"
wait "$a" 2>/dev/null
rm -f "$MNT/filler"
wait_for 20 succeeded_is "$N"
eq "peer: B recorded A's outcomes without a restart" "$N|$N" \
  "$(sql "SELECT count(*), (SELECT count(DISTINCT job_id) FROM results) FROM jobs WHERE state='succeeded'")"
check "peer: B says it ingested A's spill file" grep -q "ingested $N outcomes" "$T/peerB.log"
kill -TERM "$b"
wait "$b"
eq "peer: B exits 0" 0 $?
stop_mock
eq "peer: no job was sent twice" "$N" "$(api_calls "$T/mock.peer.log" | wc -l)"
eq "peer: no spill file left" 0 "$(ls "$SPILL"/*.spill 2>/dev/null | wc -l)"
eq "peer: integrity_check" ok "$(sql 'PRAGMA integrity_check')"

if [ "$FAILS" -gt 0 ]; then
  echo "--- worker logs"
  tail -n 30 "$T/worker1.log" "$T/worker2.log" "$T"/recover.log "$T"/kill9*.log \
    "$T"/peer*.log
fi
finish
