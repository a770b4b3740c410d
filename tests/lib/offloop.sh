# offloop.sh: the batch route's long journal ops (backlog read, pack, JSONL
# write, ingest, end) run on a pool thread, so the worker's loop keeps
# serving online jobs meanwhile (issues 14 and 15). Shared by
# batch_off_loop.sh (SQLite) and pg_batch_off_loop.sh (PostgreSQL); sourced
# after testlib.sh and batchlib.sh, with sql and fresh_journal set for the
# backend and the mock started. The worker logs the longest time its loop
# was held ("event loop: held for at most N ms", the loop-lag probe) and
# how long each route op took.

# enq_many N: N deferrable jobs in one enqueue (one transaction).
enq_many() {
  awk -v n="$1" 'BEGIN { for (i = 1; i <= n; i++)
    printf "{\"model\":\"gpt-4o-mini\",\"input\":\"batch job %d\"}\n", i }' |
    "$SLUICE" enqueue -u deferrable >/dev/null
}

# online_feed: an urgent job every ~50 ms while $T/feeding exists
# (bounded).
online_feed() {
  local i
  for i in $(seq 1 2400); do
    [ -e "$T/feeding" ] || break
    # three a call: under ASan a CLI process takes longer to start than
    # the 50 ms between calls, and the ingest lasts about a second
    printf '%s\n' '{"model":"gpt-4o-mini","input":"online"}' \
      '{"model":"gpt-4o-mini","input":"online"}' \
      '{"model":"gpt-4o-mini","input":"online"}' |
      "$SLUICE" enqueue >/dev/null 2>&1
    sleep 0.05
  done
}

logged_ms() { # PATTERN-BEFORE-NUMBER LOG: the largest such number, or 0
  local v
  v=$(sed -n "s/.*$1 \([0-9][0-9]*\) ms.*/\1/p" "$2" | sort -n | tail -1)
  echo "${v:-0}"
}

batch_done() {
  test "$(sql "SELECT count(*) FROM batches WHERE state = 'done'")" = 1
}

# offloop_flow N: N deferrable jobs packed, written, sent and ingested
# while online jobs flow: the loop is never held for long, and online
# results are committed while the batch's lines are.
offloop_flow() {
  local n=$1 wpid fpid held pk ing inside
  fresh_journal
  enq_many "$n"
  : >"$T/work.log"
  touch "$T/feeding"
  online_feed &
  fpid=$!
  PIDS+=("$fpid")
  # A loaded machine (ASan) ingests a few hundred lines a second: more
  # time than work()'s 60 s.
  (timeout 240 "$SLUICE" work --base-url "$MOCK_URL" --batch-max-wait 300ms \
     --batch-poll 100ms --exit-when-idle --log-level debug 2>>"$T/work.log"
   echo "$?" >"$T/rc") &
  wpid=$!
  wait_for 240 batch_done
  rm -f "$T/feeding"
  wait "$fpid"
  wait "$wpid"
  eq "flow: worker exits 0" 0 "$(cat "$T/rc")"
  held=$(logged_ms "event loop: held for at most" "$T/work.log")
  pk=$(logged_ms "packed .* in" "$T/work.log")
  ing=$(logged_ms "output file: .*ingested in" "$T/work.log")
  echo "  pack $pk ms, ingest $ing ms; loop held for at most $held ms"
  check "flow: the worker says how long its loop was held" \
    grep -q "event loop: held for at most" "$T/work.log"
  check "flow: the ingest was long enough to tell ($ing ms >= 500)" \
    test "$ing" -ge 500
  check "flow: the loop was never held for half the ingest ($held ms)" \
    test $((held * 2)) -lt "$ing"
  check "flow: nor for a second ($held ms)" test "$held" -lt 1000
  check "flow: no stall logged (a warning: a second or more)" \
    test "$(grep -c '"level":"warn".*the event loop was held for' "$T/work.log")" = 0
  inside=$(sql "SELECT count(*) FROM results WHERE route = 'online' AND
    created_at > (SELECT min(created_at) FROM results WHERE route = 'batch')
    AND created_at < (SELECT max(created_at) FROM results
                      WHERE route = 'batch')")
  check "flow: online results committed while the batch's were ($inside)" \
    test "$inside" -ge 1
  [ "$inside" -ge 1 ] || # what the results' times were, for the log
    sql "SELECT route, count(*), min(created_at), max(created_at),
      count(DISTINCT created_at) FROM results GROUP BY route"
  # An online job enqueued as the worker found itself idle: the next run.
  work
  eq "flow: every deferrable job went by the one batch" "$n|1" \
    "$(sql "SELECT count(*), count(DISTINCT batch_id) FROM jobs
      WHERE urgency = 'deferrable' AND state = 'succeeded'")"
  check_exactly_once flow
  check "flow: no sanitizer report or crash in the log" \
    bash -c "! grep -q 'AddressSanitizer\|runtime error' '$T/work.log'"
}

# offloop_sigterm N: SIGTERM while the pack is out on the pool thread: the
# worker waits for it, exits 0, and the next worker sends the batch at
# once (the batch carries this worker's id, so its lease went at exit);
# every job ends once, in one batch.
offloop_sigterm() {
  local n=$1 wpid rc stop_at pack_at
  fresh_journal
  enq_many "$n"
  : >"$T/work2.log"
  timeout 200 "$SLUICE" work --base-url "$MOCK_URL" --batch-max-wait 300ms \
    --batch-poll 100ms --log-level debug 2>>"$T/work2.log" &
  wpid=$!
  wait_for 60 grep -q "packing off the loop (backlog first)" "$T/work2.log"
  kill -TERM "$wpid"
  wait "$wpid"
  rc=$?
  eq "sigterm: worker exits 0" 0 "$rc"
  stop_at=$(grep -n '"stopping:' "$T/work2.log" | head -1 | cut -d: -f1)
  pack_at=$(grep -n 'packed [0-9]* ' "$T/work2.log" | head -1 | cut -d: -f1)
  check "sigterm: the pack out at the signal ended after it (lines $stop_at < $pack_at)" \
    test "${stop_at:-0}" -gt 0 -a "${pack_at:-0}" -gt "${stop_at:-0}"
  eq "sigterm: its jobs are in one batch or still pending" "$n|1" \
    "$(sql "SELECT count(*), count(DISTINCT batch_id) FROM jobs
      WHERE state IN ('batched', 'pending')")"
  : >"$T/work3.log"
  local t0=$SECONDS
  timeout 200 "$SLUICE" work --base-url "$MOCK_URL" --batch-max-wait 300ms \
    --batch-poll 100ms --exit-when-idle 2>>"$T/work3.log"
  rc=$?
  eq "sigterm: the next worker exits 0" 0 "$rc"
  check "sigterm: ... without waiting out a lease ($((SECONDS - t0)) s)" \
    test $((SECONDS - t0)) -lt 190
  eq "sigterm: one batch, no other" "1" \
    "$(sql "SELECT count(*) FROM batches")"
  eq "sigterm: every job succeeded in it" "$n|1" \
    "$(sql "SELECT count(*), count(DISTINCT batch_id) FROM jobs
      WHERE state = 'succeeded'")"
  check_exactly_once sigterm
}
