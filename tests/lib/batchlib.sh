# batchlib.sh: what the batch_*.sh integration scripts share (sourced after
# testlib.sh). A real `sluice work` against a real `sluice-mock` whose batch
# lifecycle runs in milliseconds.

# enq_deferrable N [sluice enqueue args...]: N deferrable jobs in one go.
enq_deferrable() {
  local n=$1 i
  shift
  for i in $(seq 1 "$n"); do
    printf '{"model":"gpt-4o-mini","input":"batch job %d"}\n' "$i"
  done | "$SLUICE" enqueue -u deferrable "$@" >/dev/null
}

# work [ARGS...]: one worker run, bounded; exit status in WORK_RC, logs
# appended to $T/work.log.
work() {
  timeout 60 "$SLUICE" work --base-url "$MOCK_URL" --batch-max-wait 300ms \
    --batch-poll 100ms --exit-when-idle "$@" 2>>"$T/work.log"
  WORK_RC=$?
}

# The remote batches as the mock lists them (first page of 100: tests make
# fewer), into $T/batches.json.
# A failed fetch must neither read an earlier list nor count as an empty
# one (json_each of a missing file is no rows: "0 duplicates" would pass):
# the file then holds text that is not JSON, so every query on it fails.
list_remote() {
  rm -f "$T/batches.json"
  curl -fsS -m 5 "$MOCK_URL/batches?limit=100" -o "$T/batches.json" ||
    echo "fetch failed" >"$T/batches.json"
}

# mock_stat KEY: one figure of the mock's /_mock/stats. Each of these
# removes its file first: a failed fetch must not read an earlier answer.
mock_stat() {
  rm -f "$T/stats.json"
  curl -sS -m 5 "http://127.0.0.1:$MOCK_PORT/_mock/stats" -o "$T/stats.json"
  sqlite3 :memory: "SELECT json_extract(readfile('$T/stats.json'), '\$.$1')"
}

# files_left: files of this run still on the mock (inputs, outputs, errors).
# A failed fetch prints no number (not 0, which "no file left" wants).
files_left() {
  rm -f "$T/files.json"
  curl -fsS -m 5 "$MOCK_URL/files?limit=100" -o "$T/files.json" ||
    { echo "fetch failed"; return 1; }
  sqlite3 :memory: "SELECT count(*) FROM json_each(readfile('$T/files.json'),
    '\$.data')"
}

journal_id() { sql "SELECT value FROM meta WHERE key = 'journal_id'"; }

# remote_count LOCAL_ID: remote batches of this journal naming LOCAL_ID.
remote_count() {
  list_remote
  sqlite3 :memory: "SELECT count(*) FROM json_each(readfile('$T/batches.json'),
    '\$.data') WHERE json_extract(value, '\$.metadata.sluice_batch') = '$1'
    AND json_extract(value, '\$.metadata.sluice_journal') = '$(journal_id)'"
}

# remote_active_count LOCAL_ID: those not cancelled (or cancelling).
remote_active_count() {
  list_remote
  sqlite3 :memory: "SELECT count(*) FROM json_each(readfile('$T/batches.json'),
    '\$.data') WHERE json_extract(value, '\$.metadata.sluice_batch') = '$1'
    AND json_extract(value, '\$.metadata.sluice_journal') = '$(journal_id)'
    AND json_extract(value, '\$.status') NOT IN ('cancelled', 'cancelling')"
}

# check_exactly_once NAME: every job terminal, at most one result each, a
# result exactly for the succeeded ones, one successful attempt per result.
check_exactly_once() {
  eq "$1: no job left pending/running/batched" 0 \
    "$(sql "SELECT count(*) FROM jobs WHERE state IN ('pending', 'running',
      'batched')")"
  eq "$1: one result per succeeded job, none for others" 0 \
    "$(sql "SELECT count(*) FROM jobs j WHERE (j.state = 'succeeded') <>
      EXISTS (SELECT 1 FROM results r WHERE r.job_id = j.id)")"
  eq "$1: one successful attempt per result" 0 \
    "$(sql "SELECT count(*) FROM results r WHERE (SELECT count(*) FROM
      attempts a WHERE a.job_id = r.job_id AND a.failure_class IS NULL) <> 1")"
}

# fresh_journal: a new, empty journal (new journal id) for the next case.
fresh_journal() {
  rm -f "$SLUICE_JOURNAL" "$SLUICE_JOURNAL-wal" "$SLUICE_JOURNAL-shm"
  "$SLUICE" init >/dev/null 2>&1 || true
}

# put_faults SPEC: replace the mock's fault rules.
put_faults() {
  curl -sS -m 5 -X PUT --data-binary "$1" "http://127.0.0.1:$MOCK_PORT/_mock/faults" \
    -o /dev/null
}
