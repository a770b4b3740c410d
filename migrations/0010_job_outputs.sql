-- Migration 0010: results that read like outputs, and replay by job id
-- (issue 16).
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
               coalesce(json_valid(j.body)
                 AND (json_extract(j.body, '$.response_format.type')
                        IN ('json_schema', 'json_object')
                      OR json_extract(j.body, '$.text.format.type')
                        IN ('json_schema', 'json_object')), 0) AS wants_json
          FROM results r JOIN jobs j ON j.id = r.job_id);

-- Replay of single jobs (sluice replay --id, issue 16):
--   INSERT INTO replays(job_ids) VALUES('[42, 43]');
-- The trigger gains the one condition; the rest of it is as in 0001.
ALTER TABLE replays ADD COLUMN job_ids TEXT
  CONSTRAINT "job_ids must be a JSON array of job ids"
  CHECK (job_ids IS NULL OR (json_valid(job_ids)
                             AND json_type(job_ids) = 'array'));
DROP TRIGGER replays_apply;
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
