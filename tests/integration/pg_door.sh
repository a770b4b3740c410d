# pg_door.sh: psql is a producer door to the PostgreSQL journal, as sqlite3
# is to the SQLite one (DESIGN.md "Where users outgrow one machine").
#  - INSERT INTO sluice.jobs(body) works with defaults;
#  - each thing a worker could not finish is refused with a message naming
#    it, and the refused statement leaves nothing behind;
#  - INSERT ... ON CONFLICT (idempotency_key) DO NOTHING deduplicates;
#  - INSERT INTO sluice.replays(...) replays failed jobs, never succeeded
#    ones, keeps each job's idempotency key; results are never overwritten;
#  - a batched job that is cancelled gets its submission's attempt row, as
#    SQLite's trigger writes it; the batch ledger, token pacing and route
#    limit tables refuse what their CHECKs name;
#  - job_outputs and replays(job_ids) give SQLite's rows for the same data;
#  - an insert NOTIFYs sluice_jobs at commit (once per queue and
#    statement; not for a rollback nor a no-op ON CONFLICT), seen by a
#    libpq LISTENer watching the socket (tests/helpers/pg_listen).
# Against a throwaway cluster (tests/lib/pglib.sh), schema from the
# migrations.
. "$(dirname "$0")/../lib/testlib.sh"
. "$SLUICE_ROOT/tests/lib/pglib.sh"
LISTEN="$SLUICE_BUILD/tests/helpers/pg_listen"

PG_OPTS="-c fsync=off" pg_start || { fail "a throwaway PostgreSQL cluster starts"; finish; }
pg_createdb door >/dev/null
check "the migrations apply" pg_migrate door
export PGDATABASE=door

# The fixture's password role (for the password tests of lib/pg): a wrong
# password is refused, the right one accepted, and the refusal does not
# echo the password.
out=$(PGPASSWORD="wrong-$PG_PW_PASSWORD" "$PG_BIN/psql" -X -At -U "$PG_PW_ROLE" \
  -c "SELECT 1" 2>&1)
check "the scram role refuses a wrong password" sh -c \
  "printf '%s' \"\$1\" | grep -q 'password authentication failed'" _ "$out"
check "the refusal does not echo the password" sh -c \
  "! printf '%s' \"\$1\" | grep -qF -- \"\$2\"" _ "$out" "$PG_PW_PASSWORD"
eq "the scram role logs in with its password" "$PG_PW_ROLE" \
  "$(PGPASSWORD="$PG_PW_PASSWORD" "$PG_BIN/psql" -X -At -U "$PG_PW_ROLE" \
      -c "SELECT current_user" 2>&1)"
q() { pg_psql -c "$1"; }
njobs() { q "SELECT count(*) FROM sluice.jobs"; }

# ------------------------------------------------------------ defaults
row=$(q "INSERT INTO sluice.jobs(body)
         VALUES ('{\"model\":\"gpt-4o-mini\",\"input\":\"hello\"}')
         RETURNING queue, partition, urgency, priority, state, attempts,
                   max_attempts, endpoint, model, generation")
eq "a body alone is a job with the defaults" \
  "default||urgent|0|pending|0|5|/v1/responses|gpt-4o-mini|0" "$row"
id1=$(q "SELECT max(id) FROM sluice.jobs")
key=$(q "SELECT idempotency_key FROM sluice.jobs WHERE id = $id1")
check "the default idempotency key is 32 hex digits" \
  sh -c "echo '$key' | grep -Eqx '[0-9a-f]{32}'"
eq "the key starts with its creation time in ms (time-ordered)" "t" \
  "$(q "SELECT abs(('x' || lpad(substr(idempotency_key, 1, 12), 16, '0'))::bit(64)::bigint
               - created_at) < 5 FROM sluice.jobs WHERE id = $id1")"
eq "run_after and created_at default to now, in Unix ms" "t" \
  "$(q "SELECT run_after = created_at
            AND abs(created_at - (extract(epoch FROM now()) * 1000)::bigint) < 60000
          FROM sluice.jobs WHERE id = $id1")"
eq "two default keys differ" "2" \
  "$(q "INSERT INTO sluice.jobs(body) VALUES ('{\"model\":\"m\"}'), ('{\"model\":\"m\"}')
        RETURNING idempotency_key" | sort -u | wc -l)"
eq "a moderation needs no model" "1" \
  "$(q "INSERT INTO sluice.jobs(endpoint, body) VALUES ('/v1/moderations', '{\"input\":\"x\"}')
        RETURNING 1")"
eq "\"stream\": false is taken" "1" \
  "$(q "INSERT INTO sluice.jobs(body) VALUES ('{\"model\":\"m\",\"stream\":false}') RETURNING 1")"
eq "a queue name in UTF-8 is taken" "café" \
  "$(q "INSERT INTO sluice.jobs(queue, body) VALUES ('café', '{\"model\":\"m\"}') RETURNING queue")"

# ------------------------------------------------------------ refusals
# refuse NAME MESSAGE SQL: psql fails, says MESSAGE, and no job is added
# or changed.
refuse() {
  local name=$1 msg=$2 sql=$3 before after out rc sum0 sum1
  before=$(njobs)
  sum0=$(q "SELECT md5(string_agg(j::text, ',' ORDER BY id)) FROM sluice.jobs j")
  out=$(pg_psql -c "$sql" 2>&1)
  rc=$?
  after=$(njobs)
  sum1=$(q "SELECT md5(string_agg(j::text, ',' ORDER BY id)) FROM sluice.jobs j")
  if [ "$rc" -eq 0 ]; then
    fail "$name is refused" "accepted: $out"
  elif ! printf '%s' "$out" | grep -qF -- "$msg"; then
    fail "$name is refused" "message lacks '$msg': $out"
  elif [ "$before" != "$after" ] || [ "$sum0" != "$sum1" ]; then
    fail "$name is refused" "the journal changed ($before -> $after jobs)"
  else
    pass "$name is refused: $msg"
  fi
}
J='{"model":"gpt-4o-mini","input":"x"}'
refuse "invalid JSON" "body must be valid JSON" \
  "INSERT INTO sluice.jobs(body) VALUES ('{\"model\": ')"
refuse "a JSON array" "body must be a JSON object" \
  "INSERT INTO sluice.jobs(body) VALUES ('[1, 2]')"
refuse "a body without a model" "body must name a model" \
  "INSERT INTO sluice.jobs(body) VALUES ('{\"input\":\"x\"}')"
refuse "a model that is not a string" "body must name a model" \
  "INSERT INTO sluice.jobs(body) VALUES ('{\"model\":4}')"
refuse "a bad urgency" "urgency must be urgent or deferrable" \
  "INSERT INTO sluice.jobs(urgency, body) VALUES ('soon', '$J')"
refuse "a negative priority" "priority must not be negative" \
  "INSERT INTO sluice.jobs(priority, body) VALUES (-1, '$J')"
refuse "an unknown endpoint" "unknown endpoint" \
  "INSERT INTO sluice.jobs(endpoint, body) VALUES ('/v1/images', '$J')"
refuse "an empty queue name" "queue must be 1 to 128 characters" \
  "INSERT INTO sluice.jobs(queue, body) VALUES ('', '$J')"
refuse "a queue name of 129 characters" "queue must be 1 to 128 characters" \
  "INSERT INTO sluice.jobs(queue, body) VALUES (repeat('q', 129), '$J')"
refuse "an idempotency key of 256 characters" \
  "idempotency_key must be 1 to 255 characters" \
  "INSERT INTO sluice.jobs(idempotency_key, body) VALUES (repeat('k', 256), '$J')"
refuse "max_attempts 0" "max_attempts must be at least 1" \
  "INSERT INTO sluice.jobs(max_attempts, body) VALUES (0, '$J')"
refuse "a negative deadline" "deadline must not be negative" \
  "INSERT INTO sluice.jobs(deadline, body) VALUES (-5, '$J')"
refuse "a state that is no state" "unknown job state" \
  "INSERT INTO sluice.jobs(state, body) VALUES ('done', '$J')"
for s in running batched succeeded failed cancelled; do
  refuse "a new job in state $s" "a new job must be pending" \
    "INSERT INTO sluice.jobs(state, body) VALUES ('$s', '$J')"
done
refuse "attempts past max_attempts" "attempts must be 0 to max_attempts" \
  "INSERT INTO sluice.jobs(attempts, max_attempts, body) VALUES (4, 3, '$J')"
refuse "negative attempts" "attempts must be 0 to max_attempts" \
  "INSERT INTO sluice.jobs(attempts, body) VALUES (-1, '$J')"
refuse "a lease on insert" "a new job has no lease or batch" \
  "INSERT INTO sluice.jobs(lease_token, lease_expires, body) VALUES (7, 1, '$J')"
refuse "\"stream\": true" "streaming is not supported" \
  "INSERT INTO sluice.jobs(body) VALUES ('{\"model\":\"m\",\"stream\":true}')"
refuse "an escaped \"stream\" key" "streaming is not supported" \
  "INSERT INTO sluice.jobs(body) VALUES ('{\"model\":\"m\",\"str\\u0065am\":true}')"
refuse "a duplicate \"stream\" key" "streaming is not supported" \
  "INSERT INTO sluice.jobs(body) VALUES ('{\"model\":\"m\",\"stream\":false,\"stream\":true}')"
refuse "an escape sequence in a queue" "queue must not contain control characters" \
  "INSERT INTO sluice.jobs(queue, body) VALUES (E'red\\x1b[31m', '$J')"
refuse "a newline in a partition" "partition must not contain control characters" \
  "INSERT INTO sluice.jobs(partition, body) VALUES (E'a\\nb', '$J')"
refuse "DEL in a partition" "partition must not contain control characters" \
  "INSERT INTO sluice.jobs(partition, body) VALUES (E'a\\x7f', '$J')"
refuse "a control character set by UPDATE" "queue must not contain control characters" \
  "UPDATE sluice.jobs SET queue = E'q\\x01' WHERE id = $id1"
refuse "\"stream\": true set by UPDATE" "streaming is not supported" \
  "UPDATE sluice.jobs SET body = '{\"model\":\"m\",\"stream\":true}' WHERE id = $id1"
refuse "one bad row in a multi-row insert" "priority must not be negative" \
  "INSERT INTO sluice.jobs(priority, body) VALUES (0, '$J'), (-3, '$J')"

# ------------------------------------------------------------ metadata
mid=$(q "INSERT INTO sluice.jobs(body, metadata)
         VALUES ('$J', '{\"tenant\":\"t7\",\"n\":3,\"vip\":true,\"x\":null}') RETURNING id")
eq "metadata keys are indexed one row each (strings bare, true as a word, null as NULL)" \
  "n=3,tenant=t7,vip=true,x=<null>" \
  "$(q "SELECT string_agg(key || '=' || coalesce(value, '<null>'), ',' ORDER BY key)
          FROM sluice.job_metadata WHERE job_id = $mid")"
eq "a job without metadata has '{}' and no index rows" "{}|0" \
  "$(q "SELECT metadata, (SELECT count(*) FROM sluice.job_metadata WHERE job_id = $id1)
          FROM sluice.jobs WHERE id = $id1")"
q "UPDATE sluice.jobs SET metadata = '{\"tenant\":\"t8\"}' WHERE id = $mid" >/dev/null
eq "an UPDATE of metadata replaces its index rows" "tenant=t8" \
  "$(q "SELECT string_agg(key || '=' || value, ',') FROM sluice.job_metadata WHERE job_id = $mid")"
refuse "metadata that is not JSON" "metadata must be a JSON object" \
  "INSERT INTO sluice.jobs(body, metadata) VALUES ('$J', 'tenant=t7')"
refuse "metadata that is an array" "metadata must be a JSON object" \
  "INSERT INTO sluice.jobs(body, metadata) VALUES ('$J', '[1]')"

# ------------------------------------------------------------ dedup
n0=$(njobs)
eq "a producer's own key is taken" "INSERT 0 1" \
  "$("$PG_BIN/psql" -X -c "INSERT INTO sluice.jobs(idempotency_key, body)
      VALUES ('order-42', '{\"model\":\"first\"}')
      ON CONFLICT (idempotency_key) DO NOTHING" 2>&1)"
eq "ON CONFLICT (idempotency_key) DO NOTHING inserts nothing the second time" \
  "INSERT 0 0" \
  "$("$PG_BIN/psql" -X -c "INSERT INTO sluice.jobs(idempotency_key, body)
      VALUES ('order-42', '{\"model\":\"second\"}')
      ON CONFLICT (idempotency_key) DO NOTHING" 2>&1)"
eq "one job holds the key, with the first body" "1|first" \
  "$(q "SELECT count(*), min(model) FROM sluice.jobs WHERE idempotency_key = 'order-42'")"
refuse "a duplicate key without ON CONFLICT" "jobs_idempotency_key_key" \
  "INSERT INTO sluice.jobs(idempotency_key, body) VALUES ('order-42', '$J')"
eq "dedup added exactly one job" "$((n0 + 1))" "$(njobs)"

# ------------------------------------------------------------ replay
# Jobs of queue rq in each state, moved as the worker would.
mk() { # QUEUE STATE CLASS -> id
  local id
  id=$(q "INSERT INTO sluice.jobs(queue, body) VALUES ('$1', '$J') RETURNING id")
  if [ "$2" = succeeded ]; then # claimed first: the lifecycle (0013)
    q "UPDATE sluice.jobs SET state = 'running' WHERE id = $id" >/dev/null
  fi
  if [ "$2" != pending ]; then
    q "UPDATE sluice.jobs SET state = '$2', attempts = 5, last_class = NULLIF('$3', ''),
         last_error = 'boom', finished_at = sluice.now_ms() WHERE id = $id" >/dev/null
  fi
  echo "$id"
}
f1=$(mk rq failed server_error)
f2=$(mk rq failed auth)
s1=$(mk rq succeeded '')
c1=$(mk rq cancelled '')
p1=$(mk rq pending '')
o1=$(mk other failed server_error)
q "INSERT INTO sluice.results(job_id, generation, route, http_status, body,
     created_at, input_tokens, output_tokens)
   VALUES ($s1, 0, 'online', 200, '{\"ok\":1}', sluice.now_ms(), 10, 5)" >/dev/null
keys0=$(q "SELECT string_agg(idempotency_key, ',' ORDER BY id) FROM sluice.jobs WHERE queue = 'rq'")

eq "the usage trigger adds a result's tokens to its queue's day" "rq|1|10|5|15" \
  "$(q "SELECT queue, jobs, input_tokens, output_tokens, total_tokens FROM sluice.usage_daily")"
refuse "a replay with include_cancelled 2" "include_cancelled must be 0 or 1" \
  "INSERT INTO sluice.replays(queue, include_cancelled) VALUES ('rq', 2)"
eq "a refused replay moved no job" "failed" \
  "$(q "SELECT state FROM sluice.jobs WHERE id = $f1")"
eq "a replay filtered by class counts what it replayed" "1" \
  "$(q "INSERT INTO sluice.replays(queue, failure_class) VALUES ('rq', 'server_error')
        RETURNING replayed")"
eq "the failed job of that class is pending again, generation 1, attempts 0, class cleared" \
  "pending|1|0||" \
  "$(q "SELECT state, generation, attempts, last_class, finished_at FROM sluice.jobs WHERE id = $f1")"
eq "the failed job of another class stays failed" "failed" \
  "$(q "SELECT state FROM sluice.jobs WHERE id = $f2")"
eq "another queue's failed job stays failed" "failed" \
  "$(q "SELECT state FROM sluice.jobs WHERE id = $o1")"
eq "a replay of the whole queue replays only the failed job left" "1" \
  "$(q "INSERT INTO sluice.replays(queue) VALUES ('rq') RETURNING replayed")"
eq "succeeded stays succeeded with its one result; cancelled and pending stay" \
  "succeeded|1|cancelled|pending" \
  "$(q "SELECT (SELECT state FROM sluice.jobs WHERE id = $s1),
               (SELECT count(*) FROM sluice.results WHERE job_id = $s1),
               (SELECT state FROM sluice.jobs WHERE id = $c1),
               (SELECT state FROM sluice.jobs WHERE id = $p1)")"
r=$(q "INSERT INTO sluice.replays(queue, include_cancelled) VALUES ('rq', 1) RETURNING replayed")
eq "include_cancelled replays the cancelled job" "1|pending" \
  "$r|$(q "SELECT state FROM sluice.jobs WHERE id = $c1")"
eq "replay keeps every idempotency key" "$keys0" \
  "$(q "SELECT string_agg(idempotency_key, ',' ORDER BY id) FROM sluice.jobs WHERE queue = 'rq'")"
eq "each replay is audited with its door" "3|sql" \
  "$(q "SELECT count(*), min(door) FROM sluice.replays")"
refuse "a stray UPDATE reopening a succeeded job" \
  "a succeeded job is final and cannot change state" \
  "UPDATE sluice.jobs SET state = 'pending' WHERE id = $s1"
refuse "a second result for a job" \
  "the job already has a result; results are never overwritten" \
  "INSERT INTO sluice.results(job_id, generation, route, http_status, body, created_at)
   VALUES ($s1, 0, 'online', 200, '{\"ok\":2}', 0)"
refuse "a result overwritten by ON CONFLICT DO UPDATE" \
  "the job already has a result; results are never overwritten" \
  "INSERT INTO sluice.results(job_id, generation, route, http_status, body, created_at)
   VALUES ($s1, 0, 'online', 200, '{\"ok\":2}', 0)
   ON CONFLICT (job_id) DO UPDATE SET body = excluded.body"
refuse "an UPDATE of a result" "results are immutable" \
  "UPDATE sluice.results SET body = '{\"ok\":3}' WHERE job_id = $s1"
eq "the result is the first one" '{"ok":1}' \
  "$(q "SELECT body FROM sluice.results WHERE job_id = $s1")"
eq "queue_stats counts the queue's states" "rq|4|0|0|1|0|0" \
  "$(q "SELECT queue, pending, running, batched, succeeded, failed, cancelled
          FROM sluice.queue_stats WHERE queue = 'rq'")"

# ------------------------------------------------------------ batch route
# A batched job that is cancelled (sluice cancel, the dashboard or plain
# SQL) gets the attempt row of the submission it was packed for
# (jobs_batched_cancelled_attempt): the same rows as SQLite's trigger
# writes for the same journal (schema/schema.sql in sqlite3). @ stands for
# the schema prefix.
BATCH_SCENARIO="
INSERT INTO @batches(id, endpoint, state, remote_batch_id, submitted_at)
  VALUES (901, '/v1/responses', 'submitted', 'batch_r1', 1000),
         (902, '/v1/responses', 'building', NULL, NULL);
INSERT INTO @jobs(idempotency_key, urgency, body)
  VALUES ('bc-1', 'deferrable', '{\"model\":\"m\"}'),
         ('bc-2', 'deferrable', '{\"model\":\"m\"}'),
         ('bc-3', 'deferrable', '{\"model\":\"m\"}'),
         ('bc-4', 'deferrable', '{\"model\":\"m\"}'),
         ('bc-5', 'deferrable', '{\"model\":\"m\"}');
UPDATE @jobs SET state = 'batched', batch_id = 901, attempts = 1
 WHERE idempotency_key IN ('bc-1', 'bc-3');
UPDATE @jobs SET state = 'batched', batch_id = 901, attempts = 2,
       generation = 3 WHERE idempotency_key = 'bc-2';
UPDATE @jobs SET state = 'batched', batch_id = 902, attempts = 1
 WHERE idempotency_key = 'bc-4';
-- two jobs of one batch in one statement: a row each
UPDATE @jobs SET state = 'cancelled', finished_at = 5000
 WHERE idempotency_key IN ('bc-1', 'bc-2');
-- handed back by a failed batch: no row from the trigger
UPDATE @jobs SET state = 'pending', batch_id = NULL
 WHERE idempotency_key = 'bc-3';
-- not yet submitted, no finished_at given: now
UPDATE @jobs SET state = 'cancelled' WHERE idempotency_key = 'bc-4';
-- cancelled while pending: no row
UPDATE @jobs SET state = 'cancelled', finished_at = 7000
 WHERE idempotency_key = 'bc-5';
"
BATCH_ROWS="SELECT j.idempotency_key, a.attempt, a.generation, a.route,
       a.started_at,
       CASE WHEN a.finished_at < 100000 THEN CAST(a.finished_at AS TEXT)
            WHEN abs(a.finished_at - @now) < 60000 THEN 'now'
            ELSE 'wrong' END,
       a.failure_class, a.error
  FROM @attempts a JOIN @jobs j ON j.id = a.job_id
 WHERE j.idempotency_key LIKE 'bc-%' ORDER BY j.idempotency_key"
# @j(KEY) and @i(N) are a JSON object key and array index for ->>.
pg_sql() {
  printf '%s' "$1" | sed -e 's/@now/sluice.now_ms()/g' \
    -e "s/@j(\([^)]*\))/'\1'/g" -e 's/@i(\([0-9]*\))/\1/g' -e 's/@/sluice./g'
}
lite_sql() {
  printf '%s' "$1" | sed -e "s/@now/CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)/g" \
    -e "s/@j(\([^)]*\))/'\$.\1'/g" -e "s/@i(\([0-9]*\))/'\$[\1]'/g" -e 's/@//g'
}
check "the batch scenario runs on PostgreSQL" \
  pg_psql -c "$(pg_sql "$BATCH_SCENARIO")" -o /dev/null
eq "a cancelled batched job gets its submission's attempt row; pending or handed back gets none" \
  "bc-1|1|0|batch|1000|5000|cancelled|cancelled while in batch 901 (remote batch_r1)
bc-2|2|3|batch|1000|5000|cancelled|cancelled while in batch 901 (remote batch_r1)
bc-4|1|0|batch||now|cancelled|cancelled while in batch 902 (not yet submitted)" \
  "$(q "$(pg_sql "$BATCH_ROWS")")"
eq "the attempt rows are SQLite's trigger's, byte for byte" \
  "$(sqlite3 :memory: ".read $SLUICE_ROOT/schema/schema.sql" \
      "$(lite_sql "$BATCH_SCENARIO")" "$(lite_sql "$BATCH_ROWS")" 2>&1)" \
  "$(q "$(pg_sql "$BATCH_ROWS")")"
n0=$(q "SELECT count(*) FROM sluice.attempts")
q "BEGIN; UPDATE sluice.jobs SET state = 'batched', batch_id = 901
   WHERE idempotency_key = 'bc-3';
   UPDATE sluice.jobs SET state = 'cancelled' WHERE idempotency_key = 'bc-3';
   ROLLBACK" >/dev/null
eq "a cancel rolled back leaves no attempt row" "$n0" \
  "$(q "SELECT count(*) FROM sluice.attempts")"

# The batch ledger, token pacing, route limits and worker rows name their
# rules as SQLite's CHECKs do.
refuse "a batch file of another kind" "batch file kind must be input, output or error" \
  "INSERT INTO sluice.batch_files(batch_id, kind, created_at) VALUES (901, 'log', 0)"
refuse "a negative token estimate" "est_tokens must not be negative" \
  "INSERT INTO sluice.batch_tokens(batch_id, model, est_tokens) VALUES (901, 'm', -1)"
refuse "a token limit of 0" "limit_tokens must be positive" \
  "INSERT INTO sluice.batch_token_limits(model, limit_tokens, source, updated_at)
   VALUES ('m', 0, 'config', 0)"
refuse "a token limit from elsewhere" "source must be config or learned" \
  "INSERT INTO sluice.batch_token_limits(model, limit_tokens, source, updated_at)
   VALUES ('m', 10, 'guessed', 0)"
refuse "a route limit failing 2" "failing must be 0 or 1" \
  "INSERT INTO sluice.route_limits(endpoint, model, failing) VALUES ('/v1/responses', 'm', 2)"
eq "a route limit row takes SQLite's defaults" "4|0|0|0|0" \
  "$(q "INSERT INTO sluice.route_limits(endpoint, model) VALUES ('/v1/responses', 'm')
        RETURNING climit, ssthresh, failing, probe_at, cuts")"
eq "a worker row takes SQLite's defaults; jobs and batches carry worker_id" "|0||1" \
  "$(q "WITH w AS (INSERT INTO sluice.workers(host, pid, lease_ms, started_at, heartbeat_at)
                   VALUES ('h1', 42, 60000, 0, 0)
                   RETURNING boot_id, proc_start, pid_ns)
        SELECT w.*, (SELECT count(*) FROM information_schema.columns
                      WHERE table_schema = 'sluice' AND column_name = 'worker_id'
                        AND table_name IN ('jobs', 'batches')) / 2 FROM w")"

# ------------------------------------------------------------ outputs
# job_outputs reads a result as its output text (and JSON, when the
# request asked for JSON): the same rows as SQLite's view for the same
# results. replays(job_ids) replays the listed jobs only. @ stands for the
# schema prefix, @j(PATH) for a JSON path.
OUT_SCENARIO="
INSERT INTO @jobs(idempotency_key, endpoint, body) VALUES
  ('jo-1', '/v1/chat/completions', '{\"model\":\"m\",\"messages\":[]}'),
  ('jo-2', '/v1/chat/completions', '{\"model\":\"m\",\"response_format\":{\"type\":\"json_object\"}}'),
  ('jo-3', '/v1/completions', '{\"model\":\"m\",\"prompt\":\"p\"}'),
  ('jo-4', '/v1/responses', '{\"model\":\"m\",\"input\":\"i\"}'),
  ('jo-5', '/v1/responses', '{\"model\":\"m\",\"text\":{\"format\":{\"type\":\"json_schema\"}}}'),
  ('jo-6', '/v1/embeddings', '{\"model\":\"m\",\"input\":\"i\"}'),
  ('jo-7', '/v1/responses', '{\"model\":\"m\",\"input\":\"i\"}'),
  ('jo-8', '/v1/responses', '{\"model\":\"m\",\"input\":\"i\"}'),
  ('jo-9', '/v1/chat/completions', '{\"model\":\"m\",\"messages\":[]}'),
  ('jo-a', '/v1/responses', '{\"model\":\"m\",\"text\":{\"format\":{\"type\":\"json_object\"}}}');
WITH r(k, body) AS (VALUES
  ('jo-1', '{\"choices\":[{\"message\":{\"content\":\"hello\"}}]}'),
  ('jo-2', '{\"choices\":[{\"message\":{\"content\":\"{\\\"answer\\\": 42}\"}}]}'),
  ('jo-3', '{\"choices\":[{\"text\":\"abc\"}]}'),
  ('jo-4', '{\"output\":[{\"type\":\"reasoning\"},{\"type\":\"message\",\"content\":[{\"type\":\"output_text\",\"text\":\"a\"},{\"type\":\"refusal\",\"refusal\":\"no\"},{\"type\":\"output_text\",\"text\":\"b\"}]},{\"type\":\"message\",\"content\":[{\"type\":\"output_text\",\"text\":\"c\"}]}]}'),
  ('jo-5', '{\"output\":[{\"type\":\"message\",\"content\":[{\"type\":\"output_text\",\"text\":\"not json\"}]}]}'),
  ('jo-6', '{\"data\":[{\"embedding\":[0.1]}]}'),
  ('jo-7', 'oops'),
  ('jo-8', '{\"output\":{\"type\":\"message\",\"content\":[{\"type\":\"output_text\",\"text\":\"x\"}]}}'),
  ('jo-9', '[1, 2]'),
  ('jo-a', '{\"output\":[{\"type\":\"message\",\"content\":[{\"type\":\"output_text\",\"text\":\"[1,\"},{\"type\":\"output_text\",\"text\":\"2]\"}]}]}')
)
INSERT INTO @results(job_id, generation, route, http_status, body, created_at)
SELECT j.id, 0, 'online', 200, r.body, 0
  FROM @jobs j JOIN r ON r.k = j.idempotency_key;
"
OUT_ROWS="SELECT j.idempotency_key, coalesce(o.output_text, '<null>'),
       CASE WHEN o.output_json IS NULL THEN '<null>'
            ELSE coalesce(CAST(o.output_json ->> @j(answer) AS TEXT),
                          CAST(o.output_json ->> @i(1) AS TEXT), '?') END
  FROM @job_outputs o JOIN @jobs j ON j.id = o.job_id
 WHERE j.idempotency_key LIKE 'jo-%' ORDER BY j.idempotency_key"
REPLAY_SCENARIO="
INSERT INTO @jobs(idempotency_key, body) VALUES
  ('jr-1', '{\"model\":\"m\"}'), ('jr-2', '{\"model\":\"m\"}'),
  ('jr-3', '{\"model\":\"m\"}'), ('jr-4', '{\"model\":\"m\"}');
UPDATE @jobs SET state = 'failed', last_class = 'server_error', finished_at = 1
 WHERE idempotency_key IN ('jr-1', 'jr-2', 'jr-3');
UPDATE @jobs SET state = 'cancelled', finished_at = 1 WHERE idempotency_key = 'jr-4';
INSERT INTO @replays(job_ids)
SELECT '[' || (SELECT id FROM @jobs WHERE idempotency_key = 'jr-1')
       || ', \"x\", 1.5, -1, \"' || (SELECT id FROM @jobs WHERE idempotency_key = 'jr-3')
       || '\", ' || (SELECT id FROM @jobs WHERE idempotency_key = 'jr-4') || ']';
INSERT INTO @replays(job_ids) VALUES ('[]');
"
REPLAY_ROWS="SELECT idempotency_key || '|' || state || '|' || generation
  FROM @jobs WHERE idempotency_key LIKE 'jr-%'
UNION ALL SELECT 'replayed ' || replayed FROM @replays WHERE job_ids IS NOT NULL
ORDER BY 1"
check "the outputs scenario runs on PostgreSQL" \
  pg_psql -c "$(pg_sql "$OUT_SCENARIO")" -o /dev/null
eq "job_outputs: the output text of chat, completions and responses; JSON when asked; NULL otherwise" \
  "jo-1|hello|<null>
jo-2|{\"answer\": 42}|42
jo-3|abc|<null>
jo-4|abc|<null>
jo-5|not json|<null>
jo-6|<null>|<null>
jo-7|<null>|<null>
jo-8|<null>|<null>
jo-9|<null>|<null>
jo-a|[1,2]|2" "$(q "$(pg_sql "$OUT_ROWS")")"
eq "the job_outputs rows are SQLite's view's" \
  "$(sqlite3 :memory: ".read $SLUICE_ROOT/schema/schema.sql" \
      "$(lite_sql "$OUT_SCENARIO")" "$(lite_sql "$OUT_ROWS")" 2>&1)" \
  "$(q "$(pg_sql "$OUT_ROWS")")"
check "the replay-by-id scenario runs on PostgreSQL" \
  pg_psql -c "$(pg_sql "$REPLAY_SCENARIO")" -o /dev/null
eq "replays(job_ids) replays the listed failed jobs only (an id as a number or a string; 1.5, \"x\", -1 match none; cancelled stays)" \
  "jr-1|pending|1
jr-2|failed|0
jr-3|pending|1
jr-4|cancelled|0
replayed 0
replayed 2" "$(q "$(pg_sql "$REPLAY_ROWS")")"
eq "replay by id moves the jobs SQLite's trigger moves" \
  "$(sqlite3 :memory: ".read $SLUICE_ROOT/schema/schema.sql" \
      "$(lite_sql "$REPLAY_SCENARIO")" "$(lite_sql "$REPLAY_ROWS")" 2>&1)" \
  "$(q "$(pg_sql "$REPLAY_ROWS")")"
refuse "job_ids that is an object" "job_ids must be a JSON array of job ids" \
  "INSERT INTO sluice.replays(job_ids) VALUES ('{\"id\": 1}')"
refuse "job_ids that is not JSON" "job_ids must be a JSON array of job ids" \
  "INSERT INTO sluice.replays(job_ids) VALUES ('1, 2')"
refuse "an unknown dashboard action" "unknown dashboard action" \
  "INSERT INTO sluice.dashboard_actions(action, outcome) VALUES ('delete', 'ok')"

# Migration 0016: a door insert's body is moved to job_bodies once, model
# and out_tokens are taken from it, an UPDATE of body replaces it, and
# deleting the job deletes it; the same rows as SQLite's triggers give.
BODY_SCENARIO="INSERT INTO @jobs(idempotency_key, body) VALUES
  ('bd-1', '{\"model\":\"m1\",\"max_output_tokens\":40}'),
  ('bd-2', '{\"model\":\"m2\",\"max_tokens\":7.9,\"max_completion_tokens\":0}'),
  ('bd-3', '{\"model\":\"m3\",\"stream\":false}'),
  ('bd-4', '{\"model\":\"m4\"}');
UPDATE @jobs SET body = '{\"model\":\"m5\",\"max_tokens\":3}'
 WHERE idempotency_key = 'bd-4';
DELETE FROM @jobs WHERE idempotency_key = 'bd-3';"
BODY_ROWS="SELECT j.idempotency_key, j.body IS NULL, j.model, j.out_tokens,
       (SELECT count(*) FROM @job_bodies b WHERE b.job_id = j.id),
       (SELECT b.body FROM @job_bodies b WHERE b.job_id = j.id)
  FROM @jobs j WHERE j.idempotency_key LIKE 'bd-%'
 ORDER BY j.idempotency_key"
check "the body scenario runs on PostgreSQL" \
  pg_psql -c "$(pg_sql "$BODY_SCENARIO")" -o /dev/null
eq "door bodies live in job_bodies, model and out_tokens taken from them" \
  "bd-1|t|m1|40|1|{\"model\":\"m1\",\"max_output_tokens\":40}
bd-2|t|m2|7|1|{\"model\":\"m2\",\"max_tokens\":7.9,\"max_completion_tokens\":0}
bd-4|t|m5|3|1|{\"model\":\"m5\",\"max_tokens\":3}" \
  "$(q "$(pg_sql "$BODY_ROWS")")"
eq "a deleted job's body goes with it" "0" \
  "$(q "SELECT count(*) FROM sluice.job_bodies b WHERE NOT EXISTS
          (SELECT 1 FROM sluice.jobs j WHERE j.id = b.job_id)")"
eq "the body scenario gives SQLite's rows" \
  "$(sqlite3 :memory: "PRAGMA foreign_keys=ON" ".read $SLUICE_ROOT/schema/schema.sql" \
      "$(lite_sql "$BODY_SCENARIO")" "$(lite_sql "$BODY_ROWS")" 2>&1 |
     sed 's/^\(bd-[0-9]\)|1|/\1|t|/')" \
  "$(q "$(pg_sql "$BODY_ROWS")")"

# A reader's query that calls json_valid under a parallel plan works (the
# function's exception block cannot run in a parallel worker).
q "INSERT INTO sluice.jobs(body) SELECT '$J' FROM generate_series(1, 2000)" >/dev/null
eq "json_valid in a parallel scan" "$(njobs)" \
  "$(pg_psql -c "SET parallel_setup_cost = 0" -c "SET parallel_tuple_cost = 0" \
       -c "SET min_parallel_table_scan_size = 0" -c "SET max_parallel_workers_per_gather = 2" \
       -c "SELECT count(*) FROM sluice.job_bodies WHERE sluice.json_valid(body)" 2>&1)"

# ------------------------------------------------------------ state machine
# Migration 0013: every pair of states, as test_jobs tries them on SQLite.
# A job is brought to FROM along allowed edges, then UPDATEd to TO: the
# lifecycle's pairs are taken, every other is refused and leaves the job.
allowed="pending>running pending>batched pending>failed pending>cancelled
 running>succeeded running>pending running>failed batched>succeeded
 batched>pending batched>failed batched>cancelled failed>pending
 cancelled>pending"
allowed=" $(echo $allowed) " # one line, one space between pairs
path() { case $1 in
  running) echo running ;; batched) echo batched ;;
  succeeded) echo running succeeded ;; failed) echo running failed ;;
  cancelled) echo cancelled ;; esac; }
ok_pairs=0 refused_pairs=0 wrong=""
for from in pending running batched succeeded failed cancelled; do
  for to in pending running batched succeeded failed cancelled; do
    [ "$from" = "$to" ] && continue
    id=$(q "INSERT INTO sluice.jobs(queue, body) VALUES ('sm', '$J') RETURNING id")
    for s in $(path "$from"); do
      q "UPDATE sluice.jobs SET state = '$s' WHERE id = $id" >/dev/null
    done
    if out=$(pg_psql -c "UPDATE sluice.jobs SET state = '$to' WHERE id = $id" 2>&1); then
      case $allowed in *" $from>$to "*) ok_pairs=$((ok_pairs + 1)) ;;
        *) wrong="$wrong $from>$to(taken)" ;; esac
    else
      case $allowed in *" $from>$to "*) wrong="$wrong $from>$to(refused: $out)" ;;
        *) case $out in *"a $from job "*|*"succeeded job is final"*|*"can only become pending (replay)"*)
             refused_pairs=$((refused_pairs + 1)) ;;
           *) wrong="$wrong $from>$to(message: $out)" ;; esac ;; esac
      [ "$(q "SELECT state FROM sluice.jobs WHERE id = $id")" = "$from" ] ||
        wrong="$wrong $from>$to(moved)"
    fi
  done
done
eq "every lifecycle pair is taken and every other refused by name (30 pairs)" \
  "13|17|" "$ok_pairs|$refused_pairs|$wrong"
id=$(q "INSERT INTO sluice.jobs(queue, body) VALUES ('sm', '$J') RETURNING id")
q "UPDATE sluice.jobs SET last_class = 'invalid_output' WHERE id = $id" >/dev/null
eq "a known failure class is taken" "invalid_output" \
  "$(q "SELECT last_class FROM sluice.jobs WHERE id = $id")"
refuse "an unknown last_class" "unknown failure class; the classes are rate_limited" \
  "UPDATE sluice.jobs SET last_class = 'rate_limit' WHERE id = $id"
refuse "an unknown last_class at INSERT" "unknown failure class" \
  "INSERT INTO sluice.jobs(body, last_class) VALUES ('$J', 'bogus')"
refuse "an unknown attempts.failure_class" "unknown failure class" \
  "INSERT INTO sluice.attempts(job_id, attempt, generation, route, finished_at, failure_class)
   VALUES ($id, 1, 0, 'online', 1, 'none')"
eq "workable_jobs: the pending jobs of unpaused queues" "1|0" \
  "$(q "SELECT count(*) FILTER (WHERE id = $id), count(*) FILTER (WHERE state <> 'pending') FROM sluice.workable_jobs")"
q "DELETE FROM sluice.attempts WHERE job_id IN (SELECT id FROM sluice.jobs WHERE queue = 'sm');
   DELETE FROM sluice.jobs WHERE queue = 'sm'" >/dev/null

# ------------------------------------------------------------ NOTIFY
"$LISTEN" "host=127.0.0.1 port=$PGPORT user=$PGUSER dbname=door" sluice_jobs 20 \
  >"$T/notes" 2>"$T/listen.err" &
LPID=$!
PIDS+=("$LPID")
check "the listener is listening" wait_for 10 grep -qx listening "$T/notes"
# a rollback and a no-op dedup notify nothing; a 100-row insert into one
# queue notifies once; two queues in one statement notify each.
q "BEGIN; INSERT INTO sluice.jobs(queue, body) VALUES ('rolled', '$J'); ROLLBACK" >/dev/null
q "INSERT INTO sluice.jobs(queue, idempotency_key, body) VALUES ('dup', 'order-42', '$J')
   ON CONFLICT (idempotency_key) DO NOTHING" >/dev/null
q "INSERT INTO sluice.jobs(queue, body) VALUES ('n1', '$J')" >/dev/null
q "INSERT INTO sluice.jobs(queue, body) SELECT 'bulk', '$J' FROM generate_series(1, 100)" >/dev/null
q "INSERT INTO sluice.jobs(queue, body) VALUES ('a2', '$J'), ('b2', '$J'), ('a2', '$J')" >/dev/null
q "INSERT INTO sluice.replays(queue) VALUES ('other')" >/dev/null
q "NOTIFY sluice_jobs, '__end__'" >/dev/null
wait "$LPID"
eq "the listener saw the end marker in time" "0" "$?"
eq "notifications: one per queue per inserting statement, at commit, and one per replay" \
  "listening n1 bulk a2 b2 other" "$(tr '\n' ' ' <"$T/notes" | sed 's/ $//')"

finish
