-- PostgreSQL migration 0007: results that read like outputs, and replay by
-- job id, as SQLite migration 0010 (issue 16).
-- job_outputs(job_id, output_text, output_json): the text a result carries
-- (chat: choices[0].message.content; completions: choices[0].text;
-- responses: every output_text part of the message items, joined in
-- order), and, when the request asked for JSON (response_format or
-- text.format of type json_schema or json_object), that text parsed. NULL
-- where it does not apply (embeddings, moderations, a refusal, text that
-- is not JSON). output_json is jsonb here (SQLite's is minified JSON
-- text), so psql reads it the same way:
--   SELECT output_json ->> 'answer' FROM sluice.job_outputs WHERE job_id = 42;

-- The text parsed as jsonb, NULL (never an error) when it is not JSON or
-- holds what jsonb cannot (\u0000), so one odd result body cannot fail a
-- query over all of them.
CREATE FUNCTION sluice.json_or_null(t text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL RESTRICTED
AS $$
BEGIN
  RETURN t::jsonb;
EXCEPTION WHEN invalid_text_representation OR untranslatable_character THEN
  RETURN NULL;
END $$;

-- v is a JSON array, else an empty one: the elements to walk (SQLite's
-- json_each of a path that is not an array yields nothing useful either).
CREATE FUNCTION sluice.json_array_or_empty(v jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT CASE WHEN jsonb_typeof(v) = 'array' THEN v
                  ELSE '[]'::jsonb END $$;

CREATE VIEW sluice.job_outputs AS
SELECT job_id, output_text,
       CASE WHEN wants_json THEN sluice.json_or_null(output_text) END
         AS output_json
  FROM (SELECT r.job_id AS job_id,
               CASE WHEN j.endpoint = '/v1/chat/completions'
                    THEN b #>> '{choices,0,message,content}'
                    WHEN j.endpoint = '/v1/completions'
                    THEN b #>> '{choices,0,text}'
                    WHEN j.endpoint = '/v1/responses'
                    THEN (SELECT string_agg(c.value ->> 'text', ''
                                            ORDER BY o.n, c.n)
                            FROM jsonb_array_elements(sluice.json_array_or_empty(
                                   b -> 'output')) WITH ORDINALITY o(value, n),
                                 jsonb_array_elements(sluice.json_array_or_empty(
                                   CASE WHEN jsonb_typeof(o.value) = 'object'
                                         AND o.value ->> 'type' = 'message'
                                        THEN o.value -> 'content' END))
                                   WITH ORDINALITY c(value, n)
                           WHERE jsonb_typeof(c.value) = 'object'
                             AND c.value ->> 'type' = 'output_text')
               END AS output_text,
               coalesce(jb #>> '{response_format,type}'
                          IN ('json_schema', 'json_object')
                        OR jb #>> '{text,format,type}'
                          IN ('json_schema', 'json_object'), false)
                 AS wants_json
          FROM sluice.results r
          JOIN sluice.jobs j ON j.id = r.job_id
          CROSS JOIN LATERAL (SELECT sluice.json_or_null(r.body) AS b,
                                     sluice.json_or_null(j.body) AS jb) p) x;

-- Replay of single jobs (sluice replay --id, issue 16):
--   INSERT INTO sluice.replays(job_ids) VALUES ('[42, 43]');
-- ALTER TABLE puts the column last, as on SQLite. replays_apply gains the
-- one condition; the rest of it is as in 0001. Elements that are not job
-- ids (1.5, "x", -1) match no job, as on SQLite, rather than fail the
-- cast.
ALTER TABLE sluice.replays ADD COLUMN job_ids text
  CONSTRAINT "job_ids must be a JSON array of job ids"
  CHECK (job_ids IS NULL
         OR coalesce(sluice.json_type(job_ids) = 'array', false));

CREATE OR REPLACE FUNCTION sluice.replays_apply() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  n bigint;
  ids bigint[];
BEGIN
  -- A BEFORE trigger runs before the CHECKs: job_ids that is not an array
  -- matches nothing here, and its CHECK then refuses the row by name.
  IF sluice.json_type(NEW.job_ids) = 'array' THEN
    ids := ARRAY(SELECT e::bigint
                   FROM json_array_elements_text(NEW.job_ids::json) e
                  WHERE e ~ '^[0-9]{1,18}$');
  ELSIF NEW.job_ids IS NOT NULL THEN
    ids := '{}';
  END IF;
  UPDATE sluice.jobs
     SET state = 'pending', generation = generation + 1, attempts = 0,
         run_after = NEW.requested_at, last_class = NULL, last_error = NULL,
         lease_token = NULL, lease_expires = NULL, batch_id = NULL,
         finished_at = NULL, updated_at = NEW.requested_at
   WHERE (state = 'failed'
          OR (state = 'cancelled' AND NEW.include_cancelled = 1))
     AND (NEW.queue IS NULL OR queue = NEW.queue)
     AND (NEW.partition IS NULL OR partition = NEW.partition)
     AND (NEW.failure_class IS NULL OR last_class = NEW.failure_class)
     AND (NEW.batch_id IS NULL OR batch_id = NEW.batch_id)
     AND (NEW.since IS NULL OR finished_at >= NEW.since)
     AND (NEW.until IS NULL OR finished_at < NEW.until)
     AND (ids IS NULL OR id = ANY (ids));
  GET DIAGNOSTICS n = ROW_COUNT;
  NEW.replayed := n;
  IF n > 0 THEN
    -- the replayed jobs are due now: wake the workers
    PERFORM pg_notify('sluice_jobs', coalesce(NEW.queue, ''));
  END IF;
  RETURN NEW;
END $$;
