#!/usr/bin/env bash
# Producers with plain SQL (DESIGN.md): through the sqlite3 CLI, against a
# journal the library created, the one-liner INSERT works with defaults,
# every bad insert is refused with a message naming the problem and leaves
# the row count unchanged, the admin views work, and replay through
# INSERT INTO replays brings failed jobs back (never succeeded ones).
# Env: SLUICE_BUILD (absolute build dir). Prints PASS:/FAIL: lines.
set -u
BUILD=${SLUICE_BUILD:?set SLUICE_BUILD to the build directory}
CLAIMER="$BUILD/tests/helpers/claimer"
TMP=$(mktemp -d /tmp/sluice-sql.XXXXXX)
BG=() # background processes this script started, killed by pid on exit
trap 'for p in "${BG[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null; done
      wait 2>/dev/null; rm -rf "$TMP"' EXIT
J="$TMP/journal.db"
failures=0

check() { # name, then a command that must succeed
  local name=$1
  shift
  if "$@"; then
    echo "PASS: $name"
  else
    echo "FAIL: $name"
    failures=$((failures + 1))
  fi
}
q() { sqlite3 -batch -noheader "$J" "$1"; }
eq() { # expected actual
  [ "$1" = "$2" ] && return 0
  echo "  expected [$1] got [$2]" >&2
  return 1
}
now_ms() { date +%s%3N; }
drain() { "$CLAIMER" --journal "$J" --batch 8 --max-seconds 60 >/dev/null; }

# refused NAME SQL MESSAGE: the statement fails, its error names MESSAGE,
# and the jobs table keeps its row count.
refused() {
  local name=$1 sql=$2 msg=$3 before after out rc
  before=$(q 'SELECT count(*) FROM jobs')
  out=$(sqlite3 -batch "$J" "$sql" 2>&1)
  rc=$?
  after=$(q 'SELECT count(*) FROM jobs')
  if [ "$rc" -ne 0 ] && [[ "$out" == *"$msg"* ]] && [ "$before" = "$after" ]
  then
    echo "PASS: $name"
  else
    echo "  rc=$rc rows $before -> $after; message: $out" >&2
    echo "FAIL: $name"
    failures=$((failures + 1))
  fi
}

if [ ! -x "$CLAIMER" ]; then
  echo "FAIL: claimer_built ($CLAIMER missing)"
  exit 1
fi
"$CLAIMER" --journal "$J" --init
check "library_creates_journal" test -s "$J"

# The DESIGN.md one-liner, verbatim.
t0=$(now_ms)
sqlite3 -batch "$J" <<'SQL'
INSERT INTO jobs(body) VALUES('{"model":"gpt-4o-mini","input":"hi"}');
SQL
check "one_liner_inserts" eq 0 $?
t1=$(now_ms)
check "one_liner_defaults" eq \
  "default||urgent|/v1/responses|gpt-4o-mini|pending|0|5|0|0|32" \
  "$(q "SELECT queue, partition, urgency, endpoint, model, state, priority,
        max_attempts, attempts, generation, length(idempotency_key)
        FROM jobs")"
check "one_liner_times_now" eq 1 \
  "$(q "SELECT run_after BETWEEN $t0 AND $t1 AND created_at BETWEEN $t0
        AND $t1 FROM jobs")"
check "one_liner_key_is_hex" eq 1 \
  "$(q "SELECT idempotency_key NOT GLOB '*[^0-9a-f]*' FROM jobs")"

refused "invalid_json_refused" \
  "INSERT INTO jobs(body) VALUES('{\"model\": nope');" \
  "body must be valid JSON"
refused "array_body_refused" \
  "INSERT INTO jobs(body) VALUES('[{\"model\":\"gpt-4o-mini\"}]');" \
  "body must be a JSON object"
refused "no_model_refused" \
  "INSERT INTO jobs(body) VALUES('{\"input\":\"hi\"}');" \
  "body must name a model"
refused "bad_urgency_refused" \
  "INSERT INTO jobs(body, urgency) VALUES('{\"model\":\"m\"}', 'asap');" \
  "urgency must be urgent or deferrable"
refused "bad_state_refused" \
  "INSERT INTO jobs(body, state) VALUES('{\"model\":\"m\"}', 'done');" \
  "unknown job state"
refused "negative_priority_refused" \
  "INSERT INTO jobs(body, priority) VALUES('{\"model\":\"m\"}', -3);" \
  "priority must not be negative"
refused "unknown_endpoint_refused" \
  "INSERT INTO jobs(body, endpoint)
   VALUES('{\"model\":\"m\"}', '/v1/images');" \
  "unknown endpoint"
refused "text_priority_refused" \
  "INSERT INTO jobs(body, priority) VALUES('{\"model\":\"m\"}', 'high');" \
  "cannot store TEXT value in INTEGER column"
refused "duplicate_key_refused" \
  "INSERT INTO jobs(body, idempotency_key) VALUES('{\"model\":\"m\"}',
   (SELECT idempotency_key FROM jobs WHERE id = 1));" \
  "UNIQUE constraint failed: jobs.idempotency_key"
# The SQL door (issue 10, migration 0003): rows no worker could finish.
for st in running batched succeeded failed cancelled; do
  refused "insert_${st}_refused" \
    "INSERT INTO jobs(body, state) VALUES('{\"model\":\"m\"}', '$st');" \
    "a new job must be pending; only the worker sets other states"
done
refused "attempts_past_max_refused" \
  "INSERT INTO jobs(body, attempts, max_attempts)
   VALUES('{\"model\":\"m\"}', 4, 3);" \
  "attempts must be 0 to max_attempts"
refused "negative_attempts_refused" \
  "INSERT INTO jobs(body, attempts) VALUES('{\"model\":\"m\"}', -1);" \
  "attempts must be 0 to max_attempts"
for col in lease_token lease_expires batch_id; do
  refused "${col}_on_insert_refused" \
    "INSERT INTO jobs(body, $col) VALUES('{\"model\":\"m\"}', 1);" \
    "a new job has no lease or batch"
done
refused "stream_true_refused" \
  "INSERT INTO jobs(body) VALUES('{\"model\":\"m\",\"stream\":true}');" \
  "streaming is not supported; remove \"stream\": true from the body"
refused "stream_escaped_key_refused" \
  "INSERT INTO jobs(body)
   VALUES('{\"model\":\"m\",\"str\\u0065am\":true}');" \
  "streaming is not supported"
refused "partition_nul_refused" \
  "INSERT INTO jobs(body, partition)
   VALUES('{\"model\":\"m\"}', 't' || char(0) || '7');" \
  "partition must not contain control characters"
refused "queue_escape_refused" \
  "INSERT INTO jobs(body, queue)
   VALUES('{\"model\":\"m\"}', 'red' || char(27) || '[31m');" \
  "queue must not contain control characters"
refused "queue_newline_refused" \
  "INSERT INTO jobs(body, queue) VALUES('{\"model\":\"m\"}', 'a
b');" \
  "queue must not contain control characters"
refused "queue_nul_refused" \
  "INSERT INTO jobs(body, queue)
   VALUES('{\"model\":\"m\"}', 'a' || char(0) || 'b');" \
  "queue must not contain control characters"
refused "queue_del_refused" \
  "INSERT INTO jobs(body, queue) VALUES('{\"model\":\"m\"}', 'a' || char(127));" \
  "queue must not contain control characters"
refused "partition_tab_refused" \
  "INSERT INTO jobs(body, partition)
   VALUES('{\"model\":\"m\"}', 't' || char(9) || '7');" \
  "partition must not contain control characters"
refused "queue_update_refused" \
  "UPDATE jobs SET queue = 'x' || char(10) WHERE id = 1;" \
  "queue must not contain control characters"
refused "stream_update_refused" \
  "UPDATE jobs SET body = '{\"model\":\"m\",\"stream\":true}' WHERE id = 1;" \
  "streaming is not supported"
check "only_the_good_row" eq 1 "$(q 'SELECT count(*) FROM jobs')"
refused "stream_duplicate_key_refused" \
  "INSERT INTO jobs(body)
   VALUES('{\"model\":\"m\",\"stream\":false,\"stream\":true}');" \
  "streaming is not supported"
# What the door still takes: UTF-8 names, "stream": false, a body that only
# mentions streaming or holds \u escapes, attempts up to max_attempts.
P="$TMP/door.db"
"$CLAIMER" --journal "$P" --init
sqlite3 -batch "$P" <<'SQL'
INSERT INTO jobs(body, queue, partition, attempts) VALUES
  ('{"model":"m","stream":false}', 'café', 'tenant-€', 5),
  ('{"model":"m","input":"\"stream\": true"}', 'q', '', 0),
  ('{"model":"m","input":"\u00e9","metadata":{"stream":true}}', 'q', '', 0);
SQL
check "door_takes_good_rows" eq "0 3" "$? $(sqlite3 "$P" 'SELECT count(*) FROM jobs')"
check "good_row_unchanged" eq "default|{\"model\":\"gpt-4o-mini\",\"input\":\"hi\"}" \
  "$(q 'SELECT queue, b.body FROM jobs JOIN job_bodies b ON b.job_id = jobs.id')"

# Two more in queue q2, then a worker drains all three.
q "INSERT INTO jobs(body, queue) VALUES('{\"model\":\"m\"}', 'q2'),
                                       ('{\"model\":\"m\"}', 'q2');"
drain
check "drained_once" eq "3|3|3" \
  "$(q "SELECT count(*), sum(attempts), (SELECT count(*) FROM results)
        FROM jobs WHERE state = 'succeeded'")"

# Two that failed for good (the state a worker leaves them in).
q "INSERT INTO jobs(body, queue, idempotency_key)
     VALUES('{\"model\":\"m\"}', 'q2', 'k4'), ('{\"model\":\"m\"}', 'q2', 'k5');
   UPDATE jobs SET state = 'failed', attempts = 5, last_class = 'server_error',
     last_error = 'HTTP 503', finished_at = $(now_ms) WHERE id IN (4, 5);"
q "INSERT INTO jobs(body, queue, run_after)
     VALUES('{\"model\":\"m\"}', 'q3', $(($(now_ms) - 60000)));"

# Admin views.
check "queue_stats_view" eq \
  "default|0|0|0|1|0|0
q2|0|0|0|2|2|0" \
  "$(q "SELECT queue, pending, running, batched, succeeded, failed, cancelled
        FROM queue_stats WHERE queue IN ('default', 'q2') ORDER BY queue")"
check "queue_stats_lag" eq 1 \
  "$(q "SELECT lag_ms >= 60000 FROM queue_stats WHERE queue = 'q3'")"
check "failed_jobs_view" eq \
  "4|q2|server_error|HTTP 503|5
5|q2|server_error|HTTP 503|5" \
  "$(q "SELECT id, queue, last_class, last_error, attempts FROM failed_jobs
        ORDER BY id")"

# Replay through SQL: failed jobs only, keys kept, generation bumped.
sqlite3 -batch "$J" "INSERT INTO replays(queue) VALUES('q2');"
check "replay_insert_ok" eq 0 $?
check "replay_audit_row" eq "sql|q2|2" \
  "$(q 'SELECT door, queue, replayed FROM replays')"
check "replayed_jobs_pending" eq \
  "4|pending|1|0|k4
5|pending|1|0|k5" \
  "$(q "SELECT id, state, generation, attempts, idempotency_key FROM jobs
        WHERE id IN (4, 5) ORDER BY id")"
check "succeeded_untouched" eq "3|0" \
  "$(q "SELECT count(*), sum(generation) FROM jobs
        WHERE state = 'succeeded'")"
check "failed_jobs_view_empty" eq 0 "$(q 'SELECT count(*) FROM failed_jobs')"
refused "succeeded_is_final" \
  "UPDATE jobs SET state = 'pending' WHERE id = 1;" \
  "a succeeded job is final"
refused "result_never_overwritten" \
  "INSERT OR REPLACE INTO results(job_id, generation, route, http_status,
     body, created_at) VALUES(1, 0, 'online', 200, 'x', 0);" \
  "the job already has a result"
sqlite3 -batch "$J" "INSERT INTO replays(include_cancelled) VALUES(1);"
check "replay_again_finds_nothing" eq 0 \
  "$(q 'SELECT replayed FROM replays ORDER BY id DESC LIMIT 1')"

drain
check "all_succeeded_once" eq "6|6|6" \
  "$(q "SELECT count(*), (SELECT count(*) FROM results),
        (SELECT count(DISTINCT job_id) FROM results) FROM jobs
        WHERE state = 'succeeded'")"

# --- The README's own sqlite3 insert beside a busy worker (issue 10: 37 of
# 100 failed with "database is locked" when the README had no busy
# timeout). A real `sluice work` drains against the bundled mock while
# another producer enqueues; the README's command must land 100 of 100.
ROOT=${SLUICE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
SLUICE="$BUILD/sluice"
MOCK="$BUILD/sluice-mock"
B="$TMP/busy.db"
check "readme_sqlite3_examples_have_timeout" eq \
  "$(grep -c '^sqlite3 ' "$ROOT/README.md")" \
  "$(grep -c "^sqlite3 -cmd '.timeout 5000' " "$ROOT/README.md")"
readme=$(grep -m1 '^sqlite3 .*jobs.db "INSERT INTO jobs(body) VALUES' \
  "$ROOT/README.md")
check "readme_insert_found" test -n "$readme"
readme=${readme/jobs.db/$B}

"$SLUICE" init --journal "$B" >/dev/null
for i in $(seq 1 1000); do printf '{"model":"m","input":"pre %d"}\n' "$i"; done |
  "$SLUICE" enqueue --journal "$B" -q busy >/dev/null
"$MOCK" --port 0 --port-file "$TMP/mock.port" 2>"$TMP/mock.err" &
BG+=($!)
for i in $(seq 1 100); do [ -s "$TMP/mock.port" ] && break; sleep 0.05; done
check "mock_started" test -s "$TMP/mock.port"
timeout 300 "$SLUICE" work --journal "$B" \
  --base-url "http://127.0.0.1:$(cat "$TMP/mock.port")/v1" \
  --poll 50ms --concurrency 16 --log-level warn 2>"$TMP/worker.log" &
worker=$!
BG+=("$worker")
( # another producer, 20 transactions of 50 jobs
  for i in $(seq 1 20); do
    seq 1 50 | sed 's/.*/{"model":"m","input":"other &"}/' |
      "$SLUICE" enqueue --journal "$B" -q busy >/dev/null ||
      echo "enqueue $i failed" >>"$TMP/producer.err"
  done
) &
producer=$!
BG+=("$producer")
sleep 0.3 # let the worker get busy
bad=0
for i in $(seq 1 100); do
  eval "$readme" 2>>"$TMP/readme.err" || bad=$((bad + 1))
done
check "readme_inserts_all_exit_0" eq 0 "$bad"
[ -s "$TMP/readme.err" ] && head -3 "$TMP/readme.err" >&2
wait "$producer"
check "other_producer_ok" test ! -s "$TMP/producer.err"
bq() { sqlite3 -batch -noheader -cmd '.timeout 5000' "$B" "$1"; }
check "readme_rows_all_landed" eq 100 \
  "$(bq "SELECT count(*) FROM jobs WHERE queue = 'default'")"
check "worker_was_busy_meanwhile" test \
  "$(bq "SELECT count(*) FROM results")" -gt 0
for i in $(seq 1 1200); do # the worker drains everything (at most 120 s)
  [ "$(bq "SELECT count(*) FROM jobs WHERE state <> 'succeeded'")" = 0 ] &&
    break
  sleep 0.1
done
kill -TERM "$worker" 2>/dev/null
wait "$worker"
check "worker_exits_0_on_sigterm" eq 0 $?
check "all_2100_succeeded_once" eq "2100|2100|2100" \
  "$(bq "SELECT count(*), (SELECT count(*) FROM results),
         (SELECT count(DISTINCT job_id) FROM results) FROM jobs
         WHERE state = 'succeeded'")"

[ "$failures" -eq 0 ]
