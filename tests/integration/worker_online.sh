#!/usr/bin/env bash
# sluice work against sluice-mock: results exactly once, every failure class
# classified from a real HTTP exchange, retries with the same
# Idempotency-Key, Retry-After honoured, per-hop timings recorded.
. "$(dirname "$0")/../lib/testlib.sh"

work() { # run a worker to idle against $MOCK_URL; extra args passed on
  timeout 60 "$SLUICE" work --base-url "$MOCK_URL" --exit-when-idle \
    --backoff-base 20ms --backoff-cap 200ms --poll 100ms "$@" \
    2>>"$T/worker.log"
}

# --- 200 jobs, all succeed, one result and one attempt each
start_mock --log "$T/mock.log"
"$SLUICE" init >/dev/null
for i in $(seq 1 200); do printf '{"model":"gpt-4o-mini","input":"job %d"}\n' "$i"; done |
  "$SLUICE" enqueue >/dev/null
work --concurrency 16
eq "worker exits 0 when idle" 0 $?
eq "every job succeeded" 200 "$(sql "SELECT count(*) FROM jobs WHERE state='succeeded'")"
eq "one result per job" 200 "$(sql 'SELECT count(DISTINCT job_id) FROM results')"
eq "one attempt per job" 200 "$(sql "SELECT count(*) FROM attempts WHERE failure_class IS NULL AND route='online'")"
eq "usage tokens recorded" 0 "$(sql 'SELECT count(*) FROM results WHERE input_tokens IS NULL OR output_tokens IS NULL')"
eq "per-hop timings recorded (invariant 6)" 0 \
  "$(sql 'SELECT count(*) FROM attempts WHERE dns_ms IS NULL OR connect_ms IS NULL OR first_byte_ms IS NULL OR total_ms IS NULL OR request_id IS NULL OR http_status IS NULL')"
eq "request ids match the server's" 200 \
  "$(sql "SELECT count(*) FROM results WHERE request_id LIKE 'req_%'")"
stop_mock
# (the batch route's recovery lists /v1/batches at start: count API calls)
api_calls "$T/mock.log" >"$T/calls.log"
keys_in_log=$(awk '{print $4}' "$T/calls.log" | sort | uniq | wc -l)
eq "the mock saw each idempotency key once" 200 "$keys_in_log"
eq "the mock saw 200 requests" 200 "$(wc -l <"$T/calls.log")"
sql "SELECT idempotency_key FROM jobs" | sort >"$T/keys.db"
awk '{print $4}' "$T/calls.log" | sort >"$T/keys.log"
check "Idempotency-Key header is the job's key" cmp -s "$T/keys.db" "$T/keys.log"

# --- each failure class from a real exchange; one attempt, no retry
klass() { # name fault expected-class [worker args...]
  local name=$1 fault=$2 want=$3
  shift 3
  reset_journal
  start_mock --faults "$fault"
  "$SLUICE" enqueue -m 1 '{"model":"gpt-4o-mini","input":"x"}' >/dev/null
  work "$@"
  local got
  got=$(sql "SELECT failure_class || '|' || coalesce(http_status, 0) FROM attempts")
  if [ "${got%%|*}" = "$want" ] && [ "$(sql 'SELECT state FROM jobs')" = failed ]; then
    pass "classified: $name -> $want"
  else
    fail "classified: $name -> $want" "got '$got'; $(sql 'SELECT last_error FROM jobs')"
  fi
  stop_mock
}
klass "429 rate_limit_exceeded" "429@1" rate_limited
klass "500" "500@1" server_error
klass "502 JSON" "502@1" server_error
klass "502 HTML page" "502html@1" server_error
klass "503" "503@1" overloaded
klass "504" "504@1" server_error
klass "400" "400@1" invalid_request
klass "409" "409@1" conflict
klass "413" "413@1" too_large
klass "hang past the attempt timeout" "hang@1" ambiguous --timeout 1s
klass "reset mid-body" "reset@1" ambiguous
klass "truncated JSON body" "truncate@1" ambiguous
klass "non-JSON 200 body" "nonjson@1" ambiguous

# quota and auth pause the queue's online route and spend no attempt
pauses() { # name fault class
  reset_journal
  start_mock --faults "$2"
  "$SLUICE" enqueue -m 1 '{"model":"gpt-4o-mini","input":"x"}' >/dev/null
  timeout 20 "$SLUICE" work --base-url "$MOCK_URL" --poll 100ms \
    2>>"$T/worker.log" &
  local w=$!
  PIDS+=("$w")
  paused_now() { [ "$(sql "SELECT count(*) FROM queue_limits WHERE online_paused = 1")" = 1 ]; }
  wait_for 10 paused_now
  kill -TERM "$w"
  wait "$w" 2>/dev/null
  eq "classified: $1 -> $3, route paused, attempt refunded" "$3|pending|0|1" \
    "$(sql "SELECT (SELECT failure_class FROM attempts), state, attempts, (SELECT online_paused FROM queue_limits) FROM jobs")"
  stop_mock
}
pauses "429 insufficient_quota" "quota@1" quota_exhausted
pauses "401" "401@1" auth

# connection refused: a port nothing listens on
reset_journal
start_mock
port=$MOCK_PORT
stop_mock
"$SLUICE" enqueue -m 1 '{"model":"m"}' >/dev/null
timeout 60 "$SLUICE" work --base-url "http://127.0.0.1:$port/v1" --exit-when-idle \
  2>>"$T/worker.log"
eq "classified: connection refused -> network" network \
  "$(sql 'SELECT failure_class FROM attempts')"

# permanent classes fail at once even with attempts left
reset_journal
start_mock --faults "400@1" --log "$T/perm.log"
"$SLUICE" enqueue -m 5 '{"model":"m"}' >/dev/null
work
eq "invalid_request is never retried" "failed|1" "$(sql 'SELECT state, attempts FROM jobs')"
stop_mock
eq "one request sent for a permanent failure" 1 "$(api_calls "$T/perm.log" | wc -l)"

# x-should-retry: false overrides a retryable status
reset_journal
start_mock --faults "shouldretry@1"
"$SLUICE" enqueue -m 5 '{"model":"m"}' >/dev/null
work
eq "x-should-retry: false stops retries" "failed|1" "$(sql 'SELECT state, attempts FROM jobs')"
stop_mock

# --- retry then success, same Idempotency-Key on every attempt
reset_journal
start_mock --faults "500#1-2" --log "$T/retry.log"
"$SLUICE" enqueue -m 5 '{"model":"m","input":"retry me"}' >/dev/null
work
eq "retried to success" "succeeded|3" "$(sql 'SELECT state, attempts FROM jobs')"
eq "attempt rows record each class" "server_error,server_error,ok" \
  "$(sql "SELECT group_concat(coalesce(failure_class,'ok')) FROM (SELECT * FROM attempts ORDER BY id)")"
stop_mock
eq "three requests, one key" "3 1" \
  "$(api_calls "$T/retry.log" | wc -l) $(api_calls "$T/retry.log" | awk '{print $4}' | sort -u | wc -l)"
eq "one result" 1 "$(sql 'SELECT count(*) FROM results')"

# --- exhausted attempts fail the job
reset_journal
start_mock --faults "503@1"
"$SLUICE" enqueue -m 3 '{"model":"m"}' >/dev/null
work
eq "fails after max_attempts" "failed|3|overloaded" \
  "$(sql 'SELECT state, attempts, last_class FROM jobs')"
stop_mock

# --- Retry-After is honoured (429 asking for 1.5 s; our own backoff is 20 ms)
reset_journal
start_mock --faults "429:1500#1"
"$SLUICE" enqueue '{"model":"m"}' >/dev/null
work
gap=$(sql "SELECT (SELECT started_at FROM attempts ORDER BY id LIMIT 1 OFFSET 1) - (SELECT finished_at FROM attempts ORDER BY id LIMIT 1)")
if [ "$(sql 'SELECT state FROM jobs')" = succeeded ] && [ "$gap" -ge 1450 ]; then
  pass "Retry-After honoured (waited $gap ms)"
else
  fail "Retry-After honoured" "state $(sql 'SELECT state FROM jobs'), gap $gap ms"
  sql "SELECT id, started_at, finished_at, failure_class, http_status, error FROM attempts"
  tail -n 20 "$T/worker.log"
fi
stop_mock

# --- deadline: a job past its deadline is never sent
reset_journal
start_mock --log "$T/deadline.log"
# sluice enqueue refuses a deadline in the past; the SQL door takes it
"$SLUICE" init >/dev/null
sql "INSERT INTO jobs(body, deadline) VALUES('{\"model\":\"m\"}', 1)"
work
eq "expired deadline fails unsent" "failed|deadline_exceeded" \
  "$(sql 'SELECT state, last_class FROM jobs')"
stop_mock
eq "nothing sent for an expired job" 0 "$(api_calls "$T/deadline.log" | wc -l)"
finish
