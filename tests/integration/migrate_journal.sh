#!/usr/bin/env bash
# sluice migrate-journal: pending and scheduled jobs move from an SQLite
# journal to another SQLite journal and to PostgreSQL (a throwaway cluster,
# pglib.sh), each exactly once even when the command is killed with -9
# and run again; refused while a worker is registered in the source, and
# when both locations are one journal; history stays in the source.
. "$(dirname "$0")/../lib/testlib.sh"
. "$SLUICE_ROOT/tests/lib/pglib.sh"

SRC="$T/src.db"
src() { sqlite3 -cmd ".timeout 10000" "$SRC" "$@"; }

# make_source N: a fresh source with N due jobs in q1 (metadata {"n":i}),
# 10 scheduled a day ahead in q2, and one cancelled job (history).
make_source() {
  rm -f "$SRC" "$SRC-wal" "$SRC-shm"
  "$SLUICE" init --journal "$SRC" >/dev/null || return 1
  src "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < $1)
       INSERT INTO jobs (body, queue, metadata, priority)
       SELECT '{\"model\":\"gpt-4o-mini\",\"input\":\"job ' || i || '\"}', 'q1',
              '{\"n\":' || i || '}', i % 3 FROM s;
       WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 10)
       INSERT INTO jobs (body, queue, run_after, urgency)
       SELECT '{\"model\":\"gpt-4o-mini\",\"input\":\"later ' || i || '\"}', 'q2',
              (unixepoch() + 86400) * 1000 + i, 'deferrable' FROM s;
       INSERT INTO jobs (body, queue) VALUES ('{\"model\":\"m\",\"input\":\"gone\"}', 'q9');"
  "$SLUICE" cancel --journal "$SRC" "$(src "SELECT id FROM jobs WHERE queue = 'q9'")" >/dev/null
}
# What a moved job must keep: key, queue, priority, urgency, run_after,
# body, metadata, endpoint (one line per job, in key order).
src_rows() {
  src "SELECT idempotency_key, queue, priority, urgency, run_after,
       (SELECT b.body FROM job_bodies b WHERE b.job_id = jobs.id), metadata, endpoint FROM jobs WHERE state = 'cancelled' AND queue != 'q9'
       ORDER BY idempotency_key"
}

# migrate_killed FROM TO COUNT_CMD...: start the move, kill -9 it once the
# target holds some jobs and the source still has pending ones; repeat
# until a run finishes by itself. Prints the number of kills.
migrate_killed() {
  local from=$1 to=$2 kills=0 pid i
  shift 2
  for i in 1 2 3 4 5 6; do
    "$SLUICE" migrate-journal --from "$from" --to "$to" --chunk 40 \
      >"$T/kill.out" 2>"$T/kill.err" &
    pid=$!
    wait_for 20 bash -c "[ \"\$($*)\" -gt $((i * 150)) ] 2>/dev/null || ! kill -0 $pid 2>/dev/null"
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    # 137: killed (a run that had already finished exits 0)
    [ $? -eq 137 ] && kills=$((kills + 1))
    [ "$(src "SELECT count(*) FROM jobs WHERE state = 'pending'")" -eq 0 ] && break
  done
  echo "$kills"
}

# ---- SQLite to SQLite
DST="$T/dst.db"
dst() { sqlite3 -cmd ".timeout 10000" "$DST" "$@"; }
make_source 200 || { fail "make the source"; finish; }
src "INSERT INTO queues (name, paused, paused_reason, paused_at)
     VALUES ('q1', 1, 'hold for the move', 1)"
before=$(src "SELECT group_concat(idempotency_key, ',') FROM (SELECT idempotency_key
  FROM jobs WHERE state = 'pending' ORDER BY idempotency_key)")

src "INSERT INTO workers (host, pid, lease_ms, started_at, heartbeat_at)
     VALUES ('elsewhere', 4242, 30000, 1, 1)"
"$SLUICE" migrate-journal --from "$SRC" --to "$DST" >"$T/w.out" 2>"$T/w.err"
rc=$?
eq "refused while a worker is registered in the source (exit 1)" 1 "$rc"
check "... saying why" grep -q "worker(s) registered in the source" "$T/w.err"
eq "... nothing moved" 0 "$(dst "SELECT count(*) FROM jobs")"
eq "... nothing cancelled" 1 "$(src "SELECT count(*) FROM jobs WHERE state = 'cancelled'")"
src "DELETE FROM workers"

"$SLUICE" migrate-journal --from "$SRC" --to "$DST" --dry-run >"$T/d.out" 2>&1
rc=$?
eq "--dry-run exits 0" 0 "$rc"
check "... counts 210 jobs and 1 paused queue" \
  grep -q "would move 210 jobs (0 already in the target), 1 paused" "$T/d.out"
eq "... and moves none" 0 "$(dst "SELECT count(*) FROM jobs")"

"$SLUICE" migrate-journal --from "$SRC" --to "$DST" >"$T/m.out" 2>"$T/m.err"
rc=$?
eq "SQLite to SQLite exits 0" 0 "$rc"
check "... reports 210 moved" grep -q "^moved 210 jobs (0 already" "$T/m.out"
eq "every pending key is pending in the target" "$before" \
  "$(dst "SELECT group_concat(idempotency_key, ',') FROM (SELECT idempotency_key
    FROM jobs WHERE state = 'pending' ORDER BY idempotency_key)")"
eq "... and cancelled in the source" 0 \
  "$(src "SELECT count(*) FROM jobs WHERE state = 'pending'")"
eq "every moved job has its body (so the comparison below is of bodies)" 0 \
  "$(dst "SELECT count(*) FROM jobs WHERE NOT EXISTS
    (SELECT 1 FROM job_bodies b WHERE b.job_id = jobs.id)")"
eq "queue, priority, urgency, run_after, body, metadata, endpoint kept" \
  "$(src_rows)" \
  "$(dst "SELECT idempotency_key, queue, priority, urgency, run_after,
    (SELECT b.body FROM job_bodies b WHERE b.job_id = jobs.id), metadata, endpoint FROM jobs ORDER BY idempotency_key")"
eq "the paused queue is paused in the target, with its reason" \
  "1|hold for the move" "$(dst "SELECT paused, paused_reason FROM queues WHERE name = 'q1'")"
eq "claim order kept (ids follow the source's)" 0 \
  "$(dst "ATTACH '$SRC' AS s; SELECT count(*) FROM jobs a JOIN jobs b ON a.id < b.id
     JOIN s.jobs sa ON sa.idempotency_key = a.idempotency_key
     JOIN s.jobs sb ON sb.idempotency_key = b.idempotency_key WHERE sa.id > sb.id")"
eq "history stays in the source only" 0 \
  "$(dst "SELECT count(*) FROM jobs WHERE queue = 'q9'")"

"$SLUICE" migrate-journal --from "$SRC" --to "$DST" >"$T/m2.out" 2>&1
eq "a second run moves nothing" "moved 0 jobs (0 already in the target), 1 paused queue(s)" \
  "$(head -1 "$T/m2.out")"
# Copied but not cancelled (a run killed between the two): the replay
# puts the source jobs back to pending with the same keys.
"$SLUICE" replay --journal "$SRC" --queue q2 --include-cancelled >/dev/null
"$SLUICE" migrate-journal --from "$SRC" --to "$DST" >"$T/m3.out" 2>&1
rc=$?
eq "jobs already copied are found by key, not copied again" \
  "0 moved 10 jobs (10 already in the target), 1 paused queue(s)" \
  "$rc $(head -1 "$T/m3.out")"
eq "... the target still holds 210" 210 "$(dst "SELECT count(*) FROM jobs")"

"$SLUICE" migrate-journal --from "$DST" --to "$DST" >"$T/same.out" 2>"$T/same.err"
rc=$?
eq "one journal as source and target is refused (exit 1)" 1 "$rc"
check "... saying so" grep -q "same journal" "$T/same.err"
eq "... and loses nothing" 210 "$(dst "SELECT count(*) FROM jobs WHERE state = 'pending'")"

# ---- kill -9 in the middle, SQLite to SQLite
rm -f "$DST" "$DST-wal" "$DST-shm"
make_source 3000 || fail "make the big source"
kills=$(migrate_killed "$SRC" "$DST" "sqlite3 -cmd '.timeout 10000' '$DST' 'SELECT count(*) FROM jobs' 2>/dev/null || echo 0")
check "killed with -9 in the middle at least once ($kills)" test "$kills" -ge 1
"$SLUICE" migrate-journal --from "$SRC" --to "$DST" >"$T/k.out" 2>&1
eq "the rerun finishes (exit 0)" 0 "$?"
eq "every job exactly once in the target" "3010|3010" \
  "$(dst "SELECT count(*), count(DISTINCT idempotency_key) FROM jobs")"
eq "... each of them a source job, now cancelled there" 3010 \
  "$(dst "ATTACH '$SRC' AS s; SELECT count(*) FROM jobs j JOIN s.jobs o
    USING (idempotency_key) WHERE o.state = 'cancelled'
    AND (SELECT body FROM s.job_bodies WHERE job_id = o.id)
      = (SELECT body FROM main.job_bodies WHERE job_id = j.id)")"

# ---- SQLite to PostgreSQL
if ! pg_available; then
  echo "SKIP: PostgreSQL is not installed (SQLite to PostgreSQL)"
  finish
fi
PG_OPTS="-c fsync=off" pg_start || { fail "pg_start"; finish; }
pg_createdb mig >/dev/null
pg_psql -d mig -c "GRANT ALL ON DATABASE mig TO $PG_PW_ROLE;
  GRANT CREATE ON SCHEMA public TO $PG_PW_ROLE" >/dev/null
PGURL="postgresql://$PG_PW_ROLE@127.0.0.1:$PGPORT/mig"
pgq() { pg_psql -d mig -c "$1"; }

make_source 300 || fail "make the source for PostgreSQL"
src_keys=$(src "SELECT idempotency_key, queue, priority, urgency, run_after,
  (SELECT b.body FROM job_bodies b WHERE b.job_id = jobs.id), metadata FROM jobs WHERE state = 'pending' ORDER BY idempotency_key")
PGPASSWORD=$PG_PW_PASSWORD "$SLUICE" migrate-journal --from "$SRC" --to "$PGURL" \
  >"$T/p.out" 2>"$T/p.err"
rc=$?
eq "SQLite to PostgreSQL exits 0 (password from PGPASSWORD)" 0 "$rc"
[ "$rc" -eq 0 ] || cat "$T/p.err"
check "... reports 310 moved" grep -q "^moved 310 jobs (0 already" "$T/p.out"
eq "... the same jobs, pending in sluice.jobs" "$src_keys" \
  "$(pgq "SELECT idempotency_key, queue, priority, urgency, run_after,
     (SELECT b.body FROM sluice.job_bodies b WHERE b.job_id = jobs.id),
     metadata FROM sluice.jobs WHERE state = 'pending'
     ORDER BY idempotency_key COLLATE \"C\"")"
eq "... all cancelled in the source" 0 \
  "$(src "SELECT count(*) FROM jobs WHERE state = 'pending'")"
check "... the password never printed" \
  bash -c "! grep -q -e '$PG_PW_PASSWORD' '$T/p.out' '$T/p.err'"

# A paused queue: paused in PostgreSQL first, or (while sl_queue_pause is
# not built there) nothing moves at all.
src "INSERT INTO queues (name, paused, paused_reason, paused_at) VALUES ('q2', 1, 'hold', 1)"
"$SLUICE" replay --journal "$SRC" --queue q2 --include-cancelled >/dev/null
PGPASSWORD=$PG_PW_PASSWORD "$SLUICE" migrate-journal --from "$SRC" --to "$PGURL" \
  >"$T/pp.out" 2>"$T/pp.err"
rc=$?
if grep -q "not built for PostgreSQL" "$T/pp.err"; then
  eq "a paused queue the target cannot pause: refused, nothing moves" "refused 10" \
    "$([ "$rc" -ne 0 ] && echo refused) $(src "SELECT count(*) FROM jobs WHERE state = 'pending'")"
else
  eq "a paused queue is paused in PostgreSQL first" "0 1" \
    "$rc $(pgq "SELECT paused FROM sluice.queues WHERE name = 'q2'")"
fi

pg_createdb mig2 >/dev/null
pg_psql -d mig2 -c "GRANT ALL ON DATABASE mig2 TO $PG_PW_ROLE;
  GRANT CREATE ON SCHEMA public TO $PG_PW_ROLE" >/dev/null
PGURL="postgresql://$PG_PW_ROLE@127.0.0.1:$PGPORT/mig2"
pgq() { pg_psql -d mig2 -c "$1"; }
make_source 3000 || fail "make the big source for PostgreSQL"
export PGPASSWORD=$PG_PW_PASSWORD
kills=$(migrate_killed "$SRC" "$PGURL" "$PG_BIN/psql -X -At -d mig2 -c 'SELECT count(*) FROM sluice.jobs' 2>/dev/null || echo 0")
check "killed with -9 in the middle at least once ($kills)" test "$kills" -ge 1
"$SLUICE" migrate-journal --from "$SRC" --to "$PGURL" >"$T/pk.out" 2>&1
eq "the rerun finishes (exit 0)" 0 "$?"
eq "every job exactly once in PostgreSQL" "3010|3010" \
  "$(pgq "SELECT count(*), count(DISTINCT idempotency_key) FROM sluice.jobs")"
pgq "SELECT idempotency_key FROM sluice.jobs ORDER BY 1" | LC_ALL=C sort >"$T/pg.keys"
src "SELECT idempotency_key FROM jobs WHERE state = 'cancelled' AND queue != 'q9'" |
  LC_ALL=C sort >"$T/src.keys"
check "... the source's moved jobs, key for key" cmp -s "$T/pg.keys" "$T/src.keys"
unset PGPASSWORD
finish
