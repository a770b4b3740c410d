#!/usr/bin/env bash
# The batch route reads its backlog only when the answer may have changed
# (issue 14: at 660k deferrable jobs a read costs ~0.4 s, and a waiting
# backlog was read every tick). A worker beside a backlog below every
# threshold, with no other writer, reads it once and then not again for
# many ticks; a commit by another process makes it read again; and the
# batch still closes when --batch-max-wait falls due. Reads are counted by
# the route's debug line.
. "$SLUICE_ROOT/tests/lib/testlib.sh"
. "$SLUICE_ROOT/tests/lib/batchlib.sh"

reads() { grep -c 'batch route: backlog read' "$T/work.log"; }

start_mock --batch-phase-ms 100 --log "$T/mock.log" || { fail "mock"; finish; }
fresh_journal
enq_deferrable 3
: >"$T/work.log"
# --batch-poll 100ms: the route ticks every 100 ms.
(work --batch-max-wait 6s --log-level debug; echo "$WORK_RC" >"$T/rc") &
wpid=$!
sleep 2.5 # ~25 ticks; no other writer meanwhile
r1=$(reads)
check "quiet: read at least once ($r1)" test "$r1" -ge 1
check "quiet: not read again over ~25 ticks ($r1 reads)" test "$r1" -le 3
enq_deferrable 1 # another process commits
sleep 1.5
r2=$(reads)
check "a foreign enqueue: read again ($r1 -> $r2)" test "$r2" -gt "$r1"
check "after it: quiet again ($r2 reads)" test "$r2" -le $((r1 + 3))
wait "$wpid"
eq "worker exits 0" 0 "$(cat "$T/rc")"
eq "max wait: the 4 jobs went in one batch and succeeded" "4|1" \
  "$(sql "SELECT count(*), count(DISTINCT batch_id) FROM jobs WHERE
    state = 'succeeded'")"
# The batch closed at max wait (6 s after the first enqueue), not at a
# 30 s safety re-read: packed within 6 + 3 s of the oldest job.
eq "max wait: packed on time" 1 \
  "$(sql "SELECT (SELECT min(created_at) FROM batches) -
    (SELECT min(created_at) FROM jobs) BETWEEN 5000 AND 9000")"
check "max wait: reads stayed few ($(reads))" test "$(reads)" -le $((r2 + 6))
check_exactly_once backlog
stop_mock
finish
