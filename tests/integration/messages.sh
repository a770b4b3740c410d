#!/usr/bin/env bash
# Messages: worker log lines about an attempt carry class, http_status and
# request_id as JSON fields; the closing summary counts the batch route's
# successes; `sluice help CMD`; a usage error says what was wrong.
. "$(dirname "$0")/../lib/testlib.sh"

"$SLUICE" init >/dev/null
start_mock --faults "500#1" --batch-phase-ms 50
"$SLUICE" enqueue -m 3 '{"model":"m","input":"online"}' >/dev/null
"$SLUICE" enqueue -u deferrable '{"model":"m","input":"b1"}' >/dev/null
"$SLUICE" enqueue -u deferrable '{"model":"m","input":"b2"}' >/dev/null
timeout 60 "$SLUICE" work --base-url "$MOCK_URL" --exit-when-idle --poll 100ms \
  --backoff-base 10ms --backoff-cap 50ms --log-level debug \
  --batch-max-wait 100ms --batch-poll 100ms 2>"$T/w.log"
eq "worker exits 0" 0 $?
eq "every job succeeded" 3 "$(sql "SELECT count(*) FROM jobs WHERE state = 'succeeded'")"
grep '"msg":"server_error' "$T/w.log" | head -1 >"$T/retry.json"
check "the retry was logged" test -s "$T/retry.json"
f() { sqlite3 :memory: "SELECT json_extract(readfile('$T/$1'), '\$.$2')"; }
eq "retry line: class is a field" server_error "$(f retry.json class)"
eq "retry line: http_status is a field" 500 "$(f retry.json http_status)"
check "retry line: request_id is a field" test -n "$(f retry.json request_id)"
grep '"msg":"succeeded' "$T/w.log" | head -1 >"$T/ok.json"
eq "success line: class null, status 200" "|200" "$(f ok.json class)|$(f ok.json http_status)"
eq "success line: request_id as recorded" \
  "$(sql "SELECT request_id FROM results r JOIN jobs j ON j.id = r.job_id WHERE j.urgency = 'urgent'")" \
  "$(f ok.json request_id)"
check "every log line is one JSON object" \
  bash -c "while IFS= read -r l; do printf '%s' \"\$l\" | python3 -c 'import json,sys; json.load(sys.stdin)' || exit 1; done <'$T/w.log'"
grep '"msg":"stopping' "$T/w.log" >"$T/stop.json"
check "closing summary counts batch successes: succeeded 3" \
  grep -q 'succeeded 3, ' "$T/stop.json"
check "... and names the batch route's share" grep -q '(batch route: succeeded 2, ' "$T/stop.json"
stop_mock

# sluice help CMD
for cmd in enqueue wait jobs status work; do
  "$SLUICE" help $cmd >"$T/h" 2>&1
  eq "sluice help $cmd: exit 0" 0 $?
  check "sluice help $cmd prints its usage" grep -q "^Usage: sluice $cmd" "$T/h"
done
"$SLUICE" help nosuch >/dev/null 2>"$T/err"
eq "sluice help of an unknown command: exit 2" 2 $?
check "... says so" grep -q "no command 'nosuch'" "$T/err"

# usage errors say what was wrong (on the first line)
u() { # expected-pattern args...
  local pat=$1
  shift
  "$SLUICE" "$@" >/dev/null 2>"$T/err"
  local rc=$?
  if [ $rc -eq 2 ] && head -1 "$T/err" | grep -q -- "$pat"; then
    pass "usage error names the problem: sluice $*"
  else
    fail "usage error names the problem: sluice $*" "rc=$rc: $(head -1 "$T/err")"
  fi
}
u "unrecognized option '--bogus'" status --bogus
u "requires an argument" enqueue --priority
u "name the queue" pause
u "one queue at a time" resume a b
u "give the ids of the jobs to cancel" cancel
u "unexpected argument 'x'" init x
u "unexpected argument 'x'" rescue x
u "unexpected argument 'x'" prune --older-than 1d x
u "name the queue" budget
u "give one job id" show
u "is not a job id" show abc
u "unexpected argument 'x'" status x
u "give the ids" wait
u "one BODY at most" enqueue a b
finish
