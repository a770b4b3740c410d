#!/usr/bin/env bash
# sluice work --metrics-port: Prometheus text on 127.0.0.1 with journal
# figures (jobs by state, failed by class) and process figures (attempts by
# class, latency histograms, in flight).
. "$(dirname "$0")/../lib/testlib.sh"

start_mock --faults "500#1-5"
"$SLUICE" init >/dev/null
for i in $(seq 1 40); do printf '{"model":"m","input":"%d"}\n' "$i"; done |
  "$SLUICE" enqueue -m 1 >/dev/null
# A queue name the SQL door lets through (no C0): invalid UTF-8, a C1
# control (CSI), a quote and a backslash; held back by run_after.
sql "INSERT INTO jobs(queue, body, run_after) VALUES('bad' || CAST(X'FF' AS TEXT)
  || '\"q\\' || CAST(X'C29B' AS TEXT), '{\"model\":\"m\",\"input\":\"x\"}',
  4102444800000)" >/dev/null
"$SLUICE" work --base-url "$MOCK_URL" --metrics-port 0 --poll 100ms --rpm 60000 \
  2>"$T/worker.log" &
w=$!
PIDS+=("$w")
wait_for 10 grep -q "metrics on http" "$T/worker.log"
port=$(grep -o 'metrics on http://127.0.0.1:[0-9]*' "$T/worker.log" | grep -o '[0-9]*$')
done_all() { [ "$(sql "SELECT count(*) FROM jobs WHERE state IN ('succeeded','failed')")" = 40 ]; }
wait_for 20 done_all
curl -s "http://127.0.0.1:$port/metrics" >"$T/m.txt"
metric() { grep -F "$1 " "$T/m.txt" | awk '{print $NF}'; }
ok=$(sql "SELECT count(*) FROM jobs WHERE state='succeeded'")
bad=$(sql "SELECT count(*) FROM jobs WHERE state='failed' AND last_class='server_error'")
check "the faults produced failures" test "$bad" -gt 0
eq "jobs by queue and state" "$ok" "$(metric 'sluice_jobs{queue="default",state="succeeded"}')"
eq "failed jobs by class" "$bad" "$(metric 'sluice_failed_jobs{class="server_error"}')"
eq "successful attempts counted" "$ok" "$(metric 'sluice_attempts_total{route="online",class="none"}')"
eq "failed attempts counted by class" "$bad" "$(metric 'sluice_attempts_total{route="online",class="server_error"}')"
eq "latency histogram counts every attempt" 40 "$(metric 'sluice_request_duration_seconds_count')"
eq "histogram +Inf bucket equals the count" 40 "$(metric 'sluice_request_duration_seconds_bucket{le="+Inf"}')"
# Prometheus refuses a whole scrape whose label value is not UTF-8.
check "the page is valid UTF-8 whatever the queue names" \
  iconv -f UTF-8 -t UTF-8 -o /dev/null "$T/m.txt"
check "a hostile queue name is escaped in its label" grep -qxF \
  'sluice_jobs{queue="bad\\xff\"q\\\\xc2\\x9b",state="pending"} 1' "$T/m.txt"
check "in-flight gauge present" grep -q '^sluice_in_flight ' "$T/m.txt"
check "shared bucket levels exported" grep -q '^sluice_bucket_requests{endpoint="/v1/responses",model="m"} ' "$T/m.txt"
check "breaker state exported" grep -q '^sluice_breaker_open{endpoint="/v1/responses",model="m"} 0$' "$T/m.txt"
eq "tokens used today by queue" \
  "$(sql "SELECT sum(total_tokens) FROM results")" \
  "$(metric 'sluice_tokens_today{queue="default"}')"
check "content type is Prometheus text" \
  bash -c "curl -sI http://127.0.0.1:$port/metrics | grep -qi 'content-type: text/plain; version=0.0.4'"
eq "other paths are 404" 404 "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/")"
kill -TERM "$w"
wait "$w"
eq "worker with metrics exits 0" 0 $?
stop_mock
finish
