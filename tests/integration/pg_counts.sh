# pg_counts.sh: on PostgreSQL, sluice.job_counts (migrations 0015, 0017)
# equals a recount of sluice.jobs after every kind of change: psql door
# inserts (one, many, deduplicated, rolled back), sluice enqueue, each
# state move by plain SQL (one row and many per statement), a failed
# job's class, a queue or urgency change, a replay, deletes, folds, and
# REPEATABLE READ writers; a dropped trigger is seen. And the counts do
# not serialize writers: while one transaction holds a changed job of a
# queue, another changes a second job of the same queue (and inserts one)
# without waiting (0015's counter rows made it wait for the first commit).
. "$(dirname "$0")/../lib/testlib.sh"
. "$SLUICE_ROOT/tests/lib/pglib.sh"

PG_OPTS="-c fsync=off" pg_start || { fail "a throwaway PostgreSQL cluster starts"; finish; }
pg_createdb counts >/dev/null
check "the migrations apply" pg_migrate counts
export PGDATABASE=counts
q() { pg_psql -c "$1"; }

# counted: the counters summed per key; recount: the same from jobs.
counted() {
  q "SELECT queue, state, urgency, class, sum(n) FROM sluice.job_counts
      GROUP BY 1, 2, 3, 4 HAVING sum(n) <> 0 ORDER BY 1, 2, 3, 4"
}
recount() {
  q "SELECT queue, state, urgency, CASE WHEN state = 'failed'
            THEN coalesce(last_class, 'unknown') ELSE '' END, count(*)
       FROM sluice.jobs GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"
}
same() { # NAME: counts equal the recount (and are not trivially empty)
  local a b
  a=$(counted)
  b=$(recount)
  if [ "$a" = "$b" ] && [ -n "$b" ]; then pass "counts = recount: $1"; else
    fail "counts = recount: $1"
    diff <(echo "$a") <(echo "$b") | head -10
  fi
}
B='{"model":"gpt-4o-mini","input":"x"}'
ins() { q "INSERT INTO sluice.jobs (queue, urgency, body) VALUES $1" >/dev/null; }

ins "('a', 'urgent', '$B')"
same "one door insert"
ins "('a', 'urgent', '$B'), ('a', 'deferrable', '$B'), ('b', 'urgent', '$B')"
same "a multi-row door insert over two queues and urgencies"
q "INSERT INTO sluice.jobs (queue, body, idempotency_key) VALUES ('a', '$B', 'k1')" >/dev/null
q "INSERT INTO sluice.jobs (queue, body, idempotency_key) VALUES ('a', '$B', 'k1')
   ON CONFLICT (idempotency_key) DO NOTHING" >/dev/null
same "a deduplicated insert (ON CONFLICT DO NOTHING)"
q "BEGIN; INSERT INTO sluice.jobs (queue, body) VALUES ('a', '$B'); ROLLBACK" >/dev/null
same "a rolled-back insert"
ins "$(for i in $(seq 40); do printf "('c', 'urgent', '%s')," "$B"; done | sed 's/,$//')"
same "forty jobs in one statement"
printf '%s\n%s\n' "$B" "$B" >"$T/jobs.jsonl"
"$SLUICE" enqueue --journal "postgresql://$PGUSER@127.0.0.1:$PGPORT/counts" \
  -q d <"$T/jobs.jsonl" >/dev/null
eq "sluice enqueue to the PostgreSQL journal" 2 \
  "$(q "SELECT count(*) FROM sluice.jobs WHERE queue = 'd'")"
same "sluice enqueue"

claim() { # QUEUE N: pending -> running, N jobs in one statement
  q "UPDATE sluice.jobs SET state = 'running', attempts = attempts + 1,
       lease_token = 7, lease_expires = sluice.now_ms() + 60000
     WHERE id IN (SELECT id FROM sluice.jobs WHERE queue = '$1'
                   AND state = 'pending' ORDER BY id LIMIT $2)" >/dev/null
}
claim c 20
same "twenty claimed in one statement"
q "UPDATE sluice.jobs SET state = 'succeeded', lease_token = NULL,
     lease_expires = NULL, finished_at = sluice.now_ms()
   WHERE id IN (SELECT id FROM sluice.jobs WHERE queue = 'c'
                 AND state = 'running' ORDER BY id LIMIT 10)" >/dev/null
same "ten succeeded in one statement"
q "UPDATE sluice.jobs SET state = 'failed', lease_token = NULL,
     lease_expires = NULL, finished_at = sluice.now_ms(),
     last_class = CASE WHEN id % 2 = 0 THEN 'rate_limited' END
   WHERE id IN (SELECT id FROM sluice.jobs WHERE queue = 'c'
                 AND state = 'running' ORDER BY id LIMIT 6)" >/dev/null
same "six failed, with and without a class"
q "UPDATE sluice.jobs SET last_class = 'server_error'
   WHERE id = (SELECT min(id) FROM sluice.jobs WHERE state = 'failed')" >/dev/null
same "a failed job's class changed"
q "UPDATE sluice.jobs SET state = 'pending', lease_token = NULL,
     lease_expires = NULL
   WHERE queue = 'c' AND state = 'running'" >/dev/null
same "running back to pending"
q "UPDATE sluice.jobs SET run_after = run_after + 1 WHERE queue = 'c'" >/dev/null
same "an update that moves no key"
q "UPDATE sluice.jobs SET queue = 'e' WHERE queue = 'b'" >/dev/null
q "UPDATE sluice.jobs SET urgency = 'deferrable'
   WHERE id = (SELECT min(id) FROM sluice.jobs WHERE queue = 'a' AND state = 'pending')" >/dev/null
same "a queue and an urgency changed"
q "UPDATE sluice.jobs SET state = 'cancelled', finished_at = sluice.now_ms()
   WHERE queue = 'a' AND state = 'pending'" >/dev/null
same "pending jobs cancelled"
q "INSERT INTO sluice.replays (queue) VALUES ('c')" >/dev/null
same "a replay of failed jobs"
q "BEGIN ISOLATION LEVEL REPEATABLE READ;
   UPDATE sluice.jobs SET state = 'cancelled', finished_at = sluice.now_ms()
    WHERE queue = 'd'; COMMIT" >/dev/null
same "a REPEATABLE READ writer"
q "DELETE FROM sluice.jobs WHERE state = 'succeeded'" >/dev/null
same "succeeded jobs deleted (prune)"
# Folding keeps the sums and leaves one row per key.
q "SELECT sluice.job_counts_fold()" >/dev/null
same "after a fold"
eq "a fold leaves one row per key" \
  "$(q "SELECT count(*) FROM (SELECT 1 FROM sluice.job_counts GROUP BY queue, state, urgency, class) x")" \
  "$(q "SELECT count(*) FROM sluice.job_counts")"
# Writers fold now and then on their own: 600 one-row statements, two
# delta rows each, leave far fewer than 1200 rows (1 statement in 32
# folds; under 600 rows unless none of the last 300 folded, p < 1e-4).
for i in $(seq 300); do
  echo "UPDATE sluice.jobs SET urgency = 'deferrable' WHERE id = (SELECT min(id) FROM sluice.jobs WHERE queue = 'c' AND state = 'pending' AND urgency = 'urgent');"
  echo "UPDATE sluice.jobs SET urgency = 'urgent' WHERE id = (SELECT min(id) FROM sluice.jobs WHERE queue = 'c' AND state = 'pending' AND urgency = 'deferrable');"
done >"$T/flip.sql"
pg_psql -f "$T/flip.sql" >/dev/null
same "600 one-row statements"
rows=$(q "SELECT count(*) FROM sluice.job_counts")
check "writers fold the counters on their own ($rows rows after 600 statements)" \
  test "$rows" -lt 600

# A dropped trigger is seen (the check can fail).
out=$(q "BEGIN; DROP TRIGGER jobs_count_update ON sluice.jobs;
         UPDATE sluice.jobs SET state = 'cancelled', finished_at = sluice.now_ms()
          WHERE state = 'pending' AND queue = 'c';
         SELECT sum(n) FROM sluice.job_counts WHERE queue = 'c' AND state = 'cancelled';
         ROLLBACK")
check "without the update trigger the counts miss the change" test -z "$out"
same "after the rolled-back drop"

# Writers on one queue do not wait on each other: a transaction holds a
# claim on queue c; another claims a second job of c and inserts into c
# with lock_timeout 2 s.
q "INSERT INTO sluice.jobs (queue, body) VALUES ('c', '$B'), ('c', '$B')" >/dev/null
pg_psql -c "BEGIN; UPDATE sluice.jobs SET state = 'running', attempts = attempts + 1,
   lease_token = 1, lease_expires = sluice.now_ms() + 60000
  WHERE id = (SELECT min(id) FROM sluice.jobs WHERE queue = 'c' AND state = 'pending');
  INSERT INTO sluice.jobs (queue, body) VALUES ('c', '$B');
  SELECT pg_sleep(6); COMMIT" >/dev/null &
holder=$!
holding() {
  [ "$(q "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(6)%'
          AND state = 'active' AND pid <> pg_backend_pid()")" = 1 ]
}
# Checked, not just waited for: a holder not yet in its transaction (a
# slow start on a loaded machine) would let the second writer pass with
# nothing to wait on, and the check below would prove nothing.
check "the first writer holds its claim and insert open" wait_for 10 holding
out=$(pg_psql -c "SET lock_timeout = '2s';
  UPDATE sluice.jobs SET state = 'running', attempts = attempts + 1,
   lease_token = 2, lease_expires = sluice.now_ms() + 60000
  WHERE id = (SELECT id FROM sluice.jobs WHERE queue = 'c' AND state = 'pending'
              ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING 'claimed';
  INSERT INTO sluice.jobs (queue, body) VALUES ('c', '$B') RETURNING 'inserted'" 2>&1)
eq "a second writer on the same queue does not wait for the first" \
  "claimed
inserted" "$out"
wait "$holder"
same "after the two concurrent writers"
finish
