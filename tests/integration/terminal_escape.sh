#!/usr/bin/env bash
# Journal text reaches a terminal escaped (issue 10): rows that got in
# before the SQL door's checks (both door triggers dropped, as in a journal built
# before migration 0003) hold ESC, newlines, CR, BEL and DEL in queue and
# partition names, errors, remote batch ids and storm state; `sluice
# status`, `show`, `pause` and error reports print them as \x1b, \n, ...,
# never raw. `sluice enqueue` refuses such names and streaming bodies.
. "$(dirname "$0")/../lib/testlib.sh"

# no_ctl FILE: no control byte but the newlines ending lines
no_ctl() { ! LC_ALL=C grep -q '[[:cntrl:]]' "$1"; }

"$SLUICE" init >/dev/null
red="'red' || char(27) || '[31m' || char(10) || 'x'"
sql "DROP TRIGGER jobs_insert_door; DROP TRIGGER jobs_update_door;
  INSERT INTO jobs (queue, partition, body)
  VALUES ($red, 'p' || char(13) || char(7) || char(127),
          '{\"model\":\"gpt\\u001b[0m\"}');
  UPDATE jobs SET state = 'failed', last_class = 'server_error',
    last_error = 'boom' || char(27) || '[2J', finished_at = 1;
  INSERT INTO batches (endpoint, state, remote_batch_id, remote_status)
  VALUES ('/v1/responses', 'submitted', 'batch_' || char(27) || ']0;owned',
          'in_progress' || char(7));
  INSERT INTO queue_limits (queue, online_paused, online_paused_reason)
  VALUES ($red, 1, 'quota' || char(27) || '[2J');
  INSERT INTO usage_daily (queue, day, jobs, total_tokens)
  VALUES ($red, CAST((julianday('now') - 2440587.5) AS INTEGER), 1, 10);
  INSERT INTO breakers (endpoint, model, state, trips, last_class)
  VALUES ('/v1/responses', 'gpt' || char(27) || '[0m', 'open', 1,
          'server' || char(10) || 'error');
  INSERT INTO rate_buckets (endpoint, model, rpm)
  VALUES ('/v1/responses', 'gpt' || char(27) || '[0m', 60);"
eq "the hostile row is in" 1 "$(sql "SELECT count(*) FROM jobs
  WHERE queue = $red")"

"$SLUICE" status >"$T/status.out" 2>"$T/status.err"
eq "status exits 0" 0 $?
check "status prints no control byte" no_ctl "$T/status.out"
check "status queue row is one escaped line" \
  grep -q '^red\\x1b\[31m\\nx  *0  *0  *0  *0  *1 ' "$T/status.out"
check "status has no line broken by the name" \
  bash -c "! grep -q '^x ' '$T/status.out'"
check "status batch remote id escaped" \
  grep -qF 'batch_\x1b]0;owned' "$T/status.out"
check "status batch remote status escaped" \
  grep -qF 'in_progress\x07' "$T/status.out"
check "status pause reason escaped" grep -qF 'quota\x1b[2J' "$T/status.out"
check "status breaker escaped" grep -qF 'server\nerror' "$T/status.out"
check "status bucket model escaped" grep -qF 'gpt\x1b[0m' "$T/status.out"

"$SLUICE" show 1 >"$T/show.out" 2>&1
eq "show exits 0" 0 $?
check "show prints no control byte" no_ctl "$T/show.out"
check "show queue and partition escaped" \
  grep -qF 'red\x1b[31m\nx  partition p\r\x07\x7f' "$T/show.out"
check "show last error escaped" grep -qF 'boom\x1b[2J' "$T/show.out"
check "show model escaped" grep -qF '(model gpt\x1b[0m)' "$T/show.out"

# An argument echoed back, and a C1 control (U+009B, CSI on some terminals).
"$SLUICE" pause $'q\x1b[5m\xc2\x9b' >"$T/pause.out" 2>&1
eq "pause exits 0" 0 $?
check "pause echo escaped" grep -qF 'paused q\x1b[5m\u009b' "$T/pause.out"
check "pause prints no control byte" no_ctl "$T/pause.out"

# A bad value from a config file is quoted back escaped.
printf '[work]\nconcurrency = 1\033[31m\n' >"$T/bad.ini"
"$SLUICE" work --config "$T/bad.ini" >"$T/work.out" 2>&1
eq "work refuses the bad config value (exit 4)" 4 $?
check "work quotes the value escaped" grep -qF "got '1\x1b[31m'" "$T/work.out"
check "work prints no control byte" no_ctl "$T/work.out"

# The producer doors of the CLI refuse what the SQL door refuses (a journal
# of its own: the one above lost its insert trigger).
export SLUICE_JOURNAL="$T/door.db"
"$SLUICE" init >/dev/null
before=$(sql 'SELECT count(*) FROM jobs')
"$SLUICE" enqueue -q $'a\nb' '{"model":"m"}' >/dev/null 2>"$T/e1.err"
eq "enqueue refuses a newline in the queue (exit 1)" 1 $?
check "enqueue names the queue problem" \
  grep -q 'queue must not contain control characters' "$T/e1.err"
"$SLUICE" enqueue -P $'t\x1b' '{"model":"m"}' >/dev/null 2>"$T/e2.err"
eq "enqueue refuses ESC in the partition (exit 1)" 1 $?
check "enqueue names the partition problem" \
  grep -q 'partition must not contain control characters' "$T/e2.err"
"$SLUICE" enqueue '{"model":"m","stream":true}' >/dev/null 2>"$T/e3.err"
eq "enqueue refuses a streaming body (exit 1)" 1 $?
check "enqueue names the streaming problem" \
  grep -qF 'streaming is not supported; remove "stream": true' "$T/e3.err"
printf '{"model":"m"}\n{"model":"m","stream":true}\n' |
  "$SLUICE" enqueue >/dev/null 2>"$T/e4.err"
eq "enqueue from stdin refuses the batch (exit 1)" 1 $?
check "enqueue names the line" grep -qF 'line 2: ' "$T/e4.err"
eq "nothing was enqueued" "$before" "$(sql 'SELECT count(*) FROM jobs')"
"$SLUICE" enqueue '{"model":"m","stream":false}' >/dev/null
eq "stream false is accepted" 0 $?

# --json output is UTF-8 (RFC 8259) whatever the journal holds: the SQL
# door lets in names with invalid UTF-8 and C1 controls (only C0 is
# refused); they come out as \ufffd and \u009b, never as raw bytes.
bad="'q' || CAST(X'FF' AS TEXT) || CAST(X'C29B' AS TEXT) || '31m'"
id=$(sql "INSERT INTO jobs (queue, body) VALUES ($bad, '{\"model\":\"m\"}')
  RETURNING id")
sql "UPDATE jobs SET last_error = 'e' || CAST(X'FE' AS TEXT) WHERE id = $id"
"$SLUICE" status --json >"$T/s.json" 2>&1
eq "status --json with a non-UTF-8 name exits 0" 0 $?
"$SLUICE" show --json "$id" >"$T/j.json" 2>&1
eq "show --json with non-UTF-8 text exits 0" 0 $?
for f in s.json j.json; do
  check "$f is valid UTF-8" iconv -f UTF-8 -t UTF-8 -o /dev/null "$T/$f"
  check "$f holds no raw C1 control" \
    bash -c "! LC_ALL=C grep -qP '\xc2[\x80-\x9f]' '$T/$f'"
  if command -v python3 >/dev/null; then
    check "$f parses as JSON" python3 -c \
      'import json, sys; json.load(open(sys.argv[1], encoding="utf-8"))' "$T/$f"
  fi
done
check "the name is shown with its escapes" grep -qF 'q\ufffd\u009b31m' "$T/s.json"
finish
