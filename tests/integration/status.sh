#!/usr/bin/env bash
# sluice status per queue: failures by class, a pause and an online-route
# pause with reason and since when, budget use; --json carries all of it
# in the shape sluice(1) documents; /metrics has lag, paused and
# failures-by-class gauges. show prints outputs and "-" for timings an
# attempt does not have.
. "$(dirname "$0")/../lib/testlib.sh"

"$SLUICE" init >/dev/null
for q in mail mail mail bulk; do "$SLUICE" enqueue -q $q '{"model":"m"}' >/dev/null; done
sql "UPDATE jobs SET state = 'failed', last_class = 'auth', finished_at = 1 WHERE id IN (1, 2);
     UPDATE jobs SET state = 'failed', last_class = 'timeout', finished_at = 1 WHERE id = 3;
     UPDATE jobs SET run_after = run_after - 60000 WHERE id = 4;
     INSERT INTO queue_limits (queue, online_paused, online_paused_reason, online_paused_at, tokens_per_day)
       VALUES ('bulk', 1, 'quota exhausted', 1796000000000, 1000);
     INSERT INTO usage_daily (queue, day, jobs, total_tokens)
       VALUES ('bulk', CAST((julianday('now') - 2440587.5) AS INTEGER), 3, 250);"
"$SLUICE" pause mail --reason "provider incident" >/dev/null

"$SLUICE" status >"$T/st"
eq "status exits 0" 0 $?
check "failures by class per queue" grep -q "^  mail: failed by class: auth 2 timeout 1$" "$T/st"
check "a pause with reason and since when" \
  grep -qE "^  mail: paused since 20[0-9-]+T[0-9:.]+Z: provider incident$" "$T/st"
check "an online-route pause with reason and since when" \
  grep -q "^  bulk: online route paused since 2026-11-30T00:53:20.000Z: quota exhausted$" "$T/st"
check "budget use" grep -q "^  bulk: budget 250 tokens used today of 1000 (25%)$" "$T/st"
check "the PAUSED column says online for an online pause" grep -qE "^bulk .* online$" "$T/st"

"$SLUICE" status --json >"$T/st.json"
q() { sqlite3 :memory: "SELECT json_extract(readfile('$T/st.json'), '$1')"; }
eq "--json: failed_by_class" '{"auth":2,"timeout":1}' "$(q '$.queues[1].failed_by_class')"
eq "--json: paused_reason" "provider incident" "$(q '$.queues[1].paused_reason')"
check "--json: paused_since is a time" test "$(q '$.queues[1].paused_since')" -gt 1700000000000
eq "--json: online pause" "1|quota exhausted|1796000000000" \
  "$(q '$.queues[0].online_paused')|$(q '$.queues[0].online_paused_reason')|$(q '$.queues[0].online_paused_since')"
eq "--json: budget use" "250|1000" "$(q '$.queues[0].tokens_today')|$(q '$.queues[0].tokens_per_day')"
# The shape sluice(1) documents under STATUS JSON: every key it lists for a
# queue is in the output, and no other.
keys=$(sqlite3 :memory: "SELECT group_concat(key, ' ') FROM (SELECT key FROM json_each(json_extract(readfile('$T/st.json'), '\$.queues[0]')) ORDER BY key)")
doc=$(sed -n '/^\.SH STATUS JSON/,/^\.SH /p' "$SLUICE_ROOT/man/sluice.1" |
  sed -n 's/^\.B \([a-z_]*\)$/\1/p' | sort | paste -sd' ')
eq "status --json queue keys match sluice(1) STATUS JSON" "$doc" "$keys"
check "README documents the same keys" \
  bash -c "for k in $keys; do grep -q \"\\\"\$k\\\"\" '$SLUICE_ROOT/README.md' || exit 1; done"

# /metrics: lag, paused, failures by class per queue (every job is held by
# a pause, so the worker sends nothing)
start_mock
"$SLUICE" work --base-url "$MOCK_URL" --metrics-port 0 --poll 100ms \
  2>"$T/worker.log" &
w=$!
PIDS+=("$w")
wait_for 10 grep -q "metrics on http" "$T/worker.log"
port=$(grep -o 'metrics on http://127.0.0.1:[0-9]*' "$T/worker.log" | grep -o '[0-9]*$')
curl -s "http://127.0.0.1:$port/metrics" >"$T/m.txt"
metric() { grep -F "$1 " "$T/m.txt" | awk '{print $NF}'; }
check "queue lag gauge (the bulk job waited a minute)" \
  awk '/^sluice_queue_lag_seconds\{queue="bulk"\}/ { exit !($2 >= 60 && $2 < 600) }' "$T/m.txt"
eq "paused gauge: the queue" 1 "$(metric 'sluice_queue_paused{queue="mail",route="all"}')"
eq "paused gauge: the online route" 1 "$(metric 'sluice_queue_paused{queue="bulk",route="online"}')"
eq "failed jobs by queue and class" 2 "$(metric 'sluice_queue_failed_jobs{queue="mail",class="auth"}')"
kill -TERM "$w"
wait "$w"
stop_mock

# show: a batch attempt's timings are "-", outputs printed
sql "INSERT INTO attempts (job_id, attempt, generation, route, finished_at, http_status, failure_class)
     VALUES (1, 1, 0, 'batch', 1, NULL, 'batch_expired')"
"$SLUICE" show 1 >"$T/show"
check "show prints - for a batch attempt's timings" \
  grep -q "attempt 1  batch  batch_expired .*http - .*dns - connect - tls - first-byte - total -" "$T/show"
check "... never 'nan' or a negative time" bash -c "! grep -qiE 'nan|-1\\.0' '$T/show'"
id=$("$SLUICE" enqueue -e /v1/chat/completions \
  '{"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"a","schema":{}}}}')
sql "UPDATE jobs SET state = 'running' WHERE id = $id;
     UPDATE jobs SET state = 'succeeded' WHERE id = $id;
     INSERT INTO results (job_id, generation, route, http_status, body, created_at)
     VALUES ($id, 0, 'online', 200, '{\"choices\":[{\"message\":{\"content\":\"{\\\"answer\\\":42}\"}}]}', 1)"
"$SLUICE" show $id >"$T/show"
check "show prints the output text" grep -q '^  output      {"answer":42}$' "$T/show"
check "show prints the parsed JSON output" grep -q '^  output json {"answer":42}$' "$T/show"
"$SLUICE" show --json $id >"$T/show.json"
eq "show --json output_json is an object" 42 \
  "$(sqlite3 :memory: "SELECT json_extract(readfile('$T/show.json'), '\$.output_json.answer')")"
eq "job_outputs from SQL" 42 "$(sql "SELECT output_json ->> '\$.answer' FROM job_outputs WHERE job_id = $id")"
finish
