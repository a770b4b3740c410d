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
-- batch alike: the trigger below adds every result's usage.
CREATE TABLE usage_daily (
  queue         TEXT NOT NULL,
  day           INTEGER NOT NULL,
  jobs          INTEGER NOT NULL DEFAULT 0,
  input_tokens  INTEGER NOT NULL DEFAULT 0,
  output_tokens INTEGER NOT NULL DEFAULT 0,
  total_tokens  INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (queue, day)
) STRICT;

CREATE TRIGGER results_usage
AFTER INSERT ON results
WHEN NEW.total_tokens IS NOT NULL OR NEW.input_tokens IS NOT NULL
  OR NEW.output_tokens IS NOT NULL
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
