#!/usr/bin/env bash
# examples/producer: runs against a new journal, writes 101 jobs with the
# documented fields, is idempotent for its keyed batch on a rerun, reports
# an unopenable journal clearly, and links no worker library.
# Env: SLUICE_BUILD (absolute build dir). Prints PASS:/FAIL: lines.
set -u
BUILD=${SLUICE_BUILD:?set SLUICE_BUILD to the build directory}
PRODUCER="$BUILD/examples/producer"
TMP=$(mktemp -d /tmp/sluice-example.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
J="$TMP/journal.db"
failures=0

check() { # name, then a command that must succeed
  local name=$1
  shift
  if "$@"; then
    echo "PASS: $name"
  else
    echo "FAIL: $name"
    failures=$((failures + 1))
  fi
}
q() { sqlite3 -batch -noheader "$J" "$1"; }
eq() { # expected actual
  [ "$1" = "$2" ] && return 0
  echo "  expected [$1] got [$2]" >&2
  return 1
}

if [ ! -x "$PRODUCER" ]; then
  echo "FAIL: example_producer_built ($PRODUCER missing)"
  exit 1
fi

"$PRODUCER" "$J" >"$TMP/run1.out" 2>"$TMP/run1.err"
check "producer_exits_0" eq 0 $?
check "producer_silent_on_stderr" eq "" "$(cat "$TMP/run1.err")"
check "prints_single_id" eq "enqueued job 1" "$(sed -n 1p "$TMP/run1.out")"
check "prints_100_ids" eq 100 "$(sed -n 2p "$TMP/run1.out" \
  | sed 's/^enqueued 100 jobs://' | wc -w)"
check "journal_mode_0600" eq 600 "$(stat -c %a "$J")"
check "journal_has_101_jobs" eq 101 "$(q 'SELECT count(*) FROM jobs')"
check "all_pending" eq 101 \
  "$(q "SELECT count(*) FROM jobs WHERE state = 'pending'")"
check "single_job_defaults" eq "default|urgent|/v1/responses|gpt-4o-mini|32" \
  "$(q "SELECT queue, urgency, endpoint, model, length(idempotency_key)
        FROM jobs WHERE id = 1")"
check "batch_fields" eq "100|100" \
  "$(q "SELECT count(*), count(DISTINCT idempotency_key) FROM jobs
        WHERE queue = 'examples' AND partition = 'demo'
        AND urgency = 'deferrable' AND model = 'gpt-4o-mini'
        AND idempotency_key LIKE 'example-item-%'")"
check "batch_ids_match_journal" eq \
  "$(q "SELECT group_concat(id, ' ') FROM (SELECT id FROM jobs
        WHERE queue = 'examples' ORDER BY idempotency_key)")" \
  "$(sed -n 2p "$TMP/run1.out" | sed 's/^enqueued 100 jobs: //')"

# A rerun adds the unkeyed job again but none of the keyed batch.
"$PRODUCER" "$J" >"$TMP/run2.out" 2>"$TMP/run2.err"
check "rerun_exits_0" eq 0 $?
check "rerun_adds_only_unkeyed_job" eq 102 "$(q 'SELECT count(*) FROM jobs')"
check "rerun_prints_same_batch_ids" eq "$(sed -n 2p "$TMP/run1.out")" \
  "$(sed -n 2p "$TMP/run2.out")"

# Errors: a journal that cannot be opened says so and exits non-zero.
"$PRODUCER" "$TMP/no/such/dir/j.db" >"$TMP/bad.out" 2>"$TMP/bad.err"
rc=$?
check "missing_dir_fails" test "$rc" -ne 0
check "missing_dir_message" grep -q "cannot open the journal file" \
  "$TMP/bad.err"
"$PRODUCER" >/dev/null 2>"$TMP/usage.err"
check "usage_exit_2" eq 2 $?

# Producers link libsluice and SQLite only: no libuv, curl or cJSON.
check "links_no_worker_libs" bash -c \
  "! ldd '$PRODUCER' | grep -Eq 'libuv|libcurl|libcjson'"

[ "$failures" -eq 0 ]
