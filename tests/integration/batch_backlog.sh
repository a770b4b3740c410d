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
reads_over() { [ "$(reads)" -gt "$1" ]; }

start_mock --batch-phase-ms 100 --log "$T/mock.log" || { fail "mock"; finish; }
fresh_journal
enq_deferrable 3
: >"$T/work.log"
# --batch-poll 100ms: the route ticks every 100 ms. --batch-max-wait 10s:
# the quiet windows below (from the first read: 2.5 s, a foreign commit,
# its read, 1.5 s) end well before the batch closes, even when the worker
# is slow to start (ASan on a loaded machine).
(work --batch-max-wait 10s --log-level debug; echo "$WORK_RC" >"$T/rc") &
wpid=$!
# Counted from the first read, not from the start: a worker that took
# longer than the window to start read nothing in it, and a fixed sleep
# from the start failed "read at least once".
check "quiet: read at least once" wait_for 30 reads_over 0
sleep 2.5 # ~25 ticks; no other writer meanwhile
r1=$(reads)
check "quiet: not read again over ~25 ticks ($r1 reads)" test "$r1" -le 3
enq_deferrable 1 # another process commits
# The worker sees the commit at one of its next ticks: waited for, not
# slept for (a tick on a loaded machine may come late).
check "a foreign enqueue: read again (after $r1)" wait_for 20 reads_over "$r1"
sleep 1.5
r2=$(reads)
check "after it: quiet again ($r2 reads)" test "$r2" -le $((r1 + 3))
wait "$wpid"
eq "worker exits 0" 0 "$(cat "$T/rc")"
eq "max wait: the 4 jobs went in one batch and succeeded" "4|1" \
  "$(sql "SELECT count(*), count(DISTINCT batch_id) FROM jobs WHERE
    state = 'succeeded'")"
# The batch closed at max wait (10 s after the first enqueue), not at a
# 30 s safety re-read (due 30 s after the last read, the foreign commit's,
# so 33 s or more): packed within 10 + 10 s of the oldest job, room for a
# loaded machine.
eq "max wait: packed on time" 1 \
  "$(sql "SELECT (SELECT min(created_at) FROM batches) -
    (SELECT min(created_at) FROM jobs) BETWEEN 9000 AND 20000")"
check "max wait: reads stayed few ($(reads))" test "$(reads)" -le $((r2 + 6))
check_exactly_once backlog
stop_mock
finish
