-- sluice journal schema: the readable reference.
--
-- This file is what the journal looks like after every migration under
-- migrations/ has run; tests/unit/test_migrations.c proves the two agree.
-- Never edit an applied migration: add a new one and update this file.
--
-- Conventions: STRICT tables; times are integer Unix milliseconds; the
-- expression below is "now" in milliseconds (SQLite 3.40 has no
-- unixepoch('subsec')):
--   CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)
-- Constraint names are sentences, so that a refused INSERT from the sqlite3
-- CLI reads "CHECK constraint failed: body must be valid JSON".
-- A CHECK lists allowed values with OR, not IN: SQLite builds a temporary
-- index for an IN list of three or more values each time the CHECK runs,
-- that is for every row written (bench/bench_journal.c measures it).

-- One row per key of journal-wide facts (journal_id: the id this journal
-- puts in Batch API metadata so that a worker can find its own batches).
CREATE TABLE meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
) STRICT;

-- Per-queue settings. A queue needs no row to exist; a row holds a pause.
CREATE TABLE queues (
  name          TEXT PRIMARY KEY,
  paused        INTEGER NOT NULL DEFAULT 0
                CONSTRAINT "paused must be 0 or 1" CHECK (paused IN (0, 1)),
  paused_reason TEXT,
  paused_at     INTEGER
) STRICT;

-- Local Batch API batches. A row exists (state 'building', jobs linked)
-- before anything is sent (invariant 4); remote ids are filled in as the
-- API returns them.
CREATE TABLE batches (
  id              INTEGER PRIMARY KEY,
  endpoint        TEXT NOT NULL,
  state           TEXT NOT NULL DEFAULT 'building'
                  CONSTRAINT "unknown batch state"
                  CHECK (state = 'building' OR state = 'uploaded'
                         OR state = 'submitted' OR state = 'ingesting'
                         OR state = 'done' OR state = 'failed'
                         OR state = 'cancelled'),
  remote_file_id  TEXT,
  remote_batch_id TEXT UNIQUE,
  remote_status   TEXT,
  output_file_id  TEXT,
  error_file_id   TEXT,
  request_count   INTEGER NOT NULL DEFAULT 0,
  completed_count INTEGER NOT NULL DEFAULT 0,
  failed_count    INTEGER NOT NULL DEFAULT 0,
  error           TEXT,
  created_at      INTEGER NOT NULL
                  DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)),
  submitted_at    INTEGER,
  next_poll_at    INTEGER,
  finished_at     INTEGER,
  -- The worker driving the batch (its route's token) holds it until
  -- lease_expires; another worker adopts it only after that.
  lease_token     INTEGER,
  lease_expires   INTEGER
  -- The worker (workers.id) driving the batch: when that process is gone,
  -- a worker on its host adopts the batch at once. Written as ALTER TABLE
  -- ADD COLUMN leaves it (migration 0004), which the test compares.
  , worker_id INTEGER) STRICT;

-- The queue itself. Only `body` is required from a producer.
CREATE TABLE jobs (
  id              INTEGER PRIMARY KEY,
  queue           TEXT NOT NULL DEFAULT 'default'
                  CONSTRAINT "queue must be 1 to 128 characters"
                  CHECK (length(queue) BETWEEN 1 AND 128),
  partition       TEXT NOT NULL DEFAULT '',
  urgency         TEXT NOT NULL DEFAULT 'urgent'
                  CONSTRAINT "urgency must be urgent or deferrable"
                  CHECK (urgency IN ('urgent', 'deferrable')),
  priority        INTEGER NOT NULL DEFAULT 0
                  CONSTRAINT "priority must not be negative"
                  CHECK (priority >= 0),
  run_after       INTEGER NOT NULL
                  DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)),
  deadline        INTEGER,
  state           TEXT NOT NULL DEFAULT 'pending'
                  CONSTRAINT "unknown job state"
                  CHECK (state = 'pending' OR state = 'running'
                         OR state = 'batched' OR state = 'succeeded'
                         OR state = 'failed' OR state = 'cancelled'),
  attempts        INTEGER NOT NULL DEFAULT 0,
  max_attempts    INTEGER NOT NULL DEFAULT 5
                  CONSTRAINT "max_attempts must be at least 1"
                  CHECK (max_attempts >= 1),
  -- The generated key is time-ordered like a UUIDv7 (12 hex digits of
  -- creation time in ms, then 80 random bits): new keys append to the
  -- unique index instead of landing on random pages, which halves the cost
  -- of enqueueing into a large backlog (bench/bench_journal.c).
  idempotency_key TEXT NOT NULL UNIQUE
                  DEFAULT (printf('%012x', CAST((julianday('now')
                    - 2440587.5) * 86400000.0 AS INTEGER))
                    || lower(hex(randomblob(10))))
                  CONSTRAINT "idempotency_key must be 1 to 255 characters"
                  CHECK (length(idempotency_key) BETWEEN 1 AND 255),
  endpoint        TEXT NOT NULL DEFAULT '/v1/responses'
                  CONSTRAINT "unknown endpoint"
                  CHECK (endpoint = '/v1/responses'
                         OR endpoint = '/v1/chat/completions'
                         OR endpoint = '/v1/embeddings'
                         OR endpoint = '/v1/completions'
                         OR endpoint = '/v1/moderations'),
  -- NULL once the body is in job_bodies (migration 0016): a producer's
  -- INSERT INTO jobs(body) is checked here, then moved by jobs_body_insert.
  body            TEXT
                  CONSTRAINT "body must be valid JSON" CHECK (body IS NULL OR json_valid(body))
                  CONSTRAINT "body must be a JSON object"
                  CHECK (NOT json_valid(body) OR json_type(body) = 'object'),
  -- Taken from the body once, at insert (sl_enqueue, or jobs_body_insert
  -- for a producer's INSERT), so it can never disagree with what is sent.
  model           TEXT,
  lease_token     INTEGER,
  lease_expires   INTEGER,
  -- Bumped by each replay; batch custom_ids carry it.
  generation      INTEGER NOT NULL DEFAULT 0,
  last_class      TEXT,
  last_error      TEXT,
  batch_id        INTEGER REFERENCES batches (id),
  created_at      INTEGER NOT NULL
                  DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)),
  updated_at      INTEGER,
  finished_at     INTEGER,
  -- The worker (workers.id) that claimed the job last, set by the claim
  -- (migration 0004; no foreign key, so a dead worker's row can go).
  worker_id       INTEGER,
  -- Added by migrations/0009 (after the last column, as ALTER TABLE puts
  -- it): the producer's own JSON object, never sent to the API.
  metadata        TEXT NOT NULL DEFAULT '{}'
                  CONSTRAINT "metadata must be a JSON object"
                  CHECK (json_valid(metadata) AND json_type(metadata) = 'object'),
  -- Migration 0016: the body's output cap (max_output_tokens,
  -- max_completion_tokens or max_tokens, the first >= 1; 0: none), for
  -- the worker's token estimate; NULL for a job enqueued before 0016.
  out_tokens      INTEGER,
  -- Migration 0020: the job's line in a Batch API input file, in bytes
  -- (jobs.h's SL_SQL_LINE_BYTES), and its embedding inputs (SL_SQL_INPUTS),
  -- taken from the body at insert like model; what batch_backlog counts.
  -- NULL for a job that succeeded before 0020.
  line_bytes      INTEGER,
  inputs          INTEGER,
  CONSTRAINT "body must name a model"
    CHECK (endpoint = '/v1/moderations'
           OR CASE WHEN body IS NULL THEN model IS NOT NULL
                   WHEN NOT json_valid(body) THEN 1
                   WHEN json_type(body) <> 'object' THEN 1
                   ELSE json_type(body, '$.model') = 'text' END),
  CONSTRAINT "deadline must not be negative"
    CHECK (deadline IS NULL OR deadline >= 0)
) STRICT;

-- The claim walks this index's urgent and deferrable ranges, each in
-- (priority, run_after, id) order, and merges them (migration 0012): an
-- index entry ends with the rowid (= id), so id is not a column here.
CREATE INDEX jobs_pending ON jobs (urgency, priority, run_after)
  WHERE state = 'pending';
-- Rescue finds expired leases here.
CREATE INDEX jobs_running ON jobs (lease_expires) WHERE state = 'running';
CREATE INDEX jobs_batched ON jobs (batch_id) WHERE state = 'batched';
CREATE INDEX jobs_failed ON jobs (queue, partition) WHERE state = 'failed';

-- A succeeded job is final, and every other change of state follows the
-- lifecycle: jobs_state_transition (migration 0013, at the end).

-- One row per attempt (invariant 6), online or batch, including attempts
-- lost to a crash (class 'ambiguous', recorded by rescue).
CREATE TABLE attempts (
  id            INTEGER PRIMARY KEY,
  job_id        INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  attempt       INTEGER NOT NULL,
  generation    INTEGER NOT NULL,
  route         TEXT NOT NULL
                CONSTRAINT "route must be online, batch or rescue"
                CHECK (route = 'online' OR route = 'batch'
                       OR route = 'rescue'),
  started_at    INTEGER,
  finished_at   INTEGER NOT NULL,
  http_status   INTEGER,
  failure_class TEXT,   -- NULL: the attempt succeeded
  request_id    TEXT,
  dns_ms        REAL,
  connect_ms    REAL,
  tls_ms        REAL,
  first_byte_ms REAL,
  total_ms      REAL,
  error         TEXT
) STRICT;
CREATE INDEX attempts_job ON attempts (job_id);

-- At most one result per job (invariant 1): job_id is the key, and the
-- triggers below refuse both UPDATE and INSERT OR REPLACE.
CREATE TABLE results (
  job_id        INTEGER PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
  generation    INTEGER NOT NULL,
  route         TEXT NOT NULL,
  http_status   INTEGER NOT NULL,
  request_id    TEXT,
  input_tokens  INTEGER,
  output_tokens INTEGER,
  total_tokens  INTEGER,
  body          TEXT NOT NULL,
  created_at    INTEGER NOT NULL
) STRICT;

CREATE TRIGGER results_never_overwritten
BEFORE INSERT ON results
WHEN EXISTS (SELECT 1 FROM results WHERE job_id = NEW.job_id)
BEGIN
  SELECT RAISE(ABORT, 'the job already has a result; results are never overwritten');
END;

CREATE TRIGGER results_are_immutable
BEFORE UPDATE ON results
BEGIN
  SELECT RAISE(ABORT, 'results are immutable');
END;

-- The audit of every replay, and its SQL door:
--   INSERT INTO replays(queue, partition) VALUES('default', 'tenant-7');
--   INSERT INTO replays(job_ids) VALUES('[42, 43]');
-- The trigger below replays at once, in the inserting transaction, so the
-- CLI, the C API and plain SQL share one mechanism.
CREATE TABLE replays (
  id                INTEGER PRIMARY KEY,
  queue             TEXT,
  partition         TEXT,
  failure_class     TEXT,
  batch_id          INTEGER,
  since             INTEGER,
  until             INTEGER,
  include_cancelled INTEGER NOT NULL DEFAULT 0
                    CONSTRAINT "include_cancelled must be 0 or 1"
                    CHECK (include_cancelled IN (0, 1)),
  door              TEXT NOT NULL DEFAULT 'sql'
                    CONSTRAINT "door must be sql, cli or api"
                    CHECK (door = 'sql' OR door = 'cli' OR door = 'api'),
  requested_at      INTEGER NOT NULL
                    DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)),
  replayed          INTEGER
  -- Added by migrations/0010 (ALTER TABLE writes it this way, after the
  -- last column): replay these jobs only, a JSON array of ids.
  , job_ids         TEXT
                    CONSTRAINT "job_ids must be a JSON array of job ids"
                    CHECK (job_ids IS NULL OR (json_valid(job_ids)
                                               AND json_type(job_ids) = 'array'))) STRICT;

CREATE TRIGGER replays_apply
AFTER INSERT ON replays
BEGIN
  UPDATE jobs
     SET state = 'pending', generation = generation + 1, attempts = 0,
         run_after = NEW.requested_at, last_class = NULL, last_error = NULL,
         lease_token = NULL, lease_expires = NULL, batch_id = NULL,
         finished_at = NULL, updated_at = NEW.requested_at
   WHERE (state = 'failed' OR (state = 'cancelled' AND NEW.include_cancelled))
     AND (NEW.queue IS NULL OR queue = NEW.queue)
     AND (NEW.partition IS NULL OR partition = NEW.partition)
     AND (NEW.failure_class IS NULL OR last_class = NEW.failure_class)
     AND (NEW.batch_id IS NULL OR batch_id = NEW.batch_id)
     AND (NEW.since IS NULL OR finished_at >= NEW.since)
     AND (NEW.until IS NULL OR finished_at < NEW.until)
     AND (NEW.job_ids IS NULL
          OR id IN (SELECT value FROM json_each(NEW.job_ids)));
  UPDATE replays SET replayed = changes() WHERE id = NEW.id;
END;

-- Admin views. queue_stats reads the counts of job_counts (migration
-- 0015), not the jobs.
CREATE VIEW queue_stats AS
SELECT c.queue,
       sum(CASE WHEN c.state = 'pending' THEN c.n ELSE 0 END)   AS pending,
       sum(CASE WHEN c.state = 'running' THEN c.n ELSE 0 END)   AS running,
       sum(CASE WHEN c.state = 'batched' THEN c.n ELSE 0 END)   AS batched,
       sum(CASE WHEN c.state = 'succeeded' THEN c.n ELSE 0 END) AS succeeded,
       sum(CASE WHEN c.state = 'failed' THEN c.n ELSE 0 END)    AS failed,
       sum(CASE WHEN c.state = 'cancelled' THEN c.n ELSE 0 END) AS cancelled,
       -- age of the oldest pending job that is due; NULL if none
       CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)
         - (SELECT min(run_after) FROM jobs
             WHERE state = 'pending' AND queue = c.queue
               AND run_after <= CAST((julianday('now') - 2440587.5)
                                     * 86400000.0 AS INTEGER)) AS lag_ms
  FROM job_counts c
 GROUP BY c.queue
HAVING sum(c.n) <> 0;

CREATE VIEW failed_jobs AS
SELECT j.id, j.queue, j.partition, j.endpoint, j.model, j.attempts,
       j.last_class, j.last_error, j.finished_at
  FROM jobs j
 WHERE j.state = 'failed';

-- ---------------------------------------------------------------------
-- Added by migrations/0002_storm.sql (storm and cost control).
-- ---------------------------------------------------------------------

-- Storm and cost control (README "Storm control"): state that every
-- `sluice work` process on the journal shares, so that a rate limit, a
-- circuit breaker or a budget holds for all of them together.

-- Per-queue settings of the online route: a pause that only online claims
-- honour (quota, auth, a spent budget; the batch route keeps flowing), a
-- token budget per UTC day, and an optional price table for status.
--   INSERT INTO queue_limits(queue, tokens_per_day) VALUES('bulk', 2000000);
CREATE TABLE queue_limits (
  queue                TEXT PRIMARY KEY,
  online_paused        INTEGER NOT NULL DEFAULT 0
                       CONSTRAINT "online_paused must be 0 or 1"
                       CHECK (online_paused IN (0, 1)),
  online_paused_reason TEXT,
  online_paused_at     INTEGER,
  tokens_per_day       INTEGER
                       CONSTRAINT "tokens_per_day must not be negative"
                       CHECK (tokens_per_day IS NULL OR tokens_per_day >= 0),
  usd_per_mtok_in      REAL
                       CONSTRAINT "prices must not be negative"
                       CHECK (usd_per_mtok_in IS NULL OR usd_per_mtok_in >= 0),
  usd_per_mtok_out     REAL
                       CONSTRAINT "prices must not be negative"
                       CHECK (usd_per_mtok_out IS NULL
                              OR usd_per_mtok_out >= 0)
) STRICT;

-- Tokens used per queue and UTC day (day = ms / 86400000), online and
-- batch alike: the library adds its results' usage per transaction, the
-- trigger below every other writer's.
CREATE TABLE usage_daily (
  queue         TEXT NOT NULL,
  day           INTEGER NOT NULL,
  jobs          INTEGER NOT NULL DEFAULT 0,
  input_tokens  INTEGER NOT NULL DEFAULT 0,
  output_tokens INTEGER NOT NULL DEFAULT 0,
  total_tokens  INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (queue, day)
) STRICT;

-- usage_summed holds a row only inside a library write transaction that
-- adds its results' usage itself, once per (queue, day) (migration 0019);
-- every other writer's results are counted here, row by row.
CREATE TABLE usage_summed (
  holder INTEGER PRIMARY KEY
) STRICT;

CREATE TRIGGER results_usage
AFTER INSERT ON results
WHEN (NEW.total_tokens IS NOT NULL OR NEW.input_tokens IS NOT NULL
      OR NEW.output_tokens IS NOT NULL)
  AND NOT EXISTS (SELECT 1 FROM usage_summed)
BEGIN
  INSERT INTO usage_daily (queue, day, jobs, input_tokens, output_tokens,
                           total_tokens)
  VALUES ((SELECT queue FROM jobs WHERE id = NEW.job_id),
          NEW.created_at / 86400000, 1, coalesce(NEW.input_tokens, 0),
          coalesce(NEW.output_tokens, 0),
          coalesce(NEW.total_tokens, coalesce(NEW.input_tokens, 0)
                                     + coalesce(NEW.output_tokens, 0)))
  ON CONFLICT (queue, day) DO UPDATE SET
    jobs = jobs + 1,
    input_tokens = input_tokens + excluded.input_tokens,
    output_tokens = output_tokens + excluded.output_tokens,
    total_tokens = total_tokens + excluded.total_tokens;
END;

-- One shared token bucket pair per (endpoint, model): requests and tokens
-- per minute. Workers take grants (small chunks) from the levels in short
-- BEGIN IMMEDIATE transactions. rpm/tpm come from configuration or the
-- x-ratelimit-limit-* headers (0: unknown, no limit); factor is the AIMD
-- share of the limit in use (cut on 429, raised while requests succeed).
CREATE TABLE rate_buckets (
  endpoint      TEXT NOT NULL,
  model         TEXT NOT NULL,
  rpm           REAL NOT NULL DEFAULT 0,
  tpm           REAL NOT NULL DEFAULT 0,
  factor        REAL NOT NULL DEFAULT 1,
  req_level     REAL NOT NULL DEFAULT 0,
  tok_level     REAL NOT NULL DEFAULT 0,
  refilled_at   INTEGER NOT NULL DEFAULT 0,
  blocked_until INTEGER NOT NULL DEFAULT 0,
  last_cut_at   INTEGER NOT NULL DEFAULT 0,
  granted_req   INTEGER NOT NULL DEFAULT 0,
  granted_tok   INTEGER NOT NULL DEFAULT 0,
  cuts          INTEGER NOT NULL DEFAULT 0,
  updated_at    INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (endpoint, model)
) STRICT;

-- One circuit breaker per (endpoint, model). The window is two buckets
-- (current and previous) of window_ms each, weighted as a sliding window.
CREATE TABLE breakers (
  endpoint      TEXT NOT NULL,
  model         TEXT NOT NULL,
  state         TEXT NOT NULL DEFAULT 'closed'
                CONSTRAINT "unknown breaker state"
                -- OR, not IN: SQLite 3.40 builds a temporary table per
                -- write for an IN list of three or more
                CHECK (state = 'closed' OR state = 'open'
                       OR state = 'half_open'),
  window_start  INTEGER NOT NULL DEFAULT 0,
  ok_cur        INTEGER NOT NULL DEFAULT 0,
  fail_cur      INTEGER NOT NULL DEFAULT 0,
  ok_prev       INTEGER NOT NULL DEFAULT 0,
  fail_prev     INTEGER NOT NULL DEFAULT 0,
  opened_at     INTEGER NOT NULL DEFAULT 0,
  open_until    INTEGER NOT NULL DEFAULT 0,
  open_ms       INTEGER NOT NULL DEFAULT 0,
  probes_out    INTEGER NOT NULL DEFAULT 0,
  probes_ok     INTEGER NOT NULL DEFAULT 0,
  probe_expires INTEGER NOT NULL DEFAULT 0,
  trips         INTEGER NOT NULL DEFAULT 0,
  last_class    TEXT,
  updated_at    INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (endpoint, model)
) STRICT;

-- ---------------------------------------------------------------------
-- Added by migrations/0003_sql_door.sql (the SQL door, issue 10).
-- ---------------------------------------------------------------------

-- The SQL door refuses jobs that no worker could finish. SQLite cannot add
-- a CHECK to an existing table, so these are triggers; each RAISE names the
-- problem, as the CHECKs do.
-- Only INSERT and updates of the named columns pay for them: the claim and
-- completion UPDATEs set none of queue, partition or body, so their hot
-- path is unchanged. Rows written before this migration are left as they
-- are (the CLI escapes whatever it prints).
-- One CASE per trigger, not one SELECT per check: running the trigger
-- costs more than its tests, and each statement adds to it. The cheap
-- tests gate the dear ones: JSON is parsed only for a body that holds
-- "stream" or a \u escape (the only other way to spell the key), then
-- json_each, which unescapes keys and sees every duplicate (json_type with
-- a path does neither), and only a name with a byte beyond printable ASCII is searched for C0 (1 to
-- 31) and DEL; NUL is found by instr (GLOB stops at a NUL).

-- Migration 0023: an AFTER trigger (a BEFORE INSERT trigger cost every
-- insert about 6k instructions, its WHEN false or not; RAISE(ABORT) undoes
-- the row all the same, a CHECK's message now comes first), skipped for a
-- row sl_enqueue_many's groups insert while job_counts_summed holds a row
-- and whose body went straight to job_bodies: the library never names the
-- worker's columns, refuses control characters itself, and sends any
-- body that could hold "stream" through jobs.body, which runs the door.
CREATE TRIGGER jobs_insert_door
AFTER INSERT ON jobs
WHEN NEW.body IS NOT NULL
  OR NOT EXISTS (SELECT 1 FROM job_counts_summed)
BEGIN
  SELECT CASE
    -- running with no lease is never rescued; succeeded with no result,
    -- batched with no batch: only the worker moves a job out of pending.
    WHEN NEW.state = 'running' OR NEW.state = 'batched'
      OR NEW.state = 'succeeded' OR NEW.state = 'failed'
      OR NEW.state = 'cancelled'
    THEN RAISE(ABORT, 'a new job must be pending; only the worker sets other states')
    WHEN NEW.attempts < 0 OR NEW.attempts > NEW.max_attempts
    THEN RAISE(ABORT, 'attempts must be 0 to max_attempts')
    WHEN NEW.lease_token IS NOT NULL OR NEW.lease_expires IS NOT NULL
      OR NEW.batch_id IS NOT NULL
    THEN RAISE(ABORT, 'a new job has no lease or batch; only the worker sets lease_token, lease_expires and batch_id')
    WHEN NEW.last_class IS NOT NULL
      AND NOT (NEW.last_class = 'rate_limited' OR NEW.last_class = 'quota_exhausted'
           OR NEW.last_class = 'server_error' OR NEW.last_class = 'overloaded'
           OR NEW.last_class = 'timeout' OR NEW.last_class = 'network'
           OR NEW.last_class = 'tls' OR NEW.last_class = 'ambiguous'
           OR NEW.last_class = 'auth' OR NEW.last_class = 'invalid_request'
           OR NEW.last_class = 'too_large' OR NEW.last_class = 'conflict'
           OR NEW.last_class = 'batch_expired' OR NEW.last_class = 'batch_failed'
           OR NEW.last_class = 'deadline_exceeded'
           OR NEW.last_class = 'cancelled' OR NEW.last_class = 'invalid_output')
    THEN RAISE(ABORT, 'unknown failure class; the classes are rate_limited, quota_exhausted, server_error, overloaded, timeout, network, tls, ambiguous, auth, invalid_request, too_large, conflict, batch_expired, batch_failed, deadline_exceeded, cancelled, invalid_output')
    WHEN (instr(NEW.body, '"stream"') OR instr(NEW.body, '\u'))
      AND CASE WHEN json_valid(NEW.body)
               THEN EXISTS (SELECT 1 FROM json_each(NEW.body)
                             WHERE key = 'stream' AND type = 'true') END
    THEN RAISE(ABORT, 'streaming is not supported; remove "stream": true from the body')
    WHEN (NEW.queue GLOB '*[^ -~]*' AND NEW.queue GLOB
           '*[' || char(1) || '-' || char(31) || char(127) || ']*')
      OR instr(NEW.queue, char(0))
    THEN RAISE(ABORT, 'queue must not contain control characters')
    WHEN (NEW.partition GLOB '*[^ -~]*' AND NEW.partition GLOB
           '*[' || char(1) || '-' || char(31) || char(127) || ']*')
      OR instr(NEW.partition, char(0))
    THEN RAISE(ABORT, 'partition must not contain control characters')
  END;
END;

-- The same for a later UPDATE of the names or the body (rare, never on the
-- claim or completion path).
CREATE TRIGGER jobs_update_door
BEFORE UPDATE OF queue, partition, body ON jobs
BEGIN
  SELECT CASE
    WHEN (instr(NEW.body, '"stream"') OR instr(NEW.body, '\u'))
      AND CASE WHEN json_valid(NEW.body)
               THEN EXISTS (SELECT 1 FROM json_each(NEW.body)
                             WHERE key = 'stream' AND type = 'true') END
    THEN RAISE(ABORT, 'streaming is not supported; remove "stream": true from the body')
    WHEN (NEW.queue GLOB '*[^ -~]*' AND NEW.queue GLOB
           '*[' || char(1) || '-' || char(31) || char(127) || ']*')
      OR instr(NEW.queue, char(0))
    THEN RAISE(ABORT, 'queue must not contain control characters')
    WHEN (NEW.partition GLOB '*[^ -~]*' AND NEW.partition GLOB
           '*[' || char(1) || '-' || char(31) || char(127) || ']*')
      OR instr(NEW.partition, char(0))
    THEN RAISE(ABORT, 'partition must not contain control characters')
  END;
END;

-- The file header names a sluice journal ("SLUI"; migrations/0007).
PRAGMA application_id = 1397511497;

-- ---------------------------------------------------------------------
-- Added by migrations/0009_job_metadata.sql (job metadata, finding jobs).
-- ---------------------------------------------------------------------

-- One row per top-level metadata key, so that `--metadata K=V` is an index
-- lookup, not a scan of every body. Kept by the triggers below; jobs with
-- no metadata (the common case) pay nothing.
CREATE TABLE job_metadata (
  job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  key    TEXT NOT NULL,
  value  TEXT,
  PRIMARY KEY (job_id, key)
) STRICT, WITHOUT ROWID;
CREATE INDEX job_metadata_kv ON job_metadata (key, value);

CREATE TRIGGER jobs_metadata_insert
AFTER INSERT ON jobs
WHEN NEW.metadata <> '{}'
BEGIN
  INSERT INTO job_metadata (job_id, key, value)
  SELECT NEW.id, key, CASE WHEN type = 'true' THEN 'true'
                           WHEN type = 'false' THEN 'false'
                           ELSE CAST(value AS TEXT) END
    FROM json_each(NEW.metadata);
END;

CREATE TRIGGER jobs_metadata_update
AFTER UPDATE OF metadata ON jobs
BEGIN
  DELETE FROM job_metadata WHERE job_id = NEW.id;
  INSERT INTO job_metadata (job_id, key, value)
  SELECT NEW.id, key, CASE WHEN type = 'true' THEN 'true'
                           WHEN type = 'false' THEN 'false'
                           ELSE CAST(value AS TEXT) END
    FROM json_each(NEW.metadata);
END;

-- Filters of `sluice jobs` (newest first): the queue and partition names
-- and the creation time never change, so these cost only at insert; the
-- failed and cancelled ones change only when a job enters or leaves those
-- states. pending, running, batched and failed already have indexes (0001).
CREATE INDEX jobs_queue ON jobs (queue, partition);
CREATE INDEX jobs_created ON jobs (created_at);
CREATE INDEX jobs_failed_class ON jobs (last_class) WHERE state = 'failed';
CREATE INDEX jobs_cancelled ON jobs (finished_at) WHERE state = 'cancelled';

-- Deferrable jobs with a deadline (migration 0012): the online claim takes
-- those whose deadline cannot wait for a batch by a range seek.
CREATE INDEX jobs_pending_deadline ON jobs (deadline)
  WHERE state = 'pending' AND urgency = 'deferrable' AND deadline IS NOT NULL;

-- Worker identity (DESIGN.md "Worker identity"): one row per `sluice work`
-- process, heartbeated every third of its lease. A worker that starts on
-- the same host takes back the leases and open batches of a predecessor
-- whose process is gone (pid gone, or reused with another start time, or
-- another boot), then deletes its row. Workers on other hosts are never
-- taken over: their leases expire as usual.
CREATE TABLE workers (
  id           INTEGER PRIMARY KEY,
  host         TEXT NOT NULL,
  -- /proc/sys/kernel/random/boot_id: a reboot ends every predecessor
  boot_id      TEXT NOT NULL DEFAULT '',
  pid          INTEGER NOT NULL,
  -- /proc/PID/stat field 22 (clock ticks after boot): a reused pid differs
  proc_start   INTEGER NOT NULL DEFAULT 0,
  -- /proc/self/ns/pid: a pid only means something in its own namespace
  -- (containers sharing a hostname), so other namespaces are not judged
  pid_ns       TEXT NOT NULL DEFAULT '',
  lease_ms     INTEGER NOT NULL,
  started_at   INTEGER NOT NULL,
  heartbeat_at INTEGER NOT NULL
) STRICT;
CREATE INDEX workers_host ON workers (host);

-- Storm control II (issue 12): one adaptive concurrency limit per route
-- (endpoint, model), shared by every `sluice work` process on the journal.
-- climit is the requests in flight each process may have on the route
-- (AIMD: cut at once on 429, 503, timeouts; raised on success; slow start
-- up to ssthresh). While failing = 1 the route is held: nothing is sent
-- before probe_at, and then one probe at a time (the process that takes it
-- moves probe_at on); a probe that succeeds clears the hold for everyone.
-- Migration 0014: kept per API key too; key_id is a short non-secret
-- fingerprint of the worker's key (never the key; '' when none is sent).
CREATE TABLE route_limits (
  endpoint      TEXT NOT NULL,
  model         TEXT NOT NULL,
  key_id        TEXT NOT NULL DEFAULT '',
  climit        REAL NOT NULL DEFAULT 4,
  ssthresh      REAL NOT NULL DEFAULT 0,
  failing       INTEGER NOT NULL DEFAULT 0
                CONSTRAINT "failing must be 0 or 1"
                CHECK (failing = 0 OR failing = 1),
  fail_streak   INTEGER NOT NULL DEFAULT 0,
  held_until    INTEGER NOT NULL DEFAULT 0,
  probe_at      INTEGER NOT NULL DEFAULT 0,
  headers_seen  INTEGER NOT NULL DEFAULT 0,
  last_cut_at   INTEGER NOT NULL DEFAULT 0,
  cuts          INTEGER NOT NULL DEFAULT 0,
  last_class    TEXT,
  updated_at    INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (endpoint, model, key_id)
) STRICT;

-- The batch route under a hostile Batch API (issue 11).

-- The audit trail holds every remote submission of every job: a batched
-- job that is cancelled (by sluice cancel, the dashboard or plain SQL)
-- gets the attempt row of the submission it was packed for, whose result
-- the batch's ingest will now ignore.
CREATE TRIGGER jobs_batched_cancelled_attempt
AFTER UPDATE OF state ON jobs
WHEN OLD.state = 'batched' AND NEW.state = 'cancelled'
BEGIN
  INSERT INTO attempts (job_id, attempt, generation, route, started_at,
                        finished_at, failure_class, error)
  VALUES (OLD.id, OLD.attempts, OLD.generation, 'batch',
          (SELECT submitted_at FROM batches WHERE id = OLD.batch_id),
          coalesce(NEW.finished_at,
                   CAST((julianday('now') - 2440587.5) * 86400000.0
                        AS INTEGER)),
          'cancelled',
          'cancelled while in batch ' || coalesce(OLD.batch_id, '?')
          || coalesce(' (remote ' || (SELECT remote_batch_id FROM batches
                                       WHERE id = OLD.batch_id) || ')',
                      ' (not yet submitted)'));
END;

-- The cleanup ledger: every remote file of a batch, recorded before it is
-- uploaded (input: by the name sluice uploads it under) or as soon as the
-- API names it (output, error), and marked deleted once the API has it no
-- more. A worker deletes what a finished batch left behind, after a crash
-- or a failed delete too.
CREATE TABLE batch_files (
  id          INTEGER PRIMARY KEY,
  batch_id    INTEGER NOT NULL REFERENCES batches (id),
  kind        TEXT NOT NULL
              CONSTRAINT "batch file kind must be input, output or error"
              CHECK (kind = 'input' OR kind = 'output' OR kind = 'error'),
  name        TEXT,
  file_id     TEXT UNIQUE,
  created_at  INTEGER NOT NULL,
  deleted_at  INTEGER
) STRICT;
CREATE INDEX batch_files_live ON batch_files (batch_id)
  WHERE deleted_at IS NULL;

-- Pacing under the Batch API's enqueued-token limit, per model: the input
-- tokens each local batch is estimated to hold (set when it is packed),
-- and the limit per model, from --batch-token-limit / the config file
-- ('config') or from the API's first token_limit_exceeded message
-- ('learned'). The route keeps the estimates of a model's open batches
-- under its limit.
CREATE TABLE batch_tokens (
  batch_id    INTEGER PRIMARY KEY REFERENCES batches (id),
  model       TEXT,
  est_tokens  INTEGER NOT NULL
              CONSTRAINT "est_tokens must not be negative"
              CHECK (est_tokens >= 0)
) STRICT;
CREATE TABLE batch_token_limits (
  model         TEXT PRIMARY KEY,
  limit_tokens  INTEGER NOT NULL
                CONSTRAINT "limit_tokens must be positive"
                CHECK (limit_tokens > 0),
  source        TEXT NOT NULL
                CONSTRAINT "source must be config or learned"
                CHECK (source = 'config' OR source = 'learned'),
  updated_at    INTEGER NOT NULL
) STRICT;

-- ---------------------------------------------------------------------
-- Added by migrations/0010_job_outputs.sql (results as outputs).
-- ---------------------------------------------------------------------

-- job_outputs(job_id, output_text, output_json): the text a result carries
-- (chat: choices[0].message.content; completions: choices[0].text;
-- responses: every output_text part of the message items, joined), and,
-- when the request asked for JSON (response_format or text.format of type
-- json_schema or json_object), that text parsed. NULL where it does not
-- apply (embeddings, moderations, a refusal, text that is not JSON).
--   SELECT output_json ->> '$.answer' FROM job_outputs WHERE job_id = 42;
CREATE VIEW job_outputs AS
SELECT job_id, output_text,
       CASE WHEN wants_json AND json_valid(output_text)
            THEN json(output_text) END AS output_json
  FROM (SELECT r.job_id AS job_id,
               CASE WHEN NOT json_valid(r.body) THEN NULL
                    WHEN j.endpoint = '/v1/chat/completions'
                    THEN json_extract(r.body, '$.choices[0].message.content')
                    WHEN j.endpoint = '/v1/completions'
                    THEN json_extract(r.body, '$.choices[0].text')
                    WHEN j.endpoint = '/v1/responses'
                    -- (every json_extract/json_each below reads an
                    -- object: a result of another shape yields NULL, not
                    -- a "malformed JSON" error for the whole query)
                    THEN (SELECT group_concat(c.value ->> '$.text', '')
                            FROM json_each(r.body, '$.output') AS o,
                                 json_each(CASE WHEN o.type = 'object'
                                           AND o.value ->> '$.type' = 'message'
                                           THEN o.value ELSE '{}' END,
                                           '$.content') AS c
                           WHERE CASE WHEN c.type = 'object'
                                 THEN c.value ->> '$.type' END = 'output_text')
               END AS output_text,
               coalesce(json_valid(b.body)
                 AND (json_extract(b.body, '$.response_format.type')
                        IN ('json_schema', 'json_object')
                      OR json_extract(b.body, '$.text.format.type')
                        IN ('json_schema', 'json_object')), 0) AS wants_json
          FROM results r JOIN jobs j ON j.id = r.job_id
               LEFT JOIN job_bodies b ON b.job_id = r.job_id);

-- ---------------------------------------------------------------------
-- Added by migrations/0011_dashboard.sql (`sluice dashboard`).
-- ---------------------------------------------------------------------

-- Every action taken through the dashboard (pause, resume, replay by
-- filter, replay of one job, cancel) leaves a row here, refused ones too:
-- outcome is 'ok' or the reason it was refused.
CREATE TABLE dashboard_actions (
  id        INTEGER PRIMARY KEY,
  at        INTEGER NOT NULL
            DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)),
  action    TEXT NOT NULL
            CONSTRAINT "unknown dashboard action"
            CHECK (action = 'pause' OR action = 'resume' OR action = 'replay'
                   OR action = 'replay_job' OR action = 'cancel'),
  queue     TEXT,
  job_id    INTEGER,
  filter    TEXT,              -- a replay's filter, as JSON
  affected  INTEGER NOT NULL DEFAULT 0,
  outcome   TEXT NOT NULL,
  client    TEXT               -- the remote address that asked
) STRICT;

-- Failures by class over time and throughput read attempts by finish time;
-- the class is in the index so those counts never touch the table.
CREATE INDEX attempts_finished ON attempts (finished_at, failure_class);

-- ---------------------------------------------------------------------
-- Added by migrations/0013_state_machine.sql (one state machine, failure
-- classes checked). jobs_succeeded_is_final (0001) is folded into
-- jobs_state_transition; jobs_insert_door above checks last_class too.
-- ---------------------------------------------------------------------

-- The job state machine (include/sluice_states.h, SL_JOB_TRANSITION_MAP;
-- test_jobs tries every pair against both): a job moves only along these
-- edges, whoever writes the UPDATE (the worker, sqlite3, a script), and a
-- succeeded job is final. last_class holds a failure class or NULL. The
-- whole test is in WHEN, so an allowed change (every claim and completion)
-- runs no statement of the body; a row written before migration 0013 that
-- holds another class is refused only when last_class changes.
CREATE TRIGGER jobs_state_transition
BEFORE UPDATE OF state, last_class ON jobs
WHEN NOT (NEW.state = OLD.state
          OR (OLD.state = 'pending'
              AND (NEW.state = 'running' OR NEW.state = 'batched'
                   OR NEW.state = 'failed' OR NEW.state = 'cancelled'))
          OR (OLD.state = 'running'
              AND (NEW.state = 'succeeded' OR NEW.state = 'pending'
                   OR NEW.state = 'failed'))
          OR (OLD.state = 'batched'
              AND (NEW.state = 'succeeded' OR NEW.state = 'pending'
                   OR NEW.state = 'failed' OR NEW.state = 'cancelled'))
          OR ((OLD.state = 'failed' OR OLD.state = 'cancelled')
              AND NEW.state = 'pending'))
  OR (NEW.last_class IS NOT NULL AND NEW.last_class IS NOT OLD.last_class
      AND NOT (NEW.last_class = 'rate_limited' OR NEW.last_class = 'quota_exhausted'
              OR NEW.last_class = 'server_error' OR NEW.last_class = 'overloaded'
              OR NEW.last_class = 'timeout' OR NEW.last_class = 'network'
              OR NEW.last_class = 'tls' OR NEW.last_class = 'ambiguous'
              OR NEW.last_class = 'auth' OR NEW.last_class = 'invalid_request'
              OR NEW.last_class = 'too_large' OR NEW.last_class = 'conflict'
              OR NEW.last_class = 'batch_expired' OR NEW.last_class = 'batch_failed'
              OR NEW.last_class = 'deadline_exceeded'
              OR NEW.last_class = 'cancelled' OR NEW.last_class = 'invalid_output'))
BEGIN
  SELECT CASE
    WHEN NEW.last_class IS NOT NULL AND NEW.last_class IS NOT OLD.last_class
      AND NOT (NEW.last_class = 'rate_limited' OR NEW.last_class = 'quota_exhausted'
              OR NEW.last_class = 'server_error' OR NEW.last_class = 'overloaded'
              OR NEW.last_class = 'timeout' OR NEW.last_class = 'network'
              OR NEW.last_class = 'tls' OR NEW.last_class = 'ambiguous'
              OR NEW.last_class = 'auth' OR NEW.last_class = 'invalid_request'
              OR NEW.last_class = 'too_large' OR NEW.last_class = 'conflict'
              OR NEW.last_class = 'batch_expired' OR NEW.last_class = 'batch_failed'
              OR NEW.last_class = 'deadline_exceeded'
              OR NEW.last_class = 'cancelled' OR NEW.last_class = 'invalid_output')
    THEN RAISE(ABORT, 'unknown failure class; the classes are rate_limited, quota_exhausted, server_error, overloaded, timeout, network, tls, ambiguous, auth, invalid_request, too_large, conflict, batch_expired, batch_failed, deadline_exceeded, cancelled, invalid_output')
    WHEN OLD.state = 'succeeded'
    THEN RAISE(ABORT, 'a succeeded job is final and cannot change state')
    WHEN OLD.state = 'pending'
    THEN RAISE(ABORT, 'a pending job can only become running, batched, failed or cancelled')
    WHEN OLD.state = 'running'
    THEN RAISE(ABORT, 'a running job can only become succeeded, pending or failed')
    WHEN OLD.state = 'batched'
    THEN RAISE(ABORT, 'a batched job can only become succeeded, pending, failed or cancelled')
    ELSE RAISE(ABORT, 'a failed or cancelled job can only become pending (replay)')
  END;
END;

-- Every attempt's class is one of the same list (NULL: it succeeded).
CREATE TRIGGER attempts_failure_class
BEFORE INSERT ON attempts
WHEN NEW.failure_class IS NOT NULL
  AND NOT (NEW.failure_class = 'rate_limited'
           OR NEW.failure_class = 'quota_exhausted'
           OR NEW.failure_class = 'server_error'
           OR NEW.failure_class = 'overloaded' OR NEW.failure_class = 'timeout'
           OR NEW.failure_class = 'network' OR NEW.failure_class = 'tls'
           OR NEW.failure_class = 'ambiguous' OR NEW.failure_class = 'auth'
           OR NEW.failure_class = 'invalid_request'
           OR NEW.failure_class = 'too_large' OR NEW.failure_class = 'conflict'
           OR NEW.failure_class = 'batch_expired'
           OR NEW.failure_class = 'batch_failed'
           OR NEW.failure_class = 'deadline_exceeded'
           OR NEW.failure_class = 'cancelled'
           OR NEW.failure_class = 'invalid_output')
BEGIN
  SELECT RAISE(ABORT, 'unknown failure class; the classes are rate_limited, quota_exhausted, server_error, overloaded, timeout, network, tls, ambiguous, auth, invalid_request, too_large, conflict, batch_expired, batch_failed, deadline_exceeded, cancelled, invalid_output');
END;
CREATE TRIGGER attempts_failure_class_update
BEFORE UPDATE OF failure_class ON attempts
WHEN NEW.failure_class IS NOT NULL
  AND NOT (NEW.failure_class = 'rate_limited'
           OR NEW.failure_class = 'quota_exhausted'
           OR NEW.failure_class = 'server_error'
           OR NEW.failure_class = 'overloaded' OR NEW.failure_class = 'timeout'
           OR NEW.failure_class = 'network' OR NEW.failure_class = 'tls'
           OR NEW.failure_class = 'ambiguous' OR NEW.failure_class = 'auth'
           OR NEW.failure_class = 'invalid_request'
           OR NEW.failure_class = 'too_large' OR NEW.failure_class = 'conflict'
           OR NEW.failure_class = 'batch_expired'
           OR NEW.failure_class = 'batch_failed'
           OR NEW.failure_class = 'deadline_exceeded'
           OR NEW.failure_class = 'cancelled'
           OR NEW.failure_class = 'invalid_output')
BEGIN
  SELECT RAISE(ABORT, 'unknown failure class; the classes are rate_limited, quota_exhausted, server_error, overloaded, timeout, network, tls, ambiguous, auth, invalid_request, too_large, conflict, batch_expired, batch_failed, deadline_exceeded, cancelled, invalid_output');
END;

-- "Workable": a pending job of an unpaused queue, due or not. lib/jobs.h's
-- SL_SQL_WORKABLE is this WHERE clause, word for word (test_jobs compares
-- them): the claims, the next-due timer, the idle count and the batch
-- route all start from it.
CREATE VIEW workable_jobs AS
SELECT * FROM jobs
 WHERE state = 'pending' AND (NOT EXISTS (SELECT 1 FROM queues WHERE paused = 1) OR queue NOT IN (SELECT name FROM queues WHERE paused = 1));

-- ---------------------------------------------------------------------
-- Added by migrations/0015_job_counts.sql (counts kept by triggers, so
-- that status and the idle count cost O(queues); queue_stats above reads
-- them).
-- ---------------------------------------------------------------------

-- One row per (queue, state, urgency, class): urgency because the idle
-- count leaves out urgent jobs of an online-paused queue; class (the
-- failed job's last_class, 'unknown' for none; '' in every other state)
-- for the failures by class. Rows that fall to 0 stay (a queue has few).
CREATE TABLE job_counts (
  queue   TEXT NOT NULL,
  state   TEXT NOT NULL,
  urgency TEXT NOT NULL,
  class   TEXT NOT NULL,
  n       INTEGER NOT NULL,
  PRIMARY KEY (queue, state, urgency, class)
) STRICT, WITHOUT ROWID;

-- The batch backlog (migration 0020) is counted here too: a trigger that
-- is entered for every row anyway (a trigger of its own would cost every
-- insert a frame, its WHEN being tested inside it). Migration 0023: while
-- job_counts_summed holds a row (sl_enqueue_many's groups), a row whose
-- body went straight to job_bodies is counted by the library, once per key
-- (lib/sqlite/enqueue_sums.c); a body the door judges is counted here.
CREATE TRIGGER jobs_count_insert
AFTER INSERT ON jobs
WHEN NEW.body IS NOT NULL
  OR NOT EXISTS (SELECT 1 FROM job_counts_summed)
BEGIN
  INSERT INTO job_counts (queue, state, urgency, class, n)
  VALUES (NEW.queue, NEW.state, NEW.urgency,
          CASE WHEN NEW.state = 'failed'
               THEN coalesce(NEW.last_class, 'unknown') ELSE '' END, 1)
  ON CONFLICT (queue, state, urgency, class) DO UPDATE SET n = n + 1;
  INSERT INTO batch_backlog (queue, endpoint, has_model, model, jobs, bytes,
                             inputs, dated)
  SELECT NEW.queue, NEW.endpoint, NEW.model IS NOT NULL,
         coalesce(NEW.model, ''), 1, coalesce(NEW.line_bytes, 0),
         coalesce(NEW.inputs, 1), NEW.deadline IS NOT NULL
   WHERE NEW.state = 'pending' AND NEW.urgency = 'deferrable'
     AND NEW.body IS NULL
  ON CONFLICT (queue, endpoint, has_model, model) DO UPDATE SET
    jobs = jobs + 1, bytes = bytes + excluded.bytes,
    inputs = inputs + excluded.inputs, dated = dated + excluded.dated;
END;

-- Only a change of a key fires the body (a lease extension, a retry that
-- stays pending, touch none of these columns or leave the keys as they
-- were). job_counts: both rows in one upsert (a batch backlog change alone
-- adds -1 and +1 to the same key). The batch backlog (migration 0020): a
-- job enters or leaves it (claimed, packed, cancelled, retried, replayed,
-- its body moved by the door...) or a counted job changes its key or what
-- it adds (the SQL door: UPDATE jobs SET queue, model, deadline...): its
-- old row out, its new row in, one upsert. While job_counts_summed holds
-- a row (migration 0022, below: a grouped claim or completion sums its
-- job_counts changes in C), only a row that was or becomes a pending
-- deferrable job runs the body (for the batch backlog; the library leaves
-- that row's job_counts change to it).
CREATE TRIGGER jobs_count_update
AFTER UPDATE OF queue, state, urgency, last_class, body, endpoint, model,
                deadline, line_bytes, inputs ON jobs
WHEN (NEW.state IS NOT OLD.state OR NEW.queue IS NOT OLD.queue
      OR NEW.urgency IS NOT OLD.urgency
      OR (NEW.state = 'failed' AND NEW.last_class IS NOT OLD.last_class)
      OR (NEW.body IS NULL) IS NOT (OLD.body IS NULL)
      OR (NEW.state = 'pending' AND NEW.urgency = 'deferrable'
          AND NEW.body IS NULL
          AND (NEW.endpoint IS NOT OLD.endpoint OR NEW.model IS NOT OLD.model
               OR (NEW.deadline IS NULL) IS NOT (OLD.deadline IS NULL)
               OR NEW.line_bytes IS NOT OLD.line_bytes
               OR NEW.inputs IS NOT OLD.inputs)))
  AND (NOT EXISTS (SELECT 1 FROM job_counts_summed)
       OR (OLD.state = 'pending' AND OLD.urgency = 'deferrable')
       OR (NEW.state = 'pending' AND NEW.urgency = 'deferrable'))
BEGIN
  INSERT INTO job_counts (queue, state, urgency, class, n)
  VALUES (OLD.queue, OLD.state, OLD.urgency,
          CASE WHEN OLD.state = 'failed'
               THEN coalesce(OLD.last_class, 'unknown') ELSE '' END, -1),
         (NEW.queue, NEW.state, NEW.urgency,
          CASE WHEN NEW.state = 'failed'
               THEN coalesce(NEW.last_class, 'unknown') ELSE '' END, 1)
  ON CONFLICT (queue, state, urgency, class) DO UPDATE SET n = n + excluded.n;
  INSERT INTO batch_backlog (queue, endpoint, has_model, model, jobs, bytes,
                             inputs, dated)
  SELECT OLD.queue, OLD.endpoint, OLD.model IS NOT NULL,
         coalesce(OLD.model, ''), -1, -coalesce(OLD.line_bytes, 0),
         -coalesce(OLD.inputs, 1), -(OLD.deadline IS NOT NULL)
   WHERE OLD.state = 'pending' AND OLD.urgency = 'deferrable'
     AND OLD.body IS NULL
  UNION ALL
  SELECT NEW.queue, NEW.endpoint, NEW.model IS NOT NULL,
         coalesce(NEW.model, ''), 1, coalesce(NEW.line_bytes, 0),
         coalesce(NEW.inputs, 1), NEW.deadline IS NOT NULL
   WHERE NEW.state = 'pending' AND NEW.urgency = 'deferrable'
     AND NEW.body IS NULL
  ON CONFLICT (queue, endpoint, has_model, model) DO UPDATE SET
    jobs = jobs + excluded.jobs, bytes = bytes + excluded.bytes,
    inputs = inputs + excluded.inputs, dated = dated + excluded.dated;
END;

CREATE TRIGGER jobs_count_delete
AFTER DELETE ON jobs
BEGIN
  UPDATE job_counts SET n = n - 1
   WHERE queue = OLD.queue AND state = OLD.state AND urgency = OLD.urgency
     AND class = CASE WHEN OLD.state = 'failed'
                      THEN coalesce(OLD.last_class, 'unknown') ELSE '' END;
  UPDATE batch_backlog SET jobs = jobs - 1,
         bytes = bytes - coalesce(OLD.line_bytes, 0),
         inputs = inputs - coalesce(OLD.inputs, 1),
         dated = dated - (OLD.deadline IS NOT NULL)
   WHERE OLD.state = 'pending' AND OLD.urgency = 'deferrable'
     AND OLD.body IS NULL AND queue = OLD.queue
     AND endpoint = OLD.endpoint AND has_model = (OLD.model IS NOT NULL)
     AND model = coalesce(OLD.model, '');
END;

-- The age of each queue's oldest due job is one seek here.
CREATE INDEX jobs_pending_queue ON jobs (queue, run_after)
  WHERE state = 'pending';

-- ---------------------------------------------------------------------
-- Added by migrations/0016_job_bodies.sql (each job's bytes written once:
-- model and out_tokens above are plain columns filled at insert).
-- ---------------------------------------------------------------------

-- One row per job, written once at insert: the request body, out of the
-- row that every claim and completion rewrites.
CREATE TABLE job_bodies (
  job_id INTEGER PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
  body   TEXT NOT NULL
) STRICT;

-- A producer's INSERT INTO jobs(body) (the sqlite3 door; sl_enqueue too
-- when the door must judge the body) is checked by the CHECKs and
-- jobs_insert_door on jobs.body, then moved here; model, out_tokens,
-- line_bytes and inputs are taken from it. sl_enqueue writes job_bodies
-- itself and leaves body NULL.
CREATE TRIGGER jobs_body_insert
AFTER INSERT ON jobs
WHEN NEW.body IS NOT NULL
BEGIN
  INSERT INTO job_bodies (job_id, body) VALUES (NEW.id, NEW.body);
  UPDATE jobs SET body = NULL,
         model = CASE WHEN NOT json_valid(NEW.body) THEN NULL WHEN json_type(NEW.body, '$.model') = 'text' THEN json_extract(NEW.body, '$.model') END,
         out_tokens = CASE WHEN NOT json_valid(NEW.body) THEN NULL WHEN NOT (instr(NEW.body, 'max_') OR instr(NEW.body, '\u')) THEN 0 ELSE coalesce(CASE WHEN json_type(NEW.body, '$.max_output_tokens') IN ('integer', 'real') AND json_extract(NEW.body, '$.max_output_tokens') >= 1 THEN CAST(json_extract(NEW.body, '$.max_output_tokens') AS INTEGER) END, CASE WHEN json_type(NEW.body, '$.max_completion_tokens') IN ('integer', 'real') AND json_extract(NEW.body, '$.max_completion_tokens') >= 1 THEN CAST(json_extract(NEW.body, '$.max_completion_tokens') AS INTEGER) END, CASE WHEN json_type(NEW.body, '$.max_tokens') IN ('integer', 'real') AND json_extract(NEW.body, '$.max_tokens') >= 1 THEN CAST(json_extract(NEW.body, '$.max_tokens') AS INTEGER) END, 0) END,
         line_bytes = length(CAST(NEW.body AS BLOB)) + length(NEW.endpoint) + 82,
         inputs = CASE WHEN NEW.endpoint <> '/v1/embeddings' OR NOT json_valid(NEW.body) THEN 1 WHEN json_type(NEW.body, '$.input') = 'array' AND coalesce(json_type(NEW.body, '$.input[0]'), '') <> 'integer' THEN max(json_array_length(NEW.body, '$.input'), 1) ELSE 1 END
   WHERE id = NEW.id;
END;

-- UPDATE jobs SET body = ... replaces the job's body the same way.
CREATE TRIGGER jobs_body_update
AFTER UPDATE OF body ON jobs
WHEN NEW.body IS NOT NULL
BEGIN
  INSERT INTO job_bodies (job_id, body) VALUES (NEW.id, NEW.body)
  ON CONFLICT (job_id) DO UPDATE SET body = excluded.body;
  UPDATE jobs SET body = NULL,
         model = CASE WHEN NOT json_valid(NEW.body) THEN NULL WHEN json_type(NEW.body, '$.model') = 'text' THEN json_extract(NEW.body, '$.model') END,
         out_tokens = CASE WHEN NOT json_valid(NEW.body) THEN NULL WHEN NOT (instr(NEW.body, 'max_') OR instr(NEW.body, '\u')) THEN 0 ELSE coalesce(CASE WHEN json_type(NEW.body, '$.max_output_tokens') IN ('integer', 'real') AND json_extract(NEW.body, '$.max_output_tokens') >= 1 THEN CAST(json_extract(NEW.body, '$.max_output_tokens') AS INTEGER) END, CASE WHEN json_type(NEW.body, '$.max_completion_tokens') IN ('integer', 'real') AND json_extract(NEW.body, '$.max_completion_tokens') >= 1 THEN CAST(json_extract(NEW.body, '$.max_completion_tokens') AS INTEGER) END, CASE WHEN json_type(NEW.body, '$.max_tokens') IN ('integer', 'real') AND json_extract(NEW.body, '$.max_tokens') >= 1 THEN CAST(json_extract(NEW.body, '$.max_tokens') AS INTEGER) END, 0) END,
         line_bytes = length(CAST(NEW.body AS BLOB)) + length(NEW.endpoint) + 82,
         inputs = CASE WHEN NEW.endpoint <> '/v1/embeddings' OR NOT json_valid(NEW.body) THEN 1 WHEN json_type(NEW.body, '$.input') = 'array' AND coalesce(json_type(NEW.body, '$.input[0]'), '') <> 'integer' THEN max(json_array_length(NEW.body, '$.input'), 1) ELSE 1 END
   WHERE id = NEW.id;
END;

-- Jobs a route's hold keeps waiting out a retry, by route (migration
-- 0018): sl_route_release_held seeks them; fresh jobs are not in it.
CREATE INDEX jobs_held ON jobs (endpoint, model, run_after)
  WHERE state = 'pending' AND (last_class = 'rate_limited'
    OR last_class = 'server_error' OR last_class = 'overloaded'
    OR last_class = 'timeout' OR last_class = 'network'
    OR last_class = 'ambiguous');

-- The batch backlog per (queue, endpoint, model) (migration 0020): the
-- pending deferrable jobs (state = 'pending', urgency = 'deferrable', body
-- IS NULL: a door insert is counted once jobs_body_insert moved its body),
-- their line bytes, inputs and how many carry a deadline, kept by
-- job_counts' triggers (jobs_count_insert, _update, _delete above) in the
-- transactions that change them, so that sl_batch_backlog costs
-- O(groups). Rows that fall to 0 stay.
CREATE TABLE batch_backlog (
  queue     TEXT NOT NULL,
  endpoint  TEXT NOT NULL,
  has_model INTEGER NOT NULL,
  model     TEXT NOT NULL, -- '' when has_model = 0
  jobs      INTEGER NOT NULL,
  bytes     INTEGER NOT NULL,
  inputs    INTEGER NOT NULL,
  dated     INTEGER NOT NULL, -- jobs with a deadline
  PRIMARY KEY (queue, endpoint, has_model, model)
) STRICT, WITHOUT ROWID;

-- The read walks these (covering: no row is fetched) in run_after and in
-- deadline order within one (queue, endpoint, model).
CREATE INDEX jobs_backlog ON jobs (queue, endpoint, model, run_after,
                                   deadline, line_bytes, inputs)
  WHERE state = 'pending' AND urgency = 'deferrable';
CREATE INDEX jobs_backlog_deadline ON jobs (queue, endpoint, model,
                                            deadline, run_after, line_bytes,
                                            inputs)
  WHERE state = 'pending' AND urgency = 'deferrable'
    AND deadline IS NOT NULL;

-- ---------------------------------------------------------------------
-- Added by migrations/0021_delete_takes_children.sql.
-- ---------------------------------------------------------------------

-- A job deleted while foreign keys are off (the sqlite3 CLI's default)
-- takes its body, attempts, result and metadata with it, as the cascade
-- does when they are on: otherwise the next job, given the deleted one's
-- id (a rowid: the highest is reused), would inherit its body and result.
CREATE TRIGGER jobs_delete_children
AFTER DELETE ON jobs
WHEN (SELECT foreign_keys FROM pragma_foreign_keys) = 0
BEGIN
  DELETE FROM job_bodies WHERE job_id = OLD.id;
  DELETE FROM attempts WHERE job_id = OLD.id;
  DELETE FROM results WHERE job_id = OLD.id;
  DELETE FROM job_metadata WHERE job_id = OLD.id;
END;

-- ---------------------------------------------------------------------
-- Added by migrations/0022_job_counts_summed.sql (and jobs_count_update
-- above redefined).
-- ---------------------------------------------------------------------

-- job_counts_summed holds a row only inside a library write transaction
-- that adds its own jobs' job_counts changes, once per key (a grouped
-- sl_claim or sl_complete); jobs_count_update leaves job_counts to it.
-- Since migration 0023 sl_enqueue_many's groups of 16 or more hold it too:
-- jobs_count_insert and jobs_insert_door skip their rows whose body is
-- NULL (the library counts and has checked them).
CREATE TABLE job_counts_summed (
  holder INTEGER PRIMARY KEY
) STRICT;
