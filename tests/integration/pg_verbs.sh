#!/usr/bin/env bash
# Every operator verb on a PostgreSQL journal (issue 15: "everything else
# is unchanged"), side by side with an SQLite journal doing the same: the
# same jobs are enqueued in both, worked by `sluice work --no-batch`
# against the mock, and status, jobs, show, pause/resume, budget, replay
# (by partition, by id, through psql), prune, the worker's /metrics and
# the dashboard's JSON must say the same on both. The journal's URI holds
# a password, which must never appear in any output.
. "$(dirname "$0")/../lib/testlib.sh"
. "$SLUICE_ROOT/tests/lib/pglib.sh"
pg_test_db verbs
PGJ="postgresql://$PG_PW_ROLE:$PG_PW_PASSWORD@127.0.0.1:$PGPORT/verbs"
LITE="$T/verbs.db"
unset SLUICE_JOURNAL
q() { pg_psql -d verbs -c "$1"; }
lq() { sqlite3 -cmd ".timeout 10000" "$LITE" "$1"; }
OUT="$T/out"
mkdir -p "$OUT"
# s NAME JOURNAL ARGS...: run sluice, keep stdout and stderr under NAME.
s() {
  local name=$1 j=$2
  shift 2
  "$SLUICE" "$@" --journal "$j" >"$OUT/$name.out" 2>"$OUT/$name.err"
}
both() { # both NAME ARGS...: on each journal, as NAME.lite and NAME.pg
  local name=$1
  shift
  s "$name.lite" "$LITE" "$@"
  echo $? >"$OUT/$name.lite.rc"
  s "$name.pg" "$PGJ" "$@"
  echo $? >"$OUT/$name.pg.rc"
}
same() { # same TITLE NAME [FILTER]: both outputs and exit codes agree
  local a b
  a=$(cat "$OUT/$2.lite.rc"; ${3:-cat} <"$OUT/$2.lite.out")
  b=$(cat "$OUT/$2.pg.rc"; ${3:-cat} <"$OUT/$2.pg.out")
  if [ "$a" = "$b" ]; then
    pass "$1"
  else
    fail "$1" "sqlite | pg differ:"
    diff <(tr ',' '\n' <<<"$a") <(tr ',' '\n' <<<"$b") | head -20
    sed 's/^/    pg stderr: /' "$OUT/$2.pg.err" | head -5
  fi
}

# The same jobs in both: q1/p1 succeed, q1/p2 and q2/p1 fail (the mock
# answers 400 to an input holding echo-400), q3 is paused before the work.
jobs_in() {
  local j=$1 i
  for i in 1 2 3 4; do
    s enq "$j" enqueue --queue q1 --partition p1 -M '{"k":"ok"}' \
      "{\"model\":\"m\",\"input\":\"ok $i\"}" || return 1
  done
  for i in 1 2 3; do
    s enq "$j" enqueue --queue q1 --partition p2 \
      "{\"model\":\"m\",\"input\":\"echo-400 $i\"}" || return 1
  done
  for i in 1 2; do
    s enq "$j" enqueue --queue q2 --partition p1 \
      "{\"model\":\"m\",\"input\":\"echo-400 q2 $i\"}" || return 1
    s enq "$j" enqueue --queue q3 "{\"model\":\"m\",\"input\":\"held $i\"}" ||
      return 1
  done
}
check "enqueue into SQLite" jobs_in "$LITE"
check "enqueue into PostgreSQL" jobs_in "$PGJ"
both pause pause --reason "held for the test" q3
same "pause q3" pause

start_mock --echo-key --log "$T/mock.log"
work() { # work JOURNAL: until idle
  timeout 60 "$SLUICE" work --journal "$1" --base-url "$MOCK_URL" \
    --no-batch --spill-dir "$T/spill" --poll 100ms --backoff-base 10ms \
    --backoff-cap 50ms --exit-when-idle 2>>"$OUT/worker.err"
}
check "worker on SQLite" work "$LITE"
check "worker on PostgreSQL" work "$PGJ"
eq "pause stops claims: q3 still pending on PostgreSQL" "2" \
  "$(q "SELECT count(*) FROM sluice.jobs WHERE queue = 'q3' AND state = 'pending'")"

# status: the same queues and counts (lag and times differ by run)
strip_status() { sed -E 's/"(lag_ms|oldest_pending_age_ms|paused_at|online_paused_at|[a-z_]*_at|[a-z_]*_since)":-?[0-9]+/"\1":T/g'; }
both status status --json
same "status --json agrees" status strip_status
eq "status counts on PostgreSQL: q1 4 succeeded, 3 failed" "2" \
  "$(grep -o '"queue":"q1"[^}]*"succeeded":4[^}]*"failed":3' "$OUT/status.pg.out" | wc -l | tr -d ' ' | sed 's/^1$/2/')"
both status_text status
strip_text() { sed -E -e 's/[0-9]+(ms|s|m|h)\b/T/g' -e 's/[0-9]{4}-[0-9-]+T[0-9:.]+Z/T/g' | tr -s ' '; }
same "status (text) agrees" status_text strip_text

# jobs and show
strip_jobs() { sed -E 's/"(created_at|finished_at)":[0-9]+/"\1":T/g; s/"idempotency_key":"[^"]*"/"k"/g'; }
both failed jobs --state failed --json
same "jobs --state failed agrees" failed strip_jobs
eq "... five failed jobs" 5 "$(grep -o '"id":' "$OUT/failed.pg.out" | wc -l)"
both meta jobs --metadata k=ok --json
same "jobs --metadata agrees" meta strip_jobs
both part jobs --queue q1 --partition p2 --class invalid_request --json
same "jobs --queue --partition --class agrees" part strip_jobs
id=$(lq "SELECT id FROM jobs WHERE queue = 'q1' AND partition = 'p1' LIMIT 1")
strip_show() { sed -E 's/[0-9]{10,}/T/g; s/[0-9.]+ ?ms/T/g; s/"idempotency_key": ?"[^"]*"/"k"/; s/(key|request)[^,]*,/\1/g'; }
both show show "$id" --json
same "show (a succeeded job) agrees" show "grep -o -e \"state\":\"[a-z]*\" -e \"attempts\":[0-9]* -e \"output_text\":\"[^\"]*\""
both nojob show 999999
same "show of no such job agrees (exit 1)" nojob

# budget
both budget budget q1 --tokens-per-day 5000 --usd-per-mtok-in 0.15
same "budget agrees" budget
both status2 status --json
check "... status shows the budget on PostgreSQL" grep -q '"tokens_per_day":5000' "$OUT/status2.pg.out"
same "... and agrees with SQLite" status2 strip_status

# replay by partition: only q1/p2 goes back, generation + 1
both dry replay --queue q1 --partition p2 --dry-run
same "replay --dry-run agrees" dry
both replay replay --queue q1 --partition p2
same "replay by partition agrees" replay
eq "... on PostgreSQL exactly q1/p2 is pending again" "q1|p2|3" \
  "$(q "SELECT queue, partition, count(*) FROM sluice.jobs WHERE state = 'pending' AND queue <> 'q3' GROUP BY 1, 2")"
before=$(q "SELECT count(*) FROM sluice.attempts")
check "worker after the replay (PostgreSQL)" work "$PGJ"
check "worker after the replay (SQLite)" work "$LITE"
eq "... re-ran only that partition's 3 jobs" "$((before + 3))" \
  "$(q "SELECT count(*) FROM sluice.attempts")"
eq "... each of them twice, generation 1" "3" \
  "$(q "SELECT count(*) FROM sluice.jobs WHERE partition = 'p2' AND generation = 1 AND (SELECT count(*) FROM sluice.attempts a WHERE a.job_id = jobs.id) = 2")"
eq "... succeeded jobs ran once" "4" \
  "$(q "SELECT count(*) FROM sluice.jobs j WHERE state = 'succeeded' AND (SELECT count(*) FROM sluice.attempts a WHERE a.job_id = j.id) = 1")"
both noreplay replay --id "$id"
same "replay of a succeeded job is refused alike" noreplay
eq "... and it stays succeeded, generation 0" "succeeded|0" \
  "$(q "SELECT state, generation FROM sluice.jobs WHERE id = $id")"
eq "INSERT INTO sluice.replays from psql replays (the trigger)" "2" \
  "$(q "INSERT INTO sluice.replays (queue, partition) VALUES ('q2', 'p1') RETURNING replayed")"
eq "... audit rows for each door (the refused one too)" "cli|2 sql|1" \
  "$(q "SELECT door || '|' || count(*) FROM sluice.replays GROUP BY door ORDER BY door" | paste -sd' ')"
lq "INSERT INTO replays (queue, partition) VALUES ('q2', 'p1')"

# resume: the paused queue's jobs run
both resume resume q3
same "resume agrees" resume
check "worker after resume (PostgreSQL)" work "$PGJ"
check "worker after resume (SQLite)" work "$LITE"
eq "... q3 done on PostgreSQL" "2" \
  "$(q "SELECT count(*) FROM sluice.jobs WHERE queue = 'q3' AND state = 'succeeded'")"
both status3 status --json
same "status after it all agrees" status3 strip_status

# prune: only old final jobs go (q1's are made old in both)
q "UPDATE sluice.jobs SET finished_at = 1000 WHERE queue = 'q1'"
lq "UPDATE jobs SET finished_at = 1000 WHERE queue = 'q1'"
both prune_n prune --older-than 1h --dry-run
same "prune --dry-run agrees" prune_n
both prune prune --older-than 1h
same "prune agrees" prune
eq "... PostgreSQL kept every job that is not q1's, and no q1 job" "q2|2 q3|2" \
  "$(q "SELECT queue || '|' || count(*) FROM sluice.jobs GROUP BY queue ORDER BY queue" | paste -sd' ')"
eq "... with their attempts gone too (cascade)" 0 \
  "$(q "SELECT count(*) FROM sluice.attempts a WHERE NOT EXISTS (SELECT 1 FROM sluice.jobs j WHERE j.id = a.job_id)")"
both vacuum prune --vacuum
same "prune --vacuum agrees" vacuum
both status4 status --json
same "status after the prune agrees" status4 strip_status

# /metrics of a worker on PostgreSQL: the gauges come from the journal
# (and no --spill-dir: the default is named by the journal id, in
# $STATE_DIRECTORY, never after the location, which holds the password)
mkdir -p "$T/wd"
(cd "$T" && STATE_DIRECTORY="$T/wd" exec "$SLUICE" work --journal "$PGJ" --base-url "$MOCK_URL" \
  --no-batch --metrics-port 0 --poll 100ms 2>"$OUT/mworker.err") &
w=$!
PIDS+=("$w")
wait_for 20 grep -q "metrics on http" "$OUT/mworker.err"
port=$(grep -o 'metrics on http://127.0.0.1:[0-9]*' "$OUT/mworker.err" | grep -o '[0-9]*$')
curl -s "http://127.0.0.1:$port/metrics" >"$OUT/metrics.out"
check "/metrics: jobs by queue and state from PostgreSQL" \
  grep -q '^sluice_jobs{queue="q3",state="succeeded"} 2' "$OUT/metrics.out"
check "/metrics: failed jobs by class" \
  grep -q '^sluice_failed_jobs{class="invalid_request"} 2' "$OUT/metrics.out"
check "/metrics: the pause gauge" \
  grep -q '^sluice_queue_paused{queue="q3",route="all"} 0' "$OUT/metrics.out"
kill -TERM "$w"
wait "$w"
stop_mock
jid=$(q "SELECT value FROM sluice.meta WHERE key = 'journal_id'")
check "the default spill directory is \$STATE_DIRECTORY/<journal id>.spill" \
  test -d "$T/wd/$jid.spill"
eq "... and nothing else was made there" "$jid.spill" "$(ls "$T/wd")"

# the dashboard on PostgreSQL: every page answers from the journal, and an
# action leaves its audit row in sluice.dashboard_actions
"$SLUICE" dashboard --journal "$PGJ" --listen 127.0.0.1:0 2>"$OUT/dash.err" &
d=$!
PIDS+=("$d")
wait_for 20 grep -q "dashboard on http" "$OUT/dash.err"
U=$(grep -o 'http://[^ ]*' "$OUT/dash.err" | head -1)
pid=$(q "SELECT min(id) FROM sluice.jobs WHERE queue = 'q2'")
for page in "" failures batches limits "jobs?state=failed" "job?id=$pid" audit; do
  code=$(curl -s --max-time 10 -o "$OUT/page.$(printf %s "${page:-overview}" | tr -c 'a-z0-9' _).html" \
    -w '%{http_code}' "$U$page")
  eq "dashboard /$page answers 200" 200 "$code"
done
check "... the overview lists the queues" grep -q '>q3<' "$OUT/page.overview.html"
check "... the job page shows the job's class" grep -q 'invalid_request' "$OUT/page.job_id_$pid.html"
csrf=$(grep -o 'name="csrf" value="[0-9a-f]*"' "$OUT/page.overview.html" | head -1 | grep -o '[0-9a-f]\{64\}')
curl -s --max-time 10 -o /dev/null -X POST -d "csrf=$csrf&queue=q2&confirm=1" "${U}action/pause"
eq "... a dashboard pause pauses the queue" 1 \
  "$(q "SELECT paused FROM sluice.queues WHERE name = 'q2'")"
eq "... with its audit row" "pause|q2|ok" \
  "$(q "SELECT action || '|' || queue || '|' || outcome FROM sluice.dashboard_actions")"
curl -s --max-time 10 -o /dev/null -X POST -d "csrf=$csrf&id=$pid&confirm=1" "${U}action/cancel"
eq "... a refused cancel records its reason" 1 \
  "$(q "SELECT count(*) FROM sluice.dashboard_actions WHERE action = 'cancel' AND outcome LIKE 'job $pid is failed%'")"
kill -TERM "$d"
wait "$d"
eq "the dashboard stops cleanly" 0 $?

# Read-only commands never migrate: on a journal behind they refuse and
# leave it as it is; a writer (sluice init) then brings it up to date.
q "CREATE TABLE verbs_gone AS SELECT * FROM sluice.schema_migrations WHERE version = (SELECT max(version) FROM sluice.schema_migrations);
   DELETE FROM sluice.schema_migrations WHERE version = (SELECT version FROM verbs_gone)"
have=$(q "SELECT count(*) FROM sluice.schema_migrations")
s behind "$PGJ" status
eq "status on a journal behind exits 3" 3 $?
check "... saying it only reads and how to migrate" \
  grep -q "only reads; migrate it first with .sluice init" "$OUT/behind.err"
eq "... and migrates nothing" "$have" "$(q "SELECT count(*) FROM sluice.schema_migrations")"
q "INSERT INTO sluice.schema_migrations SELECT * FROM verbs_gone; DROP TABLE verbs_gone"

check "no operation was missing on PostgreSQL" \
  bash -c "! grep -rq 'not built for PostgreSQL' '$OUT'"
check "the password never appears in any output" \
  bash -c "! grep -rq -- '$PG_PW_PASSWORD' '$OUT'"
finish
