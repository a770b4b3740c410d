#!/usr/bin/env bash
# Replay and control: replay --id replays single jobs; an unknown --class,
# queue, partition or id is refused with exit 2 and no audit row; resume of
# a queue that does not exist says so; cancel takes several ids; the SQL
# door replays by id too.
. "$(dirname "$0")/../lib/testlib.sh"

"$SLUICE" init >/dev/null
for i in 1 2 3 4 5; do "$SLUICE" enqueue -q mail -P t1 '{"model":"m"}' >/dev/null; done
sql "UPDATE jobs SET state = 'failed', last_class = 'server_error', finished_at = 1 WHERE id <= 4"
audit() { sql 'SELECT count(*) FROM replays'; }

"$SLUICE" replay --id 2 >"$T/out"
eq "replay --id: exit 0" 0 $?
eq "... replays that job only" "replayed 1 jobs" "$(cat "$T/out")"
eq "... it is pending again, the others still failed" "1 2 3 4" \
  "$(sql "SELECT group_concat(id, ' ') FROM jobs WHERE state = 'failed' OR id = 2")"
eq "... job 2 pending, generation 1" "pending|1" "$(sql 'SELECT state, generation FROM jobs WHERE id = 2')"
eq "... the audit row names the job" "[2]|cli|1" "$(sql 'SELECT job_ids, door, replayed FROM replays')"
"$SLUICE" replay --id 3 4 --dry-run >"$T/out"
eq "replay --id N N --dry-run counts both" "would replay 2 jobs" "$(cat "$T/out")"
"$SLUICE" replay -i 3 -i 4 >/dev/null
eq "replay -i -i: both pending" 2 "$(sql "SELECT count(*) FROM jobs WHERE id IN (3, 4) AND state = 'pending'")"
eq "... job 1 untouched" failed "$(sql 'SELECT state FROM jobs WHERE id = 1')"
sql "INSERT INTO replays (job_ids) VALUES ('[1]')"
eq "the SQL door replays by id" pending "$(sql 'SELECT state FROM jobs WHERE id = 1')"

sql "UPDATE jobs SET state = 'failed', last_class = 'server_error', finished_at = 1 WHERE id <= 4"
before=$(audit)
refused() { # name pattern args...
  local name=$1 pat=$2
  shift 2
  "$SLUICE" replay "$@" >/dev/null 2>"$T/err"
  eq "$name: exit 2" 2 $?
  check "$name: says what was wrong" grep -q "$pat" "$T/err"
}
refused "unknown --class" "not a failure class" --class server_eror
refused "unknown queue" "no job has queue 'mial'" --queue mial
refused "unknown partition" "has partition 't2'" --queue mail --partition t2
refused "unknown id" "no job 99" --id 99
refused "a bare number for --since" "bare number" --since 1796582447
eq "nothing refused wrote an audit row" "$before" "$(audit)"
eq "... or replayed a job" 4 "$(sql "SELECT count(*) FROM jobs WHERE state = 'failed'")"
"$SLUICE" replay --id 5 2>"$T/err" >/dev/null
check "replay --id of a job that is not failed says so" grep -q "job 5 is pending" "$T/err"

# resume of a queue that does not exist
"$SLUICE" resume nosuch >/dev/null 2>"$T/err"
eq "resume of a missing queue: exit 1" 1 $?
check "... says so" grep -q "no queue 'nosuch'" "$T/err"
eq "... and writes nothing" 0 "$(sql "SELECT count(*) FROM queues WHERE name = 'nosuch'")"
"$SLUICE" pause mail >/dev/null
"$SLUICE" resume mail >/dev/null
eq "resume of a real queue: exit 0" 0 $?

# cancel takes several ids
a=$("$SLUICE" enqueue '{"model":"m"}'); b=$("$SLUICE" enqueue '{"model":"m"}')
"$SLUICE" cancel "$a" "$b" >"$T/out"
eq "cancel of two ids: exit 0" 0 $?
eq "... both cancelled" 2 "$(sql "SELECT count(*) FROM jobs WHERE id IN ($a, $b) AND state = 'cancelled'")"
c=$("$SLUICE" enqueue '{"model":"m"}')
"$SLUICE" cancel "$c" 1 999 >/dev/null 2>"$T/err"
eq "cancel with a failed and a missing id: exit 1" 1 $?
eq "... the cancellable one is cancelled" cancelled "$(sql "SELECT state FROM jobs WHERE id = $c")"
check "... the others are named" bash -c "grep -q 'job 1 is failed' '$T/err' && grep -q 'no job 999' '$T/err'"
finish
