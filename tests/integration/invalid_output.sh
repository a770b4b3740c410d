#!/usr/bin/env bash
# Structured outputs: a job whose request carries a JSON schema and whose
# output is not valid JSON, was cut off or was refused gets class
# invalid_output: retried once, then failed (never a loop), replayable by
# class. A valid structured output succeeds and job_outputs parses it.
. "$(dirname "$0")/../lib/testlib.sh"

work() {
  timeout 60 "$SLUICE" work --base-url "$MOCK_URL" --exit-when-idle \
    --backoff-base 10ms --backoff-cap 50ms --poll 100ms 2>>"$T/worker.log"
}
SCHEMA='"response_format":{"type":"json_schema","json_schema":{"name":"a","schema":{"type":"object"}}}'
TEXTFMT='"text":{"format":{"type":"json_schema","name":"a","schema":{"type":"object"}}}'
chat() { printf '{"model":"m","messages":[{"role":"user","content":"%s"}]%s}' "$1" "${2:+,$2}"; }
resp() { printf '{"model":"m","input":"%s"%s}' "$1" "${2:+,$2}"; }

start_mock --log "$T/mock.log"
"$SLUICE" init >/dev/null
E=/v1/chat/completions
ok=$("$SLUICE" enqueue -e $E "$(chat fine "$SCHEMA")")
notjson=$("$SLUICE" enqueue -e $E -m 5 "$(chat 'mock:not-json' "$SCHEMA")")
cut=$("$SLUICE" enqueue -e $E "$(chat short "$SCHEMA,\"max_tokens\":2")")
refused=$("$SLUICE" enqueue -e $E "$(chat 'mock:refuse' "$SCHEMA")")
rok=$("$SLUICE" enqueue "$(resp fine "$TEXTFMT")")
rcut=$("$SLUICE" enqueue "$(resp short "$TEXTFMT,\"max_output_tokens\":2")")
rref=$("$SLUICE" enqueue "$(resp 'mock:refuse' "$TEXTFMT")")
plain=$("$SLUICE" enqueue -e $E "$(chat 'mock:not-json')")
work
eq "worker exits 0" 0 $?

state() { sql "SELECT state || '|' || coalesce(last_class, '') FROM jobs WHERE id = $1"; }
eq "valid structured output (chat) succeeds" "succeeded|" "$(state $ok)"
eq "valid structured output (responses) succeeds" "succeeded|" "$(state $rok)"
eq "not JSON: failed, invalid_output" "failed|invalid_output" "$(state $notjson)"
eq "cut off (finish_reason length): invalid_output" "failed|invalid_output" "$(state $cut)"
eq "refused (chat): invalid_output" "failed|invalid_output" "$(state $refused)"
eq "cut off (status incomplete): invalid_output" "failed|invalid_output" "$(state $rcut)"
eq "refused (responses): invalid_output" "failed|invalid_output" "$(state $rref)"
eq "no schema asked: plain text succeeds" "succeeded|" "$(state $plain)"
eq "invalid_output is retried once, then fails (2 attempts of 5)" "2|2" \
  "$(sql "SELECT count(*) || '|' || (SELECT attempts FROM jobs WHERE id = $notjson) FROM attempts WHERE job_id = $notjson")"
eq "... each attempt classed invalid_output" 2 \
  "$(sql "SELECT count(*) FROM attempts WHERE job_id = $notjson AND failure_class = 'invalid_output'")"
check "... the error says why" \
  bash -c "sqlite3 '$SLUICE_JOURNAL' \"SELECT last_error FROM jobs WHERE id = $notjson\" | grep -q 'not valid JSON'"
check "... and for a cut-off output" \
  bash -c "sqlite3 '$SLUICE_JOURNAL' \"SELECT last_error FROM jobs WHERE id = $cut\" | grep -q 'cut off'"
eq "no result row for an invalid output" 0 \
  "$(sql "SELECT count(*) FROM results WHERE job_id IN ($notjson, $cut, $refused, $rcut, $rref)")"
eq "job_outputs parses a valid structured output" \
  "$(sql "SELECT json(output_text) FROM job_outputs WHERE job_id = $ok")" \
  "$(sql "SELECT output_json FROM job_outputs WHERE job_id = $ok")"
check "... and it is an object" test "$(sql "SELECT json_type(output_json) FROM job_outputs WHERE job_id = $rok")" = object
eq "job_outputs: plain text has no output_json" "" "$(sql "SELECT output_json FROM job_outputs WHERE job_id = $plain")"

# replay by class after a "schema fix": they run again, once more each
"$SLUICE" jobs --class invalid_output --json >"$T/j.json"
eq "sluice jobs --class invalid_output lists them" 5 \
  "$(sqlite3 :memory: "SELECT json_array_length(json_extract(readfile('$T/j.json'), '\$.jobs'))")"
"$SLUICE" replay --class invalid_output >/dev/null
eq "replay --class invalid_output" 5 "$(sql "SELECT count(*) FROM jobs WHERE state = 'pending'")"
work
eq "after replay: failed again, bounded (2 more attempts each)" 4 \
  "$(sql "SELECT count(*) FROM attempts WHERE job_id = $notjson")"
stop_mock

# --- the batch route checks the same way
reset_journal
start_mock --batch-phase-ms 50
"$SLUICE" init >/dev/null
bok=$("$SLUICE" enqueue -u deferrable -e $E "$(chat fine "$SCHEMA")")
bbad=$("$SLUICE" enqueue -u deferrable -e $E -m 5 "$(chat 'mock:not-json' "$SCHEMA")")
bplain=$("$SLUICE" enqueue -u deferrable -e $E "$(chat 'mock:not-json')")
timeout 90 "$SLUICE" work --base-url "$MOCK_URL" --exit-when-idle --poll 100ms \
  --batch-max-wait 100ms --batch-poll 100ms 2>>"$T/worker.log"
eq "batch: worker exits 0" 0 $?
eq "batch: valid structured output succeeds" "succeeded|" "$(state $bok)"
eq "batch: not JSON is invalid_output, failed" "failed|invalid_output" "$(state $bbad)"
eq "batch: retried once (2 batch attempts of 5)" "2" \
  "$(sql "SELECT count(*) FROM attempts WHERE job_id = $bbad AND route = 'batch' AND failure_class = 'invalid_output'")"
eq "batch: no schema asked, plain text succeeds" "succeeded|" "$(state $bplain)"
stop_mock
finish
