#!/usr/bin/env bash
# A job deleted through the sqlite3 CLI (foreign keys off by default there,
# so no ON DELETE CASCADE) takes its body, attempts, result and metadata
# with it (migration 0021). Before, the next job reused the deleted one's
# id (the highest rowid) and inherited its body: the wrong request went
# out, and its own result was refused as an overwrite.
. "$(dirname "$0")/../lib/testlib.sh"

start_mock --log "$T/mock.log" || { fail "mock starts"; finish; }
"$SLUICE" init >/dev/null
id1=$("$SLUICE" enqueue -M '{"tenant":"a"}' '{"model":"m","input":"first"}')
timeout 60 "$SLUICE" work --base-url "$MOCK_URL" --exit-when-idle --no-batch \
  2>"$T/w1.log"
eq "the first job succeeded with a result" "succeeded|1|1|1" \
  "$(sql "SELECT state, (SELECT count(*) FROM results WHERE job_id = $id1),
          (SELECT count(*) FROM job_metadata WHERE job_id = $id1),
          (SELECT count(*) FROM job_bodies WHERE job_id = $id1)
          FROM jobs WHERE id = $id1")"

eq "the sqlite3 CLI runs with foreign keys off" 0 \
  "$(sql "PRAGMA foreign_keys")"
sql "DELETE FROM jobs WHERE id = $id1"
eq "its body, attempts, result and metadata went with it" "0|0|0|0" \
  "$(sql "SELECT (SELECT count(*) FROM job_bodies WHERE job_id = $id1),
          (SELECT count(*) FROM attempts WHERE job_id = $id1),
          (SELECT count(*) FROM results WHERE job_id = $id1),
          (SELECT count(*) FROM job_metadata WHERE job_id = $id1)")"

id2=$("$SLUICE" enqueue '{"model":"m","input":"second"}')
eq "the next job takes the freed id (a rowid)" "$id1" "$id2"
check "... with its own body" \
  bash -c "sqlite3 '$SLUICE_JOURNAL' \"SELECT body FROM job_bodies WHERE job_id = $id2\" | grep -q second"
eq "... and no metadata of the deleted job" 0 \
  "$(sql "SELECT count(*) FROM job_metadata WHERE job_id = $id2")"
timeout 60 "$SLUICE" work --base-url "$MOCK_URL" --exit-when-idle --no-batch \
  2>"$T/w2.log"
eq "it succeeds with one result of its own" "succeeded|1" \
  "$(sql "SELECT state, (SELECT count(*) FROM results WHERE job_id = $id2)
          FROM jobs WHERE id = $id2")"
stop_mock
finish
