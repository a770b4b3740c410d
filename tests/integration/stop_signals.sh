#!/usr/bin/env bash
# A stopping worker survives signals at every instant of its shutdown:
# timeout(1), supervisors and a terminal's ^C signal the whole process group
# right after (or with) the process itself, so a second SIGTERM can land
# while the worker closes its own signal handles. Each round floods one
# worker with SIGTERM until it is gone: it must drain, exit 0 and say
# "second signal" at most once, and no job may be lost or doubled.
. "$(dirname "$0")/../lib/testlib.sh"

FLOOD="$SLUICE_BUILD/tests/helpers/sigflood"
ROUNDS=${STOP_SIGNALS_ROUNDS:-6}

start_mock --latency-ms 3000 || { fail "mock starts"; finish; }
"$SLUICE" init >/dev/null
for r in $(seq 1 "$ROUNDS"); do
  # Even rounds stop idle; odd ones with requests in flight (the mock
  # answers after 3 s, a window a loaded machine's polling cannot miss), so
  # the flood also lands during the drain.
  if [ $((r % 2)) = 1 ]; then
    for i in 1 2 3 4; do
      printf '{"model":"gpt-4o-mini","input":"round %d job %d"}\n' "$r" "$i"
    done | "$SLUICE" enqueue >/dev/null
  fi
  : >"$T/w$r.log"
  timeout 60 "$SLUICE" work --base-url "$MOCK_URL" --poll 100ms \
    2>"$T/w$r.log" &
  w=$!
  PIDS+=("$w")
  started() { grep -q "worker started" "$T/w$r.log"; }
  wait_for 20 started || fail "round $r: the worker starts"
  if [ $((r % 2)) = 1 ]; then
    inflight() { [ "$(sql "SELECT count(*) FROM jobs WHERE state = 'running'")" -gt 0 ]; }
    wait_for 20 inflight || fail "round $r: requests in flight"
  fi
  "$FLOOD" "$w" 20
  frc=$?
  wait "$w"
  rc=$?
  eq "round $r: the worker is gone within the flood's bound" 0 "$frc"
  eq "round $r: the worker exits 0 under a flood of SIGTERM" 0 "$rc"
  eq "round $r: \"second signal\" said at most once" 1 \
    "$(( $(grep -c 'second signal' "$T/w$r.log") <= 1 ))"
  [ "$rc" = 0 ] || tail -n 5 "$T/w$r.log"
done
# Aborted requests went back to pending; a last worker finishes them once.
timeout 60 "$SLUICE" work --base-url "$MOCK_URL" --poll 100ms \
  --exit-when-idle 2>"$T/last.log"
eq "a last worker exits 0" 0 $?
n=$(( (ROUNDS + 1) / 2 * 4 ))
eq "every job succeeded" "$n" \
  "$(sql "SELECT count(*) FROM jobs WHERE state = 'succeeded'")"
eq "one result per job" "$n" "$(sql "SELECT count(DISTINCT job_id) FROM results")"
eq "no job with two results" 0 \
  "$(sql "SELECT count(*) FROM (SELECT job_id FROM results GROUP BY job_id HAVING count(*) > 1)")"
stop_mock
finish
