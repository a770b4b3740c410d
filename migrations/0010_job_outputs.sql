-- Migration 0010: results that read like outputs (issue 16).
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
