#!/usr/bin/env bash
# sluice-mock Batch API: file upload validation, file get/content/delete/
# list, batch create validation, the full lifecycle with shuffled output,
# listing with after/limit, cancel, and the batch faults (error lines,
# expiry, validation failure, stuck finalizing, failed uploads), logged.
ROOT=${SLUICE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$ROOT/tests/mock/testlib.sh"

N=20
# make_jsonl FILE N [URL]: N valid requests job-1..job-N.
make_jsonl() {
  local i url=${3:-/v1/responses}
  : >"$1"
  for i in $(seq 1 "$2"); do
    if [ "$url" = /v1/chat/completions ]; then
      body="{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\
\"content\":\"q $i\"}]}"
    else
      body="{\"model\":\"gpt-4o-mini\",\"input\":\"question $i\"}"
    fi
    printf '{"custom_id":"job-%d","method":"POST","url":"%s","body":%s}\n' \
      "$i" "$url" "$body" >>"$1"
  done
}
upload() { # upload FILE [purpose]
  req POST /v1/files -F "purpose=${2:-batch}" -F "file=@$1"
}
create_batch() { # create_batch FILE_ID [ENDPOINT] [METADATA_JSON]
  local ep=${2:-/v1/responses} meta=${3:-'{"job":"t"}'}
  post /v1/batches "{\"input_file_id\":\"$1\",\"endpoint\":\"$ep\",\
\"completion_window\":\"24h\",\"metadata\":$meta}"
}
# poll_batch ID STATUS: GET the batch until status (max ~10 s).
poll_batch() {
  local i
  for i in $(seq 1 200); do
    req GET "/v1/batches/$1"
    [ "$(jb '$.status')" = "$2" ] && return 0
    sleep 0.05
  done
  return 1
}
# fetch_file ID DEST: GET content into DEST.
fetch_file() {
  curl -sS -m 10 -o "$2" "$BASE/v1/files/$1/content"
}
# jsonl_field FILE PATH: the field of every line, one per line.
jsonl_field() {
  local line
  while IFS= read -r line; do
    printf '%s' "$line" >"$TMP/line.json"
    jx "$TMP/line.json" "$2"
  done <"$1"
}

start_mock --batch-phase-ms 100 --log "$TMP/log" --seed 3 \
  --batch-max-lines 1000 || { fail startup; finish; }

# --- uploads -----------------------------------------------------------------
make_jsonl "$TMP/in.jsonl" $N
upload "$TMP/in.jsonl"
check "upload: 200" "$STATUS" = 200
FID=$(jb '$.id')
check "upload: file object" "$(jb '$.object') $(jb '$.purpose')" = \
  "file batch"
check "upload: bytes" "$(jb '$.bytes')" = "$(wc -c <"$TMP/in.jsonl")"
check "upload: filename" "$(jb '$.filename')" = in.jsonl
req GET "/v1/files/$FID"
check "GET file" "$STATUS $(jb '$.id')" = "200 $FID"
fetch_file "$FID" "$TMP/back.jsonl"
check "content round-trips" "$(cmp -s "$TMP/in.jsonl" "$TMP/back.jsonl" \
  && echo same)" = same

bad_upload() { # bad_upload NAME EXPECTED_SUBSTRING (file in $TMP/bad.jsonl)
  upload "$TMP/bad.jsonl"
  check "reject $1: 400" "$STATUS $(jb '$.error.type')" = \
    "400 invalid_request_error"
  check "reject $1: message" \
    "$(jb '$.error.message' | grep -c -- "$2")" = 1
}
{ head -1 "$TMP/in.jsonl"; echo 'not json'; } >"$TMP/bad.jsonl"
bad_upload "invalid JSON line" "Line 2"
echo '{"method":"POST","url":"/v1/responses","body":{}}' >"$TMP/bad.jsonl"
bad_upload "missing custom_id" custom_id
echo '{"custom_id":"a","method":"GET","url":"/v1/responses","body":{}}' \
  >"$TMP/bad.jsonl"
bad_upload "method not POST" method
echo '{"custom_id":"a","method":"POST","url":"/v1/models","body":{}}' \
  >"$TMP/bad.jsonl"
bad_upload "unknown url" url
echo '{"custom_id":"a","method":"POST","url":"/v1/responses","body":3}' \
  >"$TMP/bad.jsonl"
bad_upload "body not an object" body
{ head -2 "$TMP/in.jsonl"; head -1 "$TMP/in.jsonl"; } >"$TMP/bad.jsonl"
bad_upload "duplicate custom_id" "Duplicate custom_id 'job-1'"
make_jsonl "$TMP/chat.jsonl" 2 /v1/chat/completions
{ head -1 "$TMP/in.jsonl"; head -1 "$TMP/chat.jsonl" | sed 's/job-1/c-1/'; } \
  >"$TMP/bad.jsonl"
bad_upload "two endpoints in one file" "same url"
{ head -1 "$TMP/in.jsonl"; head -1 "$TMP/in.jsonl" |
  sed 's/job-1/m-1/; s/gpt-4o-mini/gpt-4o/'; } >"$TMP/bad.jsonl"
bad_upload "two models in one file" "model_mismatch"
: >"$TMP/bad.jsonl"
bad_upload "empty file" empty
make_jsonl "$TMP/bad.jsonl" 1001
bad_upload "more than --batch-max-lines" maximum
upload "$TMP/in.jsonl" nonsense
check "reject bad purpose" "$STATUS $(jb '$.error.param')" = "400 purpose"
post /v1/files '{"purpose":"batch"}'
check "reject non-multipart upload" "$STATUS $(jb '$.error.param')" = \
  "400 file"
req POST /v1/files -H 'Content-Type: multipart/form-data' --data-binary x
check "reject multipart without boundary" "$STATUS $(jb '$.error.param')" = \
  "400 file"

# --- batch create validation -----------------------------------------------
create_batch "$FID" /v1/embeddings
check "endpoint must match the file" "$STATUS $(jb '$.error.param')" = \
  "400 endpoint"
create_batch file-nope
check "unknown input file" "$STATUS $(jb '$.error.param')" = \
  "400 input_file_id"
post /v1/batches "{\"input_file_id\":\"$FID\",\"endpoint\":\"/v1/responses\",\
\"completion_window\":\"1h\"}"
check "completion_window must be 24h" "$STATUS" = 400
meta17="{$(for i in $(seq 1 17); do printf '"k%d":"v",' "$i"; done)\"z\":\"v\"}"
create_batch "$FID" /v1/responses "$meta17"
check "metadata: > 16 keys rejected" "$STATUS $(jb '$.error.param')" = \
  "400 metadata"
k65=$(printf 'k%.0s' $(seq 1 65))
create_batch "$FID" /v1/responses "{\"$k65\":\"v\"}"
check "metadata: 65-char key rejected" "$STATUS" = 400
v513=$(printf 'v%.0s' $(seq 1 513))
create_batch "$FID" /v1/responses "{\"k\":\"$v513\"}"
check "metadata: 513-char value rejected" "$STATUS" = 400
v512=$(printf 'v%.0s' $(seq 1 512))
meta16="{$(for i in $(seq 1 15); do printf '"k%d":"v",' "$i"; done)"
meta16="$meta16\"sluice_batch\":\"$v512\"}"

# --- full lifecycle ------------------------------------------------------
create_batch "$FID" /v1/responses "$meta16"
check "create: 200 validating" "$STATUS $(jb '$.status')" = "200 validating"
BID=$(jb '$.id')
check "create: batch object" "$(jb '$.object') $(jb '$.endpoint')" = \
  "batch /v1/responses"
check "create: metadata kept (16 keys, 512-char value)" \
  "$(jb '$.metadata.sluice_batch')" = "$v512"
check "create: expires_at = created_at + 24h" \
  "$(( $(jb '$.expires_at') - $(jb '$.created_at') ))" = 86400
check "create: request_counts.total" "$(jb '$.request_counts.total')" = $N
check "create: model from the input" "$(jb '$.model')" = gpt-4o-mini
poll_batch "$BID" completed
check "batch completes" "$(jb '$.status')" = completed
t0=$(jb '$.created_at') t1=$(jb '$.in_progress_at')
t2=$(jb '$.finalizing_at') t3=$(jb '$.completed_at')
check "timestamps ordered" "$((t0 <= t1 && t1 <= t2 && t2 <= t3))" = 1
check "counts: all completed" \
  "$(jb '$.request_counts.completed') $(jb '$.request_counts.failed')" = \
  "$N 0"
check "no error file" "$(jb '$.error_file_id')" = ""
check "usage summed" "$(jb '$.usage.total_tokens')" -gt 0
OUT=$(jb '$.output_file_id')
fetch_file "$OUT" "$TMP/out.jsonl"
check "output: one line per request" "$(wc -l <"$TMP/out.jsonl")" = $N
jsonl_field "$TMP/out.jsonl" '$.custom_id' >"$TMP/ids"
check "output: every custom_id once" \
  "$(sort -u "$TMP/ids" | wc -l) $(sort "$TMP/ids" | tr '\n' ' ')" = \
  "$N $(seq 1 $N | sed 's/^/job-/' | sort | tr '\n' ' ')"
check "output: shuffled order" "$(tr '\n' ' ' <"$TMP/ids")" != \
  "$(seq 1 $N | sed 's/^/job-/' | tr '\n' ' ')"
check "output: all status 200" \
  "$(jsonl_field "$TMP/out.jsonl" '$.response.status_code' | sort -u)" = 200
check "output: bodies are Response objects" \
  "$(jsonl_field "$TMP/out.jsonl" '$.response.body.object' | sort -u)" = \
  response
check "output: request ids" "$(jsonl_field "$TMP/out.jsonl" \
  '$.response.request_id' | grep -c '^req_')" = $N
check "output: error null" "$(jsonl_field "$TMP/out.jsonl" \
  '$.error' | grep -c .)" = 0
req GET "/v1/files/$OUT"
check "output file purpose" "$(jb '$.purpose')" = batch_output
req POST "/v1/batches/$BID/cancel"
check "cancel a completed batch: 409" "$STATUS" = 409
req GET /v1/batches/batch_nope
check "unknown batch: 404" "$STATUS" = 404

# chat batch + a line whose body the endpoint rejects
make_jsonl "$TMP/chat.jsonl" 3 /v1/chat/completions
printf '%s%s\n' '{"custom_id":"bad-body","method":"POST",' \
  '"url":"/v1/chat/completions","body":{"model":"gpt-4o-mini"}}' \
  >>"$TMP/chat.jsonl"
upload "$TMP/chat.jsonl"
create_batch "$(jb '$.id')" /v1/chat/completions
CB=$(jb '$.id')
poll_batch "$CB" completed
check "chat batch: 3 ok 1 failed" \
  "$(jb '$.request_counts.completed') $(jb '$.request_counts.failed')" = "3 1"
fetch_file "$(jb '$.output_file_id')" "$TMP/cout.jsonl"
check "chat batch: chat.completion bodies" \
  "$(jsonl_field "$TMP/cout.jsonl" '$.response.body.object' | sort -u)" = \
  chat.completion
fetch_file "$(jb '$.error_file_id')" "$TMP/cerr.jsonl"
check "invalid body -> error file, 400" \
  "$(jx "$TMP/cerr.jsonl" '$.custom_id') \
$(jx "$TMP/cerr.jsonl" '$.response.status_code')" = "bad-body 400"

# --- listing: newest first, after/limit --------------------------------------
create_batch "$FID"
B3=$(jb '$.id')
req GET '/v1/batches?limit=2'
check "list: limit 2, newest first" \
  "$(jb '$.data[0].id') $(jb '$.data[1].id') $(jb '$.has_more')" = \
  "$B3 $CB 1"
check "list: first_id/last_id" "$(jb '$.first_id') $(jb '$.last_id')" = \
  "$B3 $CB"
req GET "/v1/batches?limit=2&after=$CB"
check "list: after" "$(jb '$.data[0].id') $(jb '$.has_more')" = "$BID 0"
req GET '/v1/batches?limit=101'
check "list: limit > 100 rejected" "$STATUS" = 400

# --- delete ------------------------------------------------------------------
upload "$TMP/in.jsonl"
DF=$(jb '$.id')
req DELETE "/v1/files/$DF"
check "delete: deleted true" "$STATUS $(jb '$.deleted')" = "200 1"
req GET "/v1/files/$DF"
check "deleted file: 404" "$STATUS" = 404
req GET /v1/files
check "list files excludes deleted" \
  "$(grep -c "$DF" "$TMP/body")" = 0
check "list files includes input" "$(grep -c "$FID" "$TMP/body")" = 1
req GET '/v1/files?purpose=batch_output'
check "list files by purpose" "$(jb '$.data[0].purpose')" = batch_output

# --- log -----------------------------------------------------------------
LINE_RE='^[0-9]{13} (GET|POST|DELETE) /v1/[^ ]+ - [0-9]{3} req_[0-9a-f]{32}$'
check "log: every API request, well-formed" \
  "$(grep -cvE "$LINE_RE" "$TMP/log") $(wc -l <"$TMP/log")" = \
  "0 $(stat_of '$.requests')"
check "log: batch creation logged" \
  "$(grep -c ' POST /v1/batches - 200 ' "$TMP/log")" = 3
stop_mock
check "clean exit" $? = 0

# --- batch faults ------------------------------------------------------------
start_mock --batch-phase-ms 50 \
  --faults 'upload_500#2,batch_error_line#2,batch_error_line:0#3'
make_jsonl "$TMP/f.jsonl" 6
upload "$TMP/f.jsonl"
check "upload #1 fine" "$STATUS" = 200
F1=$(jb '$.id')
upload "$TMP/f.jsonl"
check "upload_500#2" "$STATUS $(jb '$.error.type')" = "500 server_error"
upload "$TMP/f.jsonl"
check "upload #3 fine" "$STATUS" = 200

create_batch "$F1" # batch 1: error lines 2 and 3
E1=$(jb '$.id')
poll_batch "$E1" completed
check "error lines: counts" \
  "$(jb '$.request_counts.completed') $(jb '$.request_counts.failed')" = "4 2"
fetch_file "$(jb '$.error_file_id')" "$TMP/err.jsonl"
fetch_file "$(jb '$.output_file_id')" "$TMP/eout.jsonl"
grep '"job-2"' "$TMP/err.jsonl" >"$TMP/l2.json"
grep '"job-3"' "$TMP/err.jsonl" >"$TMP/l3.json"
check "batch_error_line#2: 500 body" \
  "$(jx "$TMP/l2.json" '$.response.status_code') \
$(jx "$TMP/l2.json" '$.response.body.error.type')" = "500 server_error"
check "batch_error_line:0#3: response null, error object" \
  "$(jx "$TMP/l3.json" '$.response') $(jx "$TMP/l3.json" '$.error.code')" = \
  " server_error"
check "error lines absent from output" \
  "$(grep -c '"job-[23]"' "$TMP/eout.jsonl")" = 0

# Line rules apply to every batch: keep only the batch-level ones now.
req PUT /_mock/faults \
  --data-binary 'batch_expire#2,batch_validation#3,batch_stuck#4'
create_batch "$F1" # batch 2: expires
E2=$(jb '$.id')
poll_batch "$E2" expired
check "batch_expire: expired" "$(jb '$.status')" = expired
check "batch_expire: expired_at set" "$(jb '$.expired_at')" -gt 0
check "batch_expire: half done" "$(jb '$.request_counts.completed')" = 3
fetch_file "$(jb '$.output_file_id')" "$TMP/xout.jsonl"
check "batch_expire: done lines in output" "$(wc -l <"$TMP/xout.jsonl")" = 3
check "batch_expire: no error file" "$(jb '$.error_file_id')" = ""

create_batch "$F1" # batch 3: validation fails
E3=$(jb '$.id')
poll_batch "$E3" failed
check "batch_validation: failed" "$(jb '$.status')" = failed
check "batch_validation: token_limit_exceeded" \
  "$(jb '$.errors.data[0].code')" = token_limit_exceeded
check "batch_validation: no output" "$(jb '$.output_file_id')" = ""
check "batch_validation: failed_at" "$(jb '$.failed_at')" -gt 0

create_batch "$F1" # batch 4: stuck in finalizing
E4=$(jb '$.id')
poll_batch "$E4" finalizing
check "batch_stuck: reaches finalizing" "$(jb '$.status')" = finalizing
sleep 0.5 # ten phases
req GET "/v1/batches/$E4"
check "batch_stuck: still finalizing" "$(jb '$.status')" = finalizing
check "batch_stuck: output not visible yet" "$(jb '$.output_file_id')" = ""
req PUT /_mock/faults --data-binary ''
poll_batch "$E4" completed
check "batch_stuck: completes once the rule is cleared" \
  "$(jb '$.status')" = completed

# cancel: a stuck batch is cancellable and ends cancelled
req PUT /_mock/faults --data-binary 'batch_stuck'
create_batch "$F1"
E5=$(jb '$.id')
poll_batch "$E5" finalizing
req POST "/v1/batches/$E5/cancel"
check "cancel: cancelling" "$STATUS $(jb '$.status')" = "200 cancelling"
check "cancel: cancelling_at" "$(jb '$.cancelling_at')" -gt 0
poll_batch "$E5" cancelled
check "cancel: cancelled" "$(jb '$.status')" = cancelled
check "cancel: cancelled_at" "$(jb '$.cancelled_at')" -gt 0
stop_mock
check "clean exit after faults" $? = 0

# --- --batch-max-bytes -----------------------------------------------------
start_mock --batch-max-bytes 200
upload "$TMP/f.jsonl"
check "file over --batch-max-bytes: 400 file_too_large" \
  "$STATUS $(jb '$.error.code')" = "400 file_too_large"
head -1 "$TMP/f.jsonl" >"$TMP/one.jsonl"
upload "$TMP/one.jsonl"
check "file under --batch-max-bytes: 200" "$STATUS" = 200
stop_mock
check "clean exit" $? = 0

finish
