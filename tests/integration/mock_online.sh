#!/usr/bin/env bash
# sluice-mock online endpoints: shapes, headers, errors, faults by
# sequence/probability/time, admin endpoints, rate limits, latency via
# suspended connections, keep-alive, the request log and clean shutdown.
ROOT=${SLUICE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$ROOT/tests/mock/testlib.sh"

J='{"model":"gpt-4o-mini","input":"Say hello."}'
CHAT='{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'

# --- CLI errors ------------------------------------------------------------
"$MOCK_BIN" --port 0 --faults 'bogus@1' 2>"$TMP/cli.err"
check "bad --faults: exit 2" $? = 2
check "bad --faults: says why" "$(grep -c "unknown fault kind 'bogus'" \
  "$TMP/cli.err")" = 1
"$MOCK_BIN" 2>/dev/null
check "no --port: exit 2" $? = 2
"$MOCK_BIN" --port 0 --rpm lots 2>/dev/null
check "non-numeric --rpm: exit 2" $? = 2
"$MOCK_BIN" --port 0 --faults '500@1.5' 2>/dev/null
check "probability > 1: exit 2" $? = 2

# --- startup ---------------------------------------------------------------
start_mock --log "$TMP/log" || { fail startup; finish; }
check "port file holds the bound port" "$PORT" -gt 0
check "listening line on stderr" \
  "$(grep -c "listening on 127.0.0.1:$PORT" "$TMP/mock.err")" = 1
timeout 10 "$MOCK_BIN" --port "$PORT" 2>"$TMP/cli.err"
check "port in use: exit 1 with a message" \
  "$? $(grep -c 'cannot listen' "$TMP/cli.err")" = "1 1"

# --- /v1/responses -----------------------------------------------------------
post /v1/responses "$J" -H 'Idempotency-Key: key-a'
check "responses: 200" "$STATUS" = 200
check "responses: object" "$(jb '$.object')" = response
check "responses: output message" "$(jb '$.output[0].type')" = message
check "responses: output_text" \
  "$(jb '$.output[0].content[0].type')" = output_text
check "responses: model echoed" "$(jb '$.model')" = gpt-4o-mini
in=$(( (${#J} + 3) / 4 ))
check "responses: input_tokens = ceil(bytes/4)" \
  "$(jb '$.usage.input_tokens')" = "$in"
check "responses: total = input + output" "$(jb '$.usage.total_tokens')" = \
  "$(( $(jb '$.usage.input_tokens') + $(jb '$.usage.output_tokens') ))"
check "responses: content-type json" "$(hdr content-type)" = application/json
rid1=$(hdr x-request-id)
check "responses: x-request-id req_" "${rid1#req_}" != "$rid1"
check "ratelimit headers present" \
  "$(grep -ci '^x-ratelimit-\(limit\|remaining\|reset\)-\(requests\|tokens\):' \
  "$TMP/hdr")" = 6
check "ratelimit reset is a Go duration" \
  "$(hdr x-ratelimit-reset-requests |
  grep -cE '^([0-9]+h)?([0-9]+m)?[0-9.]+(ms|s)$')" = 1
text1=$(jb '$.output[0].content[0].text')
post /v1/responses "$J"
check "deterministic text for the same body" \
  "$(jb '$.output[0].content[0].text')" = "$text1"
check "request ids differ" "$(hdr x-request-id)" != "$rid1"
post /v1/responses '{"model":"m","input":"x","max_output_tokens":3}'
check "responses: max_output_tokens caps output" \
  "$(jb '$.usage.output_tokens')" = 3

# --- chat + embeddings -----------------------------------------------------
post /v1/chat/completions "$CHAT"
check "chat: 200" "$STATUS" = 200
check "chat: object" "$(jb '$.object')" = chat.completion
check "chat: assistant message" "$(jb '$.choices[0].message.role')" = assistant
check "chat: usage total" "$(jb '$.usage.total_tokens')" = \
  "$(( $(jb '$.usage.prompt_tokens') + $(jb '$.usage.completion_tokens') ))"
post /v1/chat/completions \
  '{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":2}'
check "chat: max_tokens -> completion_tokens" \
  "$(jb '$.usage.completion_tokens')" = 2
check "chat: finish_reason length" "$(jb '$.choices[0].finish_reason')" = length
post /v1/embeddings '{"model":"e","input":["a","b","c"],"dimensions":4}'
check "embeddings: 200" "$STATUS" = 200
check "embeddings: list of 3" "$(jb '$.object') $(jb '$.data[2].index')" = \
  "list 2"
check "embeddings: 4 dims" "$(jb '$.data[0].embedding[3]')" != ""
check "embeddings: usage" "$(jb '$.usage.total_tokens')" -gt 0

# --- request errors ------------------------------------------------------
post /v1/responses 'not json'
check "bad JSON: 400" "$STATUS" = 400
check "bad JSON: invalid_request_error" "$(jb '$.error.type')" = \
  invalid_request_error
post /v1/responses '{"input":"x"}'
check "missing model: 400 param=model" "$STATUS $(jb '$.error.param')" = \
  "400 model"
post /v1/responses '[1,2]'
check "non-object body: 400" "$STATUS" = 400
post /v1/nope '{"model":"m"}'
check "unknown path: 404 error body" "$STATUS $(jb '$.error.type')" = \
  "404 invalid_request_error"
req GET /v1/responses
check "GET on a POST endpoint: 405" "$STATUS" = 405

# --- keep-alive: two requests, one connection ----------------------------
c0=$(stat_of '$.connections')
curl -sS -m 10 -o /dev/null -o /dev/null -H 'Content-Type: application/json' \
  --data-binary "$J" "$BASE/v1/responses" "$BASE/v1/responses"
check "keep-alive reuses the connection" \
  "$(( $(stat_of '$.connections') - c0 ))" = 2 # one for curl, one for stats

# --- duplicate idempotency keys ------------------------------------------
check "no duplicate yet" "$(stat_of '$.duplicate_keys')" = 0
post /v1/responses "$J" -H 'Idempotency-Key: key-a'
check "re-sent key counts as duplicate" "$(stat_of '$.duplicate_keys')" = 1

# a truncated answer is not an answer: its key may be re-sent freely
req PUT /_mock/faults --data-binary 'truncate'
post /v1/responses "$J" -H 'Idempotency-Key: key-t'
req PUT /_mock/faults --data-binary ''
post /v1/responses "$J" -H 'Idempotency-Key: key-t'
check "re-send after a truncated reply is no duplicate" \
  "$(stat_of '$.duplicate_keys')" = 1
post /v1/responses "$J" -H 'Idempotency-Key: key-t'
check "re-send after a complete reply is one" \
  "$(stat_of '$.duplicate_keys')" = 2
req GET /v1/batches -H 'Idempotency-Key: key-t'
check "GETs are never duplicates" "$(stat_of '$.duplicate_keys')" = 2

# --- admin: PUT /_mock/faults --------------------------------------------
req PUT /_mock/faults --data-binary '503'
check "PUT faults: 200" "$STATUS" = 200
post /v1/responses "$J"
check "runtime fault applies: 503" "$STATUS $(jb '$.error.type')" = \
  "503 server_error"
check "503 message" "$(jb '$.error.message' | cut -c1-24)" = \
  "The server is overloaded"
req PUT /_mock/faults --data-binary 'nonsense#x'
check "PUT bad spec: 400" "$STATUS" = 400
req PUT /_mock/faults --data-binary ''
post /v1/responses "$J"
check "faults cleared: 200" "$STATUS" = 200

# --- log ---------------------------------------------------------------------
n_api=$(stat_of '$.requests')
check "log: one line per API request" "$(wc -l <"$TMP/log")" = "$n_api"
check "log: every line well-formed" "$(grep -cvE \
  '^[0-9]{13} [A-Z]+ /[^ ]* [^ ]+ [0-9]{3} req_[0-9a-f]{32}$' "$TMP/log")" = 0
check "log: idempotency key logged" "$(grep -c ' key-a 200 ' "$TMP/log")" = 2
check "log: request id logged" "$(grep -c " $rid1\$" "$TMP/log")" = 1
check "log: 503 logged" "$(grep -c ' /v1/responses - 503 ' "$TMP/log")" = 1
stop_mock
check "SIGTERM: clean exit" $? = 0

# --- faults by sequence ------------------------------------------------------
SPEC='500#2,503#3-4,429:2500#5,quota#6,shouldretry#7,502html#8,truncate#9'
SPEC="$SPEC,nonjson#10,reset#11,hang#12,slow#13,502#14,504#15,400#16,401#17"
SPEC="$SPEC,409#18,413#19"
start_mock --faults "$SPEC" --log "$TMP/log2"
req GET /v1/batches
req GET /v1/files
check "batch API requests take no online faults" "$STATUS" = 200
post /v1/responses "$J"
check "seq 1 (first online request): no fault" "$STATUS" = 200
post /v1/responses "$J"
check "500#2" "$STATUS $(jb '$.error.type')" = "500 server_error"
post /v1/responses "$J"
s3=$STATUS
post /v1/responses "$J"
check "503#3-4" "$s3 $STATUS" = "503 503"
post /v1/responses "$J"
check "429:2500 -> 429 rate_limit_exceeded" \
  "$STATUS $(jb '$.error.code') $(jb '$.error.type')" = \
  "429 rate_limit_exceeded requests"
check "429:2500 retry-after 3 / 2500 ms" \
  "$(hdr retry-after) $(hdr retry-after-ms)" = "3 2500"
post /v1/responses "$J"
check "quota: 429 insufficient_quota" \
  "$STATUS $(jb '$.error.code') $(jb '$.error.type')" = \
  "429 insufficient_quota insufficient_quota"
check "quota: no retry-after" "$(hdr retry-after)" = ""
post /v1/responses "$J"
check "shouldretry: 500 + x-should-retry false" \
  "$STATUS $(hdr x-should-retry)" = "500 false"
post /v1/responses "$J"
check "502html: text/html" "$STATUS $(hdr content-type)" = "502 text/html"
check "502html: body is HTML" "$(grep -c '<html>' "$TMP/body")" = 1
post /v1/responses "$J"
clen=$(hdr content-length)
check "truncate: 200, complete HTTP" "$STATUS $CURL_RC" = "200 0"
check "truncate: body length = content-length" \
  "$(wc -c <"$TMP/body")" = "$clen"
check "truncate: invalid JSON" "$(jvalid "$TMP/body")" = 0
post /v1/responses "$J"
check "nonjson: 200 invalid JSON" "$STATUS $(jvalid "$TMP/body")" = "200 0"
post /v1/responses "$J"
check "reset: status line sent" "$STATUS" = 200
check "reset: transfer fails" "$CURL_RC" != 0
check "reset: body short of content-length" \
  "$(wc -c <"$TMP/body")" -lt "$(hdr content-length)"
# hang#12 in the background; it must not block request 13.
curl -sS -m 60 -o "$TMP/hang.body" -H 'Content-Type: application/json' \
  --data-binary "$J" "$BASE/v1/responses" 2>/dev/null &
hang_pid=$!
# In flight: it reached the mock (the only request open). This waited for
# requests = 12, which never came (the two batch API requests above count
# too: 14), so it always ran out its 200 polls; on a loaded machine that
# took more than the hang's -m 60, curl gave up, and "hang still open"
# failed.
check "hang#12 reached the mock" "$(wait_stat '$.in_flight' 1 && echo yes)" = yes
post /v1/responses "$J"
check "slow#13 answered while #12 hangs: 200 valid JSON" \
  "$STATUS $CURL_RC $(jvalid "$TMP/body")" = "200 0 1"
check "slow: body complete" "$(jb '$.object')" = response
# The mock counts #13 out of flight after its last byte is sent, when
# curl may already have it all: waited for (bounded), not read at once.
check "hang still open after slow answered" \
  "$(kill -0 $hang_pid 2>/dev/null && echo open) \
$(wait_stat '$.in_flight' 1; stat_of '$.in_flight')" = "open 1"
kill $hang_pid
wait $hang_pid 2>/dev/null
check "hang: nothing was received" \
  "$(test -s "$TMP/hang.body" && echo got || echo none)" = none
check "hang: released once the client gave up" \
  "$(wait_stat '$.in_flight' 0 && echo released)" = released
for f in 502:server_error 504:server_error 400:invalid_request_error \
  401:invalid_request_error 409:invalid_request_error \
  413:invalid_request_error; do
  post /v1/responses "$J"
  check "fault ${f%%:*}" "$STATUS $(jb '$.error.type')" = \
    "${f%%:*} ${f#*:}"
done
check "401 fault: invalid_api_key" "$(jb '$.error.code')" != ""
check "no hang line in log (never answered)" \
  "$(wc -l <"$TMP/log2")" = 20
check "stats by_status" \
  "$(stat_of '$.by_status.503') $(stat_of '$.by_status.429')" = "2 2"
stop_mock
check "clean exit after hang/slow/reset" $? = 0

# --- probabilistic faults are seeded -------------------------------------
seq_of() {
  local out="" i
  start_mock --faults '500@0.5' --seed "$1"
  for i in $(seq 1 20); do
    post /v1/responses "$J"
    out="$out$STATUS,"
  done
  stop_mock
  echo "$out"
}
a=$(seq_of 7)
b=$(seq_of 7)
check "same seed, same fault sequence" "$a" = "$b"
check "@0.5 gives both outcomes" \
  "$(echo "$a" | grep -c 500),$(echo "$a" | grep -c 200)" = "1,1"

# --- scoped rules: files: and batches: count their own requests -------------
start_mock --faults 'batches:503#2,files:502html'
req GET /v1/batches
s1=$STATUS
req GET /v1/batches
check "batches:503#2 hits the 2nd batches request only" "$s1 $STATUS" = \
  "200 503"
req GET /v1/files
check "files:502html hits /v1/files" "$STATUS $(hdr content-type)" = \
  "502 text/html"
post /v1/responses "$J"
check "scoped rules leave online requests alone" "$STATUS" = 200
stop_mock
"$MOCK_BIN" --port 0 --faults 'batches:batch_expire' 2>/dev/null
check "scope prefix only for HTTP kinds: exit 2" $? = 2

# --- time windows ------------------------------------------------------------
start_mock --faults '504~3600-,503~0-3600'
post /v1/responses "$J"
check "~0-3600 applies now, ~3600- does not" "$STATUS" = 503
stop_mock

# --- --require-key -----------------------------------------------------------
KEY=sk-test-SECRET-123
start_mock --require-key "$KEY" --log "$TMP/log3"
post /v1/responses "$J"
check "no key: 401 invalid_api_key" \
  "$STATUS $(jb '$.error.code') $(jb '$.error.type')" = \
  "401 invalid_api_key invalid_request_error"
post /v1/responses "$J" -H 'Authorization: Bearer sk-wrong'
check "wrong key: 401" "$STATUS" = 401
post /v1/responses "$J" -H "Authorization: Bearer $KEY"
check "right key: 200" "$STATUS" = 200
stop_mock
check "key never printed or logged" \
  "$(cat "$TMP/mock.err" "$TMP/log3" | grep -c SECRET)" = 0

# --- rate limits -------------------------------------------------------------
start_mock --rpm 2
post /v1/responses "$J"
r1=$(hdr x-ratelimit-remaining-requests)
post /v1/responses "$J"
r2=$(hdr x-ratelimit-remaining-requests)
check "rpm: limit header" "$(hdr x-ratelimit-limit-requests)" = 2
check "rpm: remaining counts down" "$r1 $r2" = "1 0"
post /v1/responses "$J"
check "rpm: third request 429" \
  "$STATUS $(jb '$.error.type') $(jb '$.error.code')" = \
  "429 requests rate_limit_exceeded"
ra=$(hdr retry-after)
ms=$(hdr retry-after-ms)
check "rpm: retry-after = ceil(retry-after-ms / 1000)" \
  "$ra" = "$(( (ms + 999) / 1000 ))"
check "rpm: retry-after-ms within one refill (30 s)" "$ms" -le 30000
check "rpm: retry-after-ms positive" "$ms" -gt 0
stop_mock
# tokens: each request costs ceil(bytes/4) + 16 output tokens.
cost=$(( (${#J} + 3) / 4 + 16 ))
start_mock --tpm 50
post /v1/responses "$J"
check "tpm: first fits, remaining = limit - cost" \
  "$STATUS $(hdr x-ratelimit-remaining-tokens)" = "200 $((50 - cost))"
post /v1/responses "$J"
check "tpm: second exceeds -> 429 tokens" "$STATUS $(jb '$.error.type')" = \
  "429 tokens"
check "tpm: retry-after sent" "$(hdr retry-after)" -ge 1
stop_mock

# --- latency: requests wait concurrently, not one thread each -------------
# All 40 are in flight at once only if the last connects before the first
# is answered: starting 40 curls takes over 2 s on a loaded machine, so the
# latency leaves far more than that (it was 5 s).
start_mock --latency-ms 12000 --threads 1
pids=()
for i in $(seq 1 40); do
  curl -sS -m 30 -o "$TMP/lat.$i" -H 'Content-Type: application/json' \
    --data-binary "$J" "$BASE/v1/responses" &
  pids+=($!)
done
check "latency: all 40 wait at once on one HTTP thread" \
  "$(wait_stat '$.in_flight' 40 && echo all)" = all
okc=0
for p in "${pids[@]}"; do wait "$p" && okc=$((okc + 1)); done
check "latency: 40 answered" "$okc" = 40
check "latency: all valid" \
  "$(grep -l '"object":"response"' "$TMP"/lat.* | wc -l)" = 40
check "latency: max_in_flight 40" "$(stat_of '$.max_in_flight')" = 40
stop_mock
check "clean exit" $? = 0

finish
