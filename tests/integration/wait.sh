#!/usr/bin/env bash
# sluice wait and enqueue --wait: block until jobs are final, print their
# outcomes (text or JSON); exit 0 all succeeded, 1 one failed or cancelled,
# 5 timed out. Waiting wakes on another process's commit (the WAL watch).
# enqueue --envelope (one JSON line out per line in, reruns create nothing
# twice) and --ids.
. "$(dirname "$0")/../lib/testlib.sh"

work() {
  timeout 60 "$SLUICE" work --base-url "$MOCK_URL" --exit-when-idle \
    --backoff-base 20ms --backoff-cap 200ms --poll 100ms "$@" \
    2>>"$T/worker.log"
}

"$SLUICE" init >/dev/null
start_mock

# --- wait blocks until a worker (another process) finishes the jobs
a=$("$SLUICE" enqueue '{"model":"gpt-4o-mini","input":"a"}')
b=$("$SLUICE" enqueue -e /v1/chat/completions \
  '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"b"}]}')
timeout 60 "$SLUICE" wait --json "$a" "$b" >"$T/wait.json" 2>"$T/wait.err" &
wpid=$!
sleep 0.3
check "wait is still waiting while the jobs are pending" kill -0 $wpid
work
wait $wpid
eq "wait exits 0 when every job succeeded" 0 $?
j() { sqlite3 :memory: "SELECT json_extract(readfile('$T/wait.json'), '$1')"; }
eq "wait --json lists both jobs in order" "$a $b" "$(j '$.jobs[0].id') $(j '$.jobs[1].id')"
eq "... state succeeded" "succeeded" "$(j '$.jobs[0].state')"
check "... output_text of a responses result" \
  bash -c "sqlite3 :memory: \"SELECT json_extract(readfile('$T/wait.json'), '\$.jobs[0].output_text')\" | grep -q 'mock reply'"
check "... output_text of a chat result" \
  bash -c "sqlite3 :memory: \"SELECT json_extract(readfile('$T/wait.json'), '\$.jobs[1].output_text')\" | grep -q 'mock reply'"
eq "... http_status" 200 "$(j '$.jobs[0].http_status')"
"$SLUICE" wait "$a" >"$T/wait.txt"
eq "wait on final jobs returns at once, exit 0" 0 $?
check "text view: id and state, then the output" \
  grep -qx "$a succeeded" "$T/wait.txt"
check "... the output text indented" grep -q '^  This is a mock reply' "$T/wait.txt"

# --- timeout: exit 5, the states printed
c=$("$SLUICE" enqueue '{"model":"gpt-4o-mini","input":"c"}')
"$SLUICE" wait --timeout 300ms "$c" >"$T/out" 2>"$T/err"
eq "wait --timeout on a pending job exits 5" 5 $?
check "... says it timed out" grep -q "timed out" "$T/err"
check "... prints the state" grep -qx "$c pending" "$T/out"

# --- a commit by another process wakes it: failed and cancelled exit 1
timeout 60 "$SLUICE" wait --timeout 30s "$c" >"$T/out" 2>&1 &
wpid=$!
sleep 0.3
sql "UPDATE jobs SET state = 'failed', last_class = 'auth', last_error = 'bad key', finished_at = 1 WHERE id = $c"
wait $wpid
eq "a job that failed: wait exits 1" 1 $?
check "... prints class and error" grep -q "^$c failed auth: bad key" "$T/out"
d=$("$SLUICE" enqueue '{"model":"gpt-4o-mini","input":"d"}')
"$SLUICE" cancel "$d" >/dev/null
"$SLUICE" wait "$a" "$d" >/dev/null
eq "a cancelled job among succeeded ones: exit 1" 1 $?
"$SLUICE" wait 99999 >/dev/null 2>"$T/err"
eq "wait on a missing job exits 1" 1 $?
check "... and says so" grep -q "do not exist" "$T/err"
"$SLUICE" wait >/dev/null 2>&1
eq "wait without ids exits 2" 2 $?
"$SLUICE" wait x1 >/dev/null 2>&1
eq "wait on a non-id exits 2" 2 $?

# --- enqueue --wait: enqueue, wait, print the outcome
timeout 60 "$SLUICE" enqueue --wait --json '{"model":"gpt-4o-mini","input":"e"}' \
  >"$T/ew.json" &
epid=$!
# a function, polled: "$(sql ...)" as an argument would be read only once
one_pending() { [ "$(sql "SELECT count(*) FROM jobs WHERE state = 'pending'")" = 1 ]; }
wait_for 10 one_pending
work
wait $epid
eq "enqueue --wait exits 0 once the job succeeded" 0 $?
check "enqueue --wait prints the output" \
  bash -c "sqlite3 :memory: \"SELECT json_extract(readfile('$T/ew.json'), '\$.jobs[0].output_text')\" | grep -q 'mock reply'"
"$SLUICE" enqueue --wait --timeout 200ms '{"model":"gpt-4o-mini","input":"f"}' >/dev/null 2>&1
eq "enqueue --wait --timeout exits 5 with no worker" 5 $?
"$SLUICE" enqueue --timeout 1s '{"model":"m"}' >/dev/null 2>"$T/err"
eq "--timeout without --wait exits 2" 2 $?
check "... and says what was wrong" grep -q "goes with --wait" "$T/err"
stop_mock

# --- --envelope: one line out per line in; a rerun creates nothing twice
reset_journal
cat >"$T/env.jsonl" <<'JL'
{"body":{"model":"m","input":"x","seed":12345678901234567890},"idempotency_key":"order-1","metadata":{"tenant":"acme"}}

{"body":{"model":"m"},"idempotency_key":"order-2","queue":"bulk","partition":"t9","priority":3,"urgency":"deferrable","endpoint":"/v1/chat/completions","run_after":"10m","deadline":"2099-01-01T00:00:00Z","max_attempts":2}
JL
"$SLUICE" enqueue --envelope <"$T/env.jsonl" >"$T/out"
eq "envelope: exit 0" 0 $?
eq "envelope: one JSON line per input line, with its line number" \
  '{"line":1,"id":1,"created":true}|{"line":3,"id":2,"created":true}' \
  "$(paste -sd'|' "$T/out")"
eq "envelope: every field stored" \
  'bulk|t9|3|deferrable|/v1/chat/completions|2|4070908800000|1' \
  "$(sql "SELECT queue, partition, priority, urgency, endpoint, max_attempts, deadline, run_after > created_at + 590000 FROM jobs WHERE id = 2")"
eq "envelope: the body is stored as written (big integers exact)" \
  '{"model":"m","input":"x","seed":12345678901234567890}' "$(sql 'SELECT body FROM job_bodies WHERE job_id = 1')"
eq "envelope: metadata stored" acme "$(sql "SELECT metadata ->> 'tenant' FROM jobs WHERE id = 1")"
"$SLUICE" enqueue --envelope <"$T/env.jsonl" >"$T/out"
eq "envelope rerun: created false, same ids" \
  '{"line":1,"id":1,"created":false}|{"line":3,"id":2,"created":false}' \
  "$(paste -sd'|' "$T/out")"
eq "envelope rerun: nothing created twice" 2 "$(sql 'SELECT count(*) FROM jobs')"
printf '{"body":{"model":"m"},"idempotency_key":"order-3"}\n{"body":{"model":"m"},"deadline":"1h","priority":-1}\n' |
  "$SLUICE" enqueue --envelope >/dev/null 2>"$T/err"
eq "envelope: a bad line refuses the whole file (exit 1)" 1 $?
check "... naming the line and the field" grep -q "line 2: .*priority" "$T/err"
eq "... nothing written" 2 "$(sql 'SELECT count(*) FROM jobs')"
for bad in '{"model":"m"}' '{"body":{"model":"m"},"colour":"red"}' \
           '{"body":{"model":"m"},"run_after":1796582447}' \
           '{"body":{"model":"m"},"deadline":"2001-01-01T00:00:00Z"}'; do
  printf '%s\n' "$bad" | "$SLUICE" enqueue --envelope >/dev/null 2>"$T/err"
  eq "envelope refuses $bad (exit 1)" 1 $?
done
eq "... and writes nothing" 2 "$(sql 'SELECT count(*) FROM jobs')"

# --- --ids: plain JSONL prints the ids
printf '{"model":"m"}\n{"model":"m"}\n' | "$SLUICE" enqueue --ids >"$T/out"
eq "enqueue --ids prints one id per line" "3 4" "$(paste -sd' ' "$T/out")"

# --- pretty-printed JSON on stdin gets a hint
printf '{\n  "model": "m"\n}\n' | "$SLUICE" enqueue >/dev/null 2>"$T/err"
eq "pretty-printed JSON on stdin: exit 1" 1 $?
check "... with a hint: one object per line" grep -q "one JSON object per line" "$T/err"

# --- times: RFC 3339 and durations; a bare number and a past deadline refused
"$SLUICE" enqueue -a 1796582447 '{"model":"m"}' >/dev/null 2>"$T/err"
eq "--run-after with a bare number: exit 2" 2 $?
check "... with a hint" grep -q "bare number" "$T/err"
"$SLUICE" enqueue -d 2001-01-01T00:00:00Z '{"model":"m"}' >/dev/null 2>"$T/err"
eq "a deadline in the past: exit 2" 2 $?
check "... says so" grep -q "already past" "$T/err"
id=$("$SLUICE" enqueue -a 2099-01-01T00:00:00+02:00 -d 2099-01-02 '{"model":"m"}')
eq "RFC 3339 with an offset, and a date" "4070901600000|4070995200000" \
  "$(sql "SELECT run_after || '|' || deadline FROM jobs WHERE id = $id")"
finish
