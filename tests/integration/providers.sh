#!/usr/bin/env bash
# Providers: --header lines (flags and config) on every API call, online and
# batch; --auth-header api-key and a base URL with a query string, as Azure
# OpenAI's v1 API wants; servers that need no key. And the startup checks
# of sluice work: exit 2 with the reason (4 when the setting came from the
# config file or environment).
. "$(dirname "$0")/../lib/testlib.sh"

work() {
  timeout 60 "$SLUICE" work --exit-when-idle --backoff-base 10ms \
    --backoff-cap 50ms --poll 100ms "$@" 2>>"$T/worker.log"
}
"$SLUICE" init >/dev/null

# --- --header, from flags: every online and batch call carries them
start_mock --log "$T/h.log" --log-header OpenAI-Organization --batch-phase-ms 50 ||
  { fail "the mock starts with --log-header"; finish; }
"$SLUICE" enqueue '{"model":"m","input":"x"}' >/dev/null
"$SLUICE" enqueue -u deferrable '{"model":"m","input":"y"}' >/dev/null
work --base-url "$MOCK_URL" --header 'OpenAI-Organization: org-123' \
  --header 'OpenAI-Project: proj_9' --batch-max-wait 100ms --batch-poll 100ms
eq "worker with --header: exit 0" 0 $?
eq "both jobs succeeded" 2 "$(sql "SELECT count(*) FROM jobs WHERE state = 'succeeded'")"
check "the online call carried the header" \
  grep -q ' /v1/responses .* org-123$' "$T/h.log"
check "batch calls carried it too" grep -q ' /v1/batches .* org-123$' "$T/h.log"
eq "no API call without it" 0 "$(grep -vc ' org-123$' "$T/h.log")"
stop_mock

# --- --header from the config file
start_mock --log "$T/h2.log" --log-header OpenAI-Project
printf '[work]\nheader = OpenAI-Project: proj_from_file\n' >"$T/w.ini"
"$SLUICE" enqueue '{"model":"m","input":"z"}' >/dev/null
work --config "$T/w.ini" --base-url "$MOCK_URL" --no-batch
check "a header from sluice.conf is sent" grep -q ' /v1/responses .* proj_from_file$' "$T/h2.log"
stop_mock

# --- Azure OpenAI v1: api-key header, ?api-version kept, /openai prefix
KEY="0123456789abcdef0123456789abcdef"
start_mock --log "$T/az.log" --path-prefix /openai --require-key "$KEY" \
  --key-header api-key --require-arg api-version=preview
AZ="http://127.0.0.1:$MOCK_PORT/openai/v1/?api-version=preview"
reset_journal
"$SLUICE" enqueue '{"model":"m","input":"azure"}' >/dev/null
OPENAI_API_KEY="$KEY" work --base-url "$AZ" --auth-header api-key --no-batch
eq "Azure form: the job succeeded" succeeded "$(sql 'SELECT state FROM jobs')"
eq "... with one call to /v1/responses under /openai, 200" "POST /v1/responses 200" \
  "$(awk '$3 == "/v1/responses" {print $2, $3, $5}' "$T/az.log")"
reset_journal
"$SLUICE" enqueue '{"model":"m","input":"azure"}' >/dev/null
OPENAI_API_KEY="$KEY" work --base-url "$AZ" --no-batch
eq "without --auth-header api-key the mock refuses: auth pauses the route" \
  "pending|auth|1" \
  "$(sql "SELECT state || '|' || last_class || '|' || (SELECT online_paused FROM queue_limits) FROM jobs")"
sql "DELETE FROM queue_limits"
reset_journal
"$SLUICE" enqueue '{"model":"m","input":"azure"}' >/dev/null
OPENAI_API_KEY="$KEY" work --base-url "http://127.0.0.1:$MOCK_PORT/openai/v1/" \
  --auth-header api-key --no-batch
eq "without ?api-version the mock refuses (the query string matters)" \
  "failed|invalid_request" "$(sql "SELECT state || '|' || last_class FROM jobs")"
check "the key never reaches the log" bash -c "! grep -q '$KEY' '$T/worker.log'"
stop_mock

# --- which servers need a key: api.openai.com and *.openai.azure.com
for url in https://api.openai.com/v1 https://myres.openai.azure.com/openai/v1/; do
  "$SLUICE" work --base-url "$url" --exit-when-idle >/dev/null 2>"$T/err"
  eq "no key for $url: exit 4" 4 $?
  check "... says a key is required and where from" grep -q "no API key" "$T/err"
done
# The rule is stated the same way in --help, the README and sluice(1).
norm() { tr -s ' \n' '  ' <"$1" | sed -e 's/\\-/-/g' -e 's/\*\*//g' -e 's/`//g' -e 's/ \.BR* / /g'; }
"$SLUICE" work --help >"$T/help"
for f in "$T/help" "$SLUICE_ROOT/README.md" "$SLUICE_ROOT/man/sluice.1"; do
  if norm "$f" | grep -q "required when the base URL's host is api.openai.com or ends in .openai.azure.com"; then
    pass "the key rule is stated in $(basename "$f")"
  else
    fail "the key rule is stated in $(basename "$f")"
  fi
done
start_mock
reset_journal
"$SLUICE" enqueue '{"model":"m","input":"x"}' >/dev/null
work --base-url "$MOCK_URL" --no-batch
eq "a server that needs no key (vLLM, Ollama, the mock): runs without one" \
  succeeded "$(sql 'SELECT state FROM jobs')"

# --- startup checks: exit 2 with the reason, before anything else
bad() { # name pattern args...
  local name=$1 pat=$2
  shift 2
  timeout 20 "$SLUICE" work --exit-when-idle "$@" >/dev/null 2>"$T/err"
  eq "$name: exit 2" 2 $?
  check "$name: the reason" grep -q -- "$pat" "$T/err"
}
bad "metrics port in use" "metrics-port $MOCK_PORT" --base-url "$MOCK_URL" --metrics-port "$MOCK_PORT"
bad "base URL not http(s)" "not an http:// or https:// URL" --base-url "ftp://example.com/v1"
bad "base URL with no host" "has no host" --base-url "http:///v1"
bad "base URL with a space" "space or control" --base-url "http://a b/v1"
bad "--backoff-base above --backoff-cap" "above --backoff-cap" \
  --base-url "$MOCK_URL" --backoff-base 2s --backoff-cap 1s
bad "an empty queue name" "--queue is empty" --base-url "$MOCK_URL" --queue ""
bad "a malformed --header" "Name: value" --base-url "$MOCK_URL" --header "no colon"
bad "--header Authorization (the key has its own door)" "set by sluice itself" \
  --base-url "$MOCK_URL" --header "Authorization: Bearer x"
bad "--auth-header of another name" "authorization" --base-url "$MOCK_URL" --auth-header x-key
OPENAI_BASE_URL="ftp://x" "$SLUICE" work --exit-when-idle >/dev/null 2>"$T/err"
eq "a bad \$OPENAI_BASE_URL: exit 4 (the environment)" 4 $?
check "... names where it came from" grep -q 'OPENAI_BASE_URL' "$T/err"
printf '[work]\nbackoff-base = 5s\nbackoff-cap = 1s\n' >"$T/b.ini"
"$SLUICE" work --config "$T/b.ini" --base-url "$MOCK_URL" --exit-when-idle >/dev/null 2>"$T/err"
eq "backoff base above cap in sluice.conf: exit 4" 4 $?
check "... names the file and line" grep -q "b.ini:3" "$T/err"
stop_mock
finish
