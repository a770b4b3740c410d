#!/usr/bin/env bash
# sluice dashboard: every page in headless Chromium (tests/browser/
# dashboard.py: search, detail, pause/resume and replay through clicks with
# their confirmations, then the journal checked with sqlite3); a hostile
# queue name and body render as text and run nothing; a POST without the
# CSRF token is refused and changes nothing; loopback only unless
# --token-file; bearer token and sign-in; --read-only has no actions;
# `sluice work --dashboard-port` shows the worker's live state.
# Screenshots land in build/screenshots/.
. "$(dirname "$0")/../lib/testlib.sh"

PY=/usr/bin/python3
SHOTS="$SLUICE_ROOT/build/screenshots"
# shellcheck disable=SC2016 # backquotes are part of the hostile name
export XSS_QUEUE='<img src=x onerror="window.pwned=1;document.title=`pwned`">'
# A key of the real shape, made for this run (none is committed).
SECRET_KEY="sk-proj-$(od -An -N18 -tx1 /dev/urandom | tr -d ' \n')"
export SECRET_KEY
now=$(($(date +%s) * 1000))

# ---------------------------------------------------------------- journal
"$SLUICE" init >/dev/null
for i in 1 2 3 4 5 6; do printf '{"model":"m","input":"job %d"}\n' "$i"; done |
  "$SLUICE" enqueue -q default >/dev/null
printf '{"model":"m","input":"<script>window.pwned2=1</script>"}\n' |
  "$SLUICE" enqueue -q "$XSS_QUEUE" >/dev/null
"$SLUICE" enqueue -q meta -M '{"tenant":"acme","note":"<svg onload=window.pwned=1>"}' \
  '{"model":"m","input":"with metadata"}' >/dev/null
"$SLUICE" enqueue -q default -k key-succeeded '{"model":"m","input":"ok"}' >/dev/null
sql "
UPDATE jobs SET state='failed', attempts=1, last_class='server_error',
  last_error='HTTP 500: <b onmouseover=alert(1)>boom</b>', finished_at=$now - 60000
  WHERE id IN (1, 2, 3);
UPDATE jobs SET state='failed', attempts=1, last_class='rate_limited',
  last_error='429', finished_at=$now - 7200000 WHERE id = 4;
INSERT INTO attempts (job_id, attempt, generation, route, started_at,
  finished_at, http_status, failure_class, request_id, dns_ms, connect_ms,
  tls_ms, first_byte_ms, total_ms, error)
  SELECT id, 1, 0, 'online', $now - 61000, finished_at,
    CASE last_class WHEN 'server_error' THEN 500 ELSE 429 END, last_class,
    'req_dash_' || id, 1.5, 3.2, 8.0, 120.0, 140.0, last_error
  FROM jobs WHERE state = 'failed';
UPDATE jobs SET state='running' WHERE idempotency_key = 'key-succeeded';
UPDATE jobs SET state='succeeded', attempts=1, finished_at=$now - 30000
  WHERE idempotency_key = 'key-succeeded';
INSERT INTO attempts (job_id, attempt, generation, route, finished_at,
  http_status, request_id, dns_ms, connect_ms, tls_ms, first_byte_ms, total_ms)
  SELECT id, 1, 0, 'online', $now - 30000, 200, 'req_ok', 1, 2, 3, 50, 60
  FROM jobs WHERE idempotency_key = 'key-succeeded';
INSERT INTO results (job_id, generation, route, http_status, request_id,
  input_tokens, output_tokens, total_tokens, body, created_at)
  SELECT id, 0, 'online', 200, 'req_ok', 5, 7, 12,
    '{\"object\":\"response\",\"output\":[{\"type\":\"message\",\"content\":[{\"type\":\"output_text\",\"text\":\"Hello from the mock\"}]}]}',
    $now - 30000 FROM jobs WHERE idempotency_key = 'key-succeeded';
-- A journal written before secrets were scrubbed may hold the key.
UPDATE jobs SET last_error = 'echoed: Bearer $SECRET_KEY' WHERE id = 4;
INSERT INTO batches (endpoint, state, remote_batch_id, remote_status,
  request_count, submitted_at) VALUES ('/v1/responses', 'submitted',
  'batch_<i>remote</i>', 'in_progress', 2, $now - 3600000);
INSERT INTO rate_buckets (endpoint, model, rpm, tpm, req_level)
  VALUES ('/v1/responses', 'm', 500, 100000, 42);
INSERT INTO route_limits (endpoint, model, climit, failing, cuts, last_class)
  VALUES ('/v1/responses', 'm', 2.5, 1, 3, 'overloaded');
INSERT INTO breakers (endpoint, model, state, trips, last_class)
  VALUES ('/v1/responses', 'm', 'open', 1, 'server_error');
"

# start_dashboard LOG ARGS...: sets DASH_PID and DASH_URL (bounded wait).
start_dashboard() {
  local log=$1
  shift
  OPENAI_API_KEY="$SECRET_KEY" "$SLUICE" dashboard "$@" 2>"$log" &
  DASH_PID=$!
  PIDS+=("$DASH_PID")
  wait_for 10 grep -q "dashboard on http" "$log" || { cat "$log"; return 1; }
  DASH_URL=$(grep -o 'http://[^ ]*' "$log" | head -1)
}
stop_dashboard() { # SIGTERM: exit 0 (under ASan: and no leak)
  kill -TERM "$DASH_PID" 2>/dev/null
  wait "$DASH_PID"
  eq "the dashboard stops cleanly on SIGTERM ($1)" 0 $?
}
code() { curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$@"; }

start_dashboard "$T/dash.log" --listen 127.0.0.1:0
U=$DASH_URL

# ----------------------------------------------------------- HTTP checks
curl -s --max-time 10 -D "$T/h.txt" -o "$T/o.html" "$U"
check "strict Content-Security-Policy, no inline script" \
  grep -qi "^content-security-policy: default-src 'none'; script-src 'self'" "$T/h.txt"
# Parsed as a browser would: no on* attribute, no script with a body, no
# <img> (the hostile queue name is on this page).
no_inline() {
  $PY - "$1" <<'PYEOF'
import sys
from html.parser import HTMLParser
bad = []
class P(HTMLParser):
    def __init__(self):
        super().__init__()
        self.in_script = False
    def handle_starttag(self, tag, attrs):
        bad.extend(tag + ' ' + k for k, v in attrs if k.startswith('on'))
        if tag == 'img':
            bad.append('img')
        self.in_script = tag == 'script'
    def handle_endtag(self, tag):
        self.in_script = False
    def handle_data(self, data):
        if self.in_script and data.strip():
            bad.append('inline script')
P().feed(open(sys.argv[1], encoding='utf-8').read())
print(bad)
sys.exit(1 if bad else 0)
PYEOF
}
check "no inline script, event handler or <img> in the page" no_inline "$T/o.html"
check "the script is served from the binary" \
  bash -c "curl -s --max-time 10 ${U}static/dashboard.js | grep -q addEventListener"
before=$(sql "SELECT count(*) FROM dashboard_actions")
eq "a POST without a CSRF token is refused" 403 \
  "$(code -X POST -d 'queue=default&confirm=1' "${U}action/pause")"
eq "a POST with a wrong CSRF token is refused" 403 \
  "$(code -X POST -d "csrf=$(printf '0%.0s' $(seq 64))&queue=default&confirm=1" "${U}action/pause")"
eq "a refused POST paused nothing" 0 \
  "$(sql "SELECT count(*) FROM queues WHERE paused = 1")"
eq "a refused POST left no audit row" "$before" \
  "$(sql "SELECT count(*) FROM dashboard_actions")"
csrf=$(grep -o 'name="csrf" value="[0-9a-f]*"' "$T/o.html" | head -1 | grep -o '[0-9a-f]\{64\}')
check "forms carry a CSRF token" test -n "$csrf"
curl -s --max-time 10 -X POST -d "csrf=$csrf&queue=default" "${U}action/pause" >"$T/c.html"
check "without confirm=1 an action only asks for confirmation" \
  grep -q 'id="question">Pause queue' "$T/c.html"
eq "the confirmation page paused nothing" 0 \
  "$(sql "SELECT count(*) FROM queues WHERE paused = 1")"
eq "a foreign Host header is refused (DNS rebinding)" 403 \
  "$(code -H 'Host: evil.example' "$U")"
curl -s --max-time 10 "${U}job?id=4" >"$T/j4.html"
check "a key the journal still holds is shown [redacted]" \
  grep -q 'echoed: Bearer \[redacted\]' "$T/j4.html"
check "... and never as itself" bash -c "! grep -q '$SECRET_KEY' '$T/j4.html'"
curl -s --max-time 10 "${U}jobs?state=failed&queue=default&class=rate_limited" >"$T/f.html"
check "a failed-jobs search offers to replay them (the count comes next)" \
  grep -q '<form method="post" action="/action/replay" id="replay-these">' "$T/f.html"
check "... with the search's queue and class" \
  bash -c "grep -q 'name=\"queue\" value=\"default\"' '$T/f.html' && grep -q 'name=\"class\" value=\"rate_limited\"' '$T/f.html'"
curl -s --max-time 10 "${U}jobs?state=failed&since=1h" >"$T/f2.html"
check "... but not for a filter replay cannot express" \
  bash -c "! grep -q 'id=\"replay-these\"' '$T/f2.html'"
eq "an unknown page is 404" 404 "$(code "${U}nope")"
eq "a bad search is a clear 400" 400 "$(code "${U}jobs?state=bogus")"
eq "a missing job is 404" 404 "$(code "${U}job?id=999999")"
eq "a replay of an unknown class is refused" 400 \
  "$(code -X POST -d "csrf=$csrf&class=nonsense&confirm=1" "${U}action/replay")"
# A replay confirmed for a count that no longer matches is refused.
eq "a replay confirmed for another count is refused" 409 \
  "$(code -X POST -d "csrf=$csrf&class=rate_limited&expect=5&confirm=1" "${U}action/replay")"
eq "... and replays nothing" 1 \
  "$(sql "SELECT count(*) FROM jobs WHERE state='failed' AND last_class='rate_limited'")"
eq "... and leaves an audit row saying why" 1 \
  "$(sql "SELECT count(*) FROM dashboard_actions WHERE action='replay' AND outcome LIKE '1 jobs match now, not the 5 confirmed%'")"
eq "cancelling a finished job is refused with a reason" 409 \
  "$(code -X POST -d "csrf=$csrf&id=1&confirm=1" "${U}action/cancel")"
eq "the refusal left an audit row with its reason" 1 \
  "$(sql "SELECT count(*) FROM dashboard_actions WHERE action='cancel' AND job_id=1 AND outcome LIKE 'job 1 is failed%'")"

# qcell URL QUEUE N: the Nth cell (0: the name) of QUEUE's overview row.
qcell() {
  curl -s --max-time 10 "$1" | $PY -c '
import sys
from html.parser import HTMLParser
want, col = sys.argv[1], int(sys.argv[2])
rows, row, cell = [], None, None
class P(HTMLParser):
    def handle_starttag(self, tag, attrs):
        global row, cell
        if tag == "tr": row = []
        if tag == "td" and row is not None: cell = ""
    def handle_endtag(self, tag):
        global row, cell
        if tag == "td" and row is not None and cell is not None:
            row.append(cell.strip()); cell = None
        if tag == "tr" and row is not None: rows.append(row); row = None
    def handle_data(self, d):
        global cell
        if cell is not None: cell += d
P().feed(sys.stdin.read())
print(next((r[col] for r in rows if r and r[0] == want), ""))' "$2" "$3"
}
eq "the overview counts the meta queue's pending job" 1 "$(qcell "$U" meta 1)"
"$SLUICE" enqueue -q meta '{"model":"m","input":"one more"}' >/dev/null
meta_counted() { [ "$(qcell "$U" meta 1)" = 2 ]; }
check "a job enqueued elsewhere shows in the counts within seconds" wait_for 10 meta_counted

# ------------------------------------------------------------- browser
if [ -x /usr/lib/chromium/chromium ] && [ -x /usr/bin/chromedriver ] &&
  $PY -c 'import selenium' 2>/dev/null; then
  mkdir -p "$T/profile" "$SHOTS"
  # Its own process group, so chromedriver and Chromium go with it.
  setsid timeout --kill-after=5 240 $PY "$SLUICE_ROOT/tests/browser/dashboard.py" \
    "$U" "$SLUICE_JOURNAL" "$SHOTS" "$T/profile" >"$T/browser.log" 2>&1 &
  bp=$!
  PIDS+=("$bp")
  wait "$bp"
  brc=$?
  kill -9 -- "-$bp" 2>/dev/null
  cat "$T/browser.log"
  eq "the browser script finished" 0 "$brc"
  check "the browser printed its checks" grep -q '^PASS: ' "$T/browser.log"
  check "screenshots saved under build/screenshots" test -s "$SHOTS/overview.png"
else
  fail "headless Chromium, chromium-driver and python3-selenium installed" \
    "run deploy/install-deps.sh"
fi

# -------------------------------------------- the journal after the clicks
eq "pause and resume left two audit rows" "pause:ok resume:ok" \
  "$(sql "SELECT group_concat(action || ':' || outcome, ' ') FROM (SELECT action, outcome FROM dashboard_actions WHERE action IN ('pause','resume') ORDER BY id)")"
eq "the replay is in the replays audit (door api)" "api|server_error|3" \
  "$(sql "SELECT door, failure_class, replayed FROM replays WHERE job_ids IS NULL")"
eq "the one-job replay is there too, with its id" "api|1|1" \
  "$(sql "SELECT door, json_array_length(job_ids), replayed FROM replays WHERE job_ids IS NOT NULL")"
eq "the replay left a dashboard audit row with its filter" "server_error|3" \
  "$(sql "SELECT json_extract(filter, '\$.failure_class'), affected FROM dashboard_actions WHERE action='replay' AND outcome='ok'")"
eq "the replayed jobs kept their idempotency keys" 3 \
  "$(sql "SELECT count(*) FROM jobs WHERE generation >= 1 AND idempotency_key IS NOT NULL AND id IN (1,2,3)")"
eq "a succeeded job was not touched" "succeeded|0" \
  "$(sql "SELECT state, generation FROM jobs WHERE idempotency_key='key-succeeded'")"
check "no page showed the API key" bash -c "! grep -rq '$SECRET_KEY' '$T'/*.html"
stop_dashboard loopback

# ------------------------------------------------ listening and the token
out=$("$SLUICE" dashboard --listen 0.0.0.0:0 2>&1)
eq "a non-loopback --listen without --token-file exits 2" 2 $?
check "and says why" grep -q "not a loopback address" <<<"$out"
printf 'short\n' >"$T/short.tok"
"$SLUICE" dashboard --listen 0.0.0.0:0 --token-file "$T/short.tok" 2>/dev/null
eq "a token under 16 characters is refused" 2 $?
printf 'abcdefgh ijklmnop;q\n' >"$T/bad.tok"
out=$("$SLUICE" dashboard --listen 0.0.0.0:0 --token-file "$T/bad.tok" 2>&1)
eq "a token with spaces or ; is refused (exit 2)" 2 $?
check "and the message does not echo the token" bash -c "! grep -q ijklmnop <<<'$out'"
tok="tok-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '%s\n' "$tok" >"$T/dash.tok"
chmod 600 "$T/dash.tok"
start_dashboard "$T/dash2.log" --listen 0.0.0.0:0 --token-file "$T/dash.tok"
port=${DASH_URL##*:}
port=${port%/}
U="http://127.0.0.1:$port/"
eq "without the token a page redirects to the sign-in" 303 "$(code "$U")"
eq "without the token a POST is refused" 401 \
  "$(code -X POST -d 'queue=default&confirm=1' "${U}action/pause")"
eq "a wrong bearer token is refused" 303 "$(code -H "Authorization: Bearer nope-nope-nope-nope" "$U")"
eq "the bearer token opens the overview" 200 "$(code -H "Authorization: Bearer $tok" "$U")"
eq "a wrong sign-in is refused" 401 "$(code -X POST -d 'token=wrong' "${U}login")"
curl -s --max-time 10 -c "$T/jar" -o /dev/null -X POST --data-urlencode "token=$tok" "${U}login"
eq "signing in sets a cookie that opens the pages" 200 "$(code -b "$T/jar" "${U}failures")"
check "the cookie is HttpOnly and SameSite=Strict" grep -q '#HttpOnly_' "$T/jar"
check "the token never appears in the log" bash -c "! grep -q '$tok' '$T/dash2.log'"
stop_dashboard token

# --------------------------------------------------------------- read-only
start_dashboard "$T/dash3.log" --listen 127.0.0.1:0 --read-only
curl -s --max-time 10 -o "$T/ro.html" "$DASH_URL"
check "read-only pages render" grep -q '<h1>Overview</h1>' "$T/ro.html"
check "read-only pages have no action forms" bash -c "! grep -q 'action=\"/action/' '$T/ro.html'"
eq "read-only refuses every action" 403 \
  "$(code -X POST -d 'queue=default&confirm=1' "${DASH_URL}action/pause")"
stop_dashboard read-only

# ------------------------------------------------- inside the worker
start_mock
OPENAI_API_KEY="$SECRET_KEY" "$SLUICE" work --base-url "$MOCK_URL" \
  --dashboard-port 0 --poll 100ms 2>"$T/work.log" &
wp=$!
PIDS+=("$wp")
wait_for 10 grep -q "dashboard on http" "$T/work.log"
WU=$(grep -o 'dashboard on http://[0-9.:]*/' "$T/work.log" | head -1 | cut -d' ' -f3)
eq "the worker serves the dashboard" 200 "$(code "$WU")"
curl -s --max-time 10 "$WU" >"$T/w.html"
check "the worker's overview shows its live state" grep -q 'id="in-flight"' "$T/w.html"
check "the worker's overview shows the route's breaker" \
  grep -Eq 'breaker /v1/responses m <b>(open|half_open|closed)</b>' "$T/w.html"
check "the worker's overview shows the route's adaptive limit" \
  grep -q 'adaptive limit <b class="climit">[0-9.]*</b>' "$T/w.html"
curl -s --max-time 10 "${WU}limits" >"$T/wl.html"
check "the limits page lists the adaptive route limit" \
  grep -q '<tr class="route"><td>/v1/responses</td><td>m</td>' "$T/wl.html"
check "the worker's pages never show the API key" bash -c "! grep -q '$SECRET_KEY' '$T/w.html'"
kill -TERM "$wp" 2>/dev/null
wait "$wp"
eq "the worker with a dashboard stops cleanly" 0 $?

# ------------------------------------------------ the systemd example
if command -v systemd-analyze >/dev/null 2>&1; then
  mkdir -p "$T/units" "$T/man/man1"
  sed "s|/usr/local/bin/sluice|$SLUICE|" "$SLUICE_ROOT/deploy/sluice-dashboard.service" \
    >"$T/units/sluice-dashboard.service"
  cp "$SLUICE_ROOT/man/sluice.1" "$T/man/man1/"
  out=$(MANPATH="$T/man" SYSTEMD_LOG_COLOR=0 systemd-analyze verify \
    "$T/units/sluice-dashboard.service" 2>&1)
  eq "systemd-analyze verify sluice-dashboard.service: clean" "0:" "$?:$out"
fi
check "the unit's command line names flags sluice dashboard knows" \
  bash -c "for f in \$(sed -n '/^ExecStart=/,/[^\\\\]\$/p' '$SLUICE_ROOT/deploy/sluice-dashboard.service' | grep -o -- '--[a-z-]*'); do '$SLUICE' dashboard --help | grep -q -- \"\$f\" || exit 1; done"
finish
