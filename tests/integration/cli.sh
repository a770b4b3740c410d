#!/usr/bin/env bash
# The sluice CLI: help texts, exit codes, enqueue (flags, JSONL, bad input),
# status, show, cancel, replay, pause/resume, journal path resolution.
. "$(dirname "$0")/../lib/testlib.sh"

"$SLUICE" --help >"$T/help" 2>&1
eq "sluice --help exits 0" 0 $?
check "sluice --help lists every command" \
  grep -q "enqueue" "$T/help"
for cmd in init enqueue work status show jobs wait cancel replay pause resume rescue prune budget; do
  "$SLUICE" $cmd --help >"$T/h.$cmd" 2>&1
  rc=$?
  if [ $rc -eq 0 ] && grep -q "^Usage: sluice $cmd" "$T/h.$cmd"; then
    pass "sluice $cmd --help"
  else
    fail "sluice $cmd --help" "rc=$rc"
  fi
  grep -q "  $cmd " "$T/help" || fail "top-level help mentions $cmd"
done
"$SLUICE" frobnicate >/dev/null 2>&1
eq "unknown command exits 2" 2 $?
"$SLUICE" enqueue --priority=-3 '{"model":"m"}' >/dev/null 2>&1
eq "bad flag value exits 2" 2 $?

# Journal path: --journal, else $SLUICE_JOURNAL, else ./sluice.db
"$SLUICE" init >/dev/null
check "init uses \$SLUICE_JOURNAL" test -f "$SLUICE_JOURNAL"
eq "journal file mode is 0600" 600 "$(stat -c %a "$SLUICE_JOURNAL")"
(cd "$T" && env -u SLUICE_JOURNAL "$SLUICE" init >/dev/null)
check "init defaults to ./sluice.db" test -f "$T/sluice.db"
"$SLUICE" init --journal "$T/other.db" >/dev/null
check "--journal wins" test -f "$T/other.db"
"$SLUICE" status --journal "$T/missing.db" >/dev/null 2>"$T/err"
eq "status on a missing journal exits 3" 3 $?
check "status on a missing journal says how to create it" \
  grep -q "sluice init" "$T/err"

# One job from flags
id=$("$SLUICE" enqueue -q mail -u deferrable -e /v1/chat/completions -p 3 \
  -P tenant-7 -d 1h -m 4 -k key-1 '{"model":"gpt-4o-mini","messages":[]}')
eq "enqueue prints the id" 1 "$id"
row=$(sql "SELECT queue,urgency,endpoint,priority,partition,max_attempts,idempotency_key,model,deadline>created_at FROM jobs WHERE id=1")
eq "enqueue honours every flag" \
  "mail|deferrable|/v1/chat/completions|3|tenant-7|4|key-1|gpt-4o-mini|1" "$row"
again=$("$SLUICE" enqueue -k key-1 '{"model":"gpt-4o-mini"}' 2>"$T/err")
eq "same idempotency key returns the existing job" 1 "$again"
eq "dedup creates no second job" 1 "$(sql 'SELECT count(*) FROM jobs')"
check "dedup says so" grep -q "idempotency key exists" "$T/err"

# Many from JSONL, one transaction
printf '{"model":"m","input":"a"}\n\n{"model":"m","input":"b"}\n{"model":"m","input":"c"}\n' |
  "$SLUICE" enqueue -q bulk >"$T/out"
eq "JSONL enqueue prints the count" 3 "$(cat "$T/out")"
eq "JSONL jobs are in the queue" 3 "$(sql "SELECT count(*) FROM jobs WHERE queue='bulk'")"

# Bad input: clear error, nothing written
before=$(sql 'SELECT count(*) FROM jobs')
bad() { # name expected-text body...
  local name=$1 want=$2
  shift 2
  "$@" >/dev/null 2>"$T/err"
  local rc=$?
  if [ $rc -eq 1 ] && grep -q "$want" "$T/err" &&
    [ "$(sql 'SELECT count(*) FROM jobs')" = "$before" ]; then
    pass "bad input refused: $name"
  else
    fail "bad input refused: $name" "rc=$rc err=$(cat "$T/err")"
  fi
}
bad "invalid JSON" "body must be valid JSON" "$SLUICE" enqueue '{"model":'
bad "array body" "body must be a JSON object" "$SLUICE" enqueue '[1,2]'
bad "no model" "body must name a model" "$SLUICE" enqueue '{"input":"x"}'
bad "unknown urgency" "urgency must be urgent or deferrable" \
  "$SLUICE" enqueue -u later '{"model":"m"}'
bad "unknown endpoint" "unknown endpoint" \
  "$SLUICE" enqueue -e /v1/images '{"model":"m"}'
printf '{"model":"m"}\n{"model":"m","input":"ok"}\nnot json\n' >"$T/mixed.jsonl"
"$SLUICE" enqueue <"$T/mixed.jsonl" >/dev/null 2>"$T/err"
rc=$?
if [ $rc -eq 1 ] && grep -q "line 3" "$T/err" &&
  [ "$(sql 'SELECT count(*) FROM jobs')" = "$before" ]; then
  pass "a bad JSONL line names its line and writes nothing"
else
  fail "a bad JSONL line names its line and writes nothing" "$(cat "$T/err")"
fi

# status
"$SLUICE" status >"$T/status"
check "status shows each queue" grep -q "^bulk " "$T/status"
"$SLUICE" status --json >"$T/status.json"
eq "status --json totals" 4 \
  "$(sqlite3 :memory: "SELECT json_extract(readfile('$T/status.json'),'\$.totals.pending')")"

# show
"$SLUICE" show 1 >"$T/show"
check "show prints the job" grep -q "key         key-1" "$T/show"
"$SLUICE" show --json 1 >"$T/show.json"
eq "show --json" "key-1" \
  "$(sqlite3 :memory: "SELECT json_extract(readfile('$T/show.json'),'\$.idempotency_key')")"
"$SLUICE" show 999 >/dev/null 2>&1
eq "show of a missing job exits 1" 1 $?

# cancel
"$SLUICE" cancel 2 >/dev/null
eq "cancel a pending job" cancelled "$(sql 'SELECT state FROM jobs WHERE id=2')"
"$SLUICE" cancel 2 999 >/dev/null 2>"$T/err"
eq "cancel of a finished or missing job exits 1" 1 $?
check "cancel says the job is not pending" grep -q "job 2 is cancelled" "$T/err"

# replay: only failed jobs; dry run; audit
sql "UPDATE jobs SET state='failed', last_class='server_error', finished_at=1 WHERE id=3"
sql "UPDATE jobs SET state='running' WHERE id=4; UPDATE jobs SET state='succeeded', finished_at=1 WHERE id=4"
out=$("$SLUICE" replay --dry-run -q bulk)
eq "replay --dry-run counts" "would replay 1 jobs" "$out"
eq "dry run changes nothing" failed "$(sql 'SELECT state FROM jobs WHERE id=3')"
out=$("$SLUICE" replay -q bulk)
eq "replay" "replayed 1 jobs" "$out"
eq "replayed job is pending, generation 1" "pending|1" \
  "$(sql 'SELECT state, generation FROM jobs WHERE id=3')"
eq "succeeded job untouched" succeeded "$(sql 'SELECT state FROM jobs WHERE id=4')"
eq "replay audit row" "cli|1" "$(sql "SELECT door, replayed FROM replays ORDER BY id DESC LIMIT 1")"

# pause / resume
"$SLUICE" pause --reason "maintenance" bulk >/dev/null
check "status shows the pause" grep -q "yes" <("$SLUICE" status | grep '^bulk ')
"$SLUICE" resume bulk >/dev/null
check "resume clears it" grep -q " no$" <("$SLUICE" status | grep '^bulk ')
finish
