#!/usr/bin/env bash
# Torture (issue 10, FAULTS.md "Everything at once"): everything that
# touches the journal runs together. Several `sluice work` processes, each
# with its metrics endpoint scraped and pruning on; producers through the
# CLI, through `sqlite3` and through a C program holding two handles;
# `sluice status` and `show` readers, as the owner and (as root) as a
# user who may only read the journal; replays and `sluice rescue`; kill -9
# rounds of workers. Meanwhile a
# watcher samples the -wal file. Afterwards: PRAGMA integrity_check is ok,
# the WAL never vanished (nor was replaced) while processes ran, every job a
# producer reported is in the journal with one final state and at most one
# result, and no job succeeded twice.
# make test runs TORTURE_ROUNDS=10; `make chaos` runs a longer one. A full
# disk too (TORTURE_FULL_DISK=0 turns it off): the journal lives on a small
# tmpfs that fills up for a second or two every third round, under a burst
# of work (a worker is killed while it is full, another starts on it), then
# frees again; skipped where no tmpfs can be mounted (not root).
. "$(dirname "$0")/../lib/testlib.sh"

FULL=0
if [ "${TORTURE_FULL_DISK:-1}" = 1 ]; then
  mkdir -p "$T/mnt"
  if mount -t tmpfs -o size=160m tmpfs "$T/mnt" 2>"$T/mount.err"; then
    FULL=1
    export SLUICE_JOURNAL="$T/mnt/journal.db"
    cleanup_mnt() {
      local p
      for p in "${PIDS[@]:-}"; do
        [ -n "$p" ] && kill -9 "$p" 2>/dev/null
      done
      wait 2>/dev/null
      umount "$T/mnt" 2>/dev/null || umount -l "$T/mnt"
    }
    trap 'cleanup_mnt; cleanup' EXIT
  else
    echo "torture: no full-disk phase: cannot mount a tmpfs: $(cat "$T/mount.err")"
  fi
fi

ROUNDS=${TORTURE_ROUNDS:-10}
WORKERS=3
PER_ROUND=${TORTURE_JOBS_PER_ROUND:-15} # per producer
RANDOM=${TORTURE_SEED:-4321}
TWO="$SLUICE_BUILD/tests/helpers/two_handles"
J=$SLUICE_JOURNAL
STOP="$T/stop"
echo "torture: $ROUNDS rounds, $WORKERS workers, $PER_ROUND jobs per round per producer, full disk $FULL"

start_mock --latency-ms 20 --seed 5 --log "$T/mock.log" --faults "500@0.08"
"$SLUICE" init >/dev/null
# A read-only operator: another user with read permission only (root runs
# the test; elsewhere the owner's readers run alone).
RO=()
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
  RO=(setpriv --reuid=65534 --regid=65534 --clear-groups)
  chmod 755 "$T" "$(dirname "$J")"
  chmod 644 "$J" # -wal and -shm get the journal's mode from SQLite
fi
# Old finished jobs for the workers' pruning to delete (retention.sh's way).
for i in $(seq 1 20); do printf '{"model":"m","input":"ancient %d"}\n' "$i"; done |
  "$SLUICE" enqueue -q ancient >/dev/null
sql "UPDATE jobs SET state='running'; UPDATE jobs SET state='succeeded', finished_at=1000, updated_at=1000"
sql "INSERT INTO results(job_id, generation, route, http_status, body, created_at) SELECT id, 0, 'online', 200, '{}', 1000 FROM jobs"

wargs=(--base-url "$MOCK_URL" --lease 2s --poll 100ms --backoff-base 20ms
  --backoff-cap 200ms --concurrency 8 --metrics-port 0
  --prune-older-than 1h --prune-every 300ms)
declare -a W
gen=0
start_worker() { # slot
  gen=$((gen + 1))
  "$SLUICE" work "${wargs[@]}" 2>"$T/w.$1.$gen.log" &
  W[$1]=$!
  PIDS+=("${W[$1]}")
}

# The watcher: the inode of the -wal, or "missing", every 20 ms while the
# other processes run (there is always a live worker, so SQLite never has
# a reason to delete it). Bounded by the stop file and a count.
watch_wal() {
  local n=0
  while [ ! -e "$STOP" ] && [ $n -lt 20000 ]; do
    stat -c %i "$J-wal" 2>/dev/null || echo missing
    sleep 0.02
    n=$((n + 1))
  done >"$T/wal.samples"
}

# Scrape every worker's metrics endpoint found in the logs, repeatedly.
scrape() {
  local n=0 ok=0 p
  while [ ! -e "$STOP" ] && [ $n -lt 5000 ]; do
    for p in $(grep -ho 'metrics on http://127.0.0.1:[0-9]*' "$T"/w.*.log 2>/dev/null |
      grep -o '[0-9]*$' | sort -u); do
      curl -sf -m 2 "http://127.0.0.1:$p/metrics" >/dev/null && ok=$((ok + 1))
    done
    sleep 0.1
    n=$((n + 1))
  done
  echo "$ok" >"$T/scrapes"
}

# `sluice status` (text and JSON) and `show` as a reader would run them,
# and as the read-only operator; failures counted.
readers() {
  local n=0 bad=0
  while [ ! -e "$STOP" ] && [ $n -lt 2000 ]; do
    "$SLUICE" status >/dev/null 2>>"$T/status.err" || bad=$((bad + 1))
    "$SLUICE" status --json >/dev/null 2>>"$T/status.err" || bad=$((bad + 1))
    if [ ${#RO[@]} -gt 0 ]; then
      "${RO[@]}" "$SLUICE" status >/dev/null 2>>"$T/status.err" ||
        bad=$((bad + 1))
      # the newest job: never pruned
      "${RO[@]}" "$SLUICE" show "$(sql 'SELECT max(id) FROM jobs')" \
        >/dev/null 2>>"$T/status.err" || bad=$((bad + 1))
      n=$((n + 2))
    fi
    sleep 0.2
    n=$((n + 2))
  done
  echo "$n $bad" >"$T/status.count"
}

# Replays of failed jobs (the mock's 500s fail the -m 1 jobs), and
# `sluice rescue` beside live workers (it ingests the dead ones' spill
# files first; live workers' files are left to them).
replays() {
  local n=0 bad=0
  while [ ! -e "$STOP" ] && [ $n -lt 500 ]; do
    # writers may fail while the disk is full ($T/full), never otherwise
    "$SLUICE" replay --yes >>"$T/replay.out" 2>>"$T/replay.err" ||
      [ -e "$T/full" ] || bad=$((bad + 1))
    "$SLUICE" rescue >>"$T/replay.out" 2>>"$T/replay.err" ||
      [ -e "$T/full" ] || bad=$((bad + 1))
    sleep 0.7
    n=$((n + 1))
  done
  echo "$n $bad" >"$T/replay.count"
}

producer_cli() { # round
  local i
  for i in $(seq 1 "$PER_ROUND"); do
    "$SLUICE" enqueue -m 1 -P cli "{\"model\":\"gpt-4o-mini\",\"input\":\"cli $1.$i\"}" \
      >>"$T/ids.cli" 2>>"$T/producer.err" || echo "cli $1.$i" >>"$T/lost"
  done
}

producer_sql() { # round
  local i
  for i in $(seq 1 "$PER_ROUND"); do
    sqlite3 -cmd '.timeout 5000' "$J" \
      "INSERT INTO jobs(body, partition) VALUES('{\"model\":\"gpt-4o-mini\",\"input\":\"sql $1.$i\"}', 'sql') RETURNING id;" \
      >>"$T/ids.sql" 2>>"$T/producer.err" || echo "sql $1.$i" >>"$T/lost"
  done
}

producer_c() { # round
  "$TWO" "$J" "$PER_ROUND" "c $1" 30 >>"$T/ids.c" 2>>"$T/producer.err" ||
    echo "c round $1" >>"$T/lost"
}

for k in $(seq 1 $WORKERS); do start_worker "$k"; done
wait_for 20 test -e "$J-wal"
watch_wal &
BG=($!)
scrape &
BG+=($!)
readers &
BG+=($!)
replays &
BG+=($!)
PIDS+=("${BG[@]}")

kills=0
fulls=0
bursts=0
for r in $(seq 1 "$ROUNDS"); do
  producer_cli "$r" &
  p1=$!
  producer_sql "$r" &
  p2=$!
  producer_c "$r" &
  p3=$!
  PIDS+=("$p1" "$p2" "$p3")
  sleep "1.$((RANDOM % 10))"
  k=$((RANDOM % WORKERS + 1))
  kill -9 "${W[$k]}" 2>/dev/null && kills=$((kills + 1))
  { wait "${W[$k]}"; } 2>/dev/null
  start_worker "$k"
  wait "$p1" "$p2" "$p3"
  if [ "$FULL" = 1 ] && [ $((r % 3)) = 0 ]; then
    # The disk fills under the workers (their commits fail: outcomes wait
    # and are spilled), one is killed while it is full, and a new one
    # starts on the full disk; then the space comes back.
    # A burst of work first, so that requests are in flight when it fills.
    sqlite3 -cmd '.timeout 5000' "$J" "WITH RECURSIVE n(i) AS (SELECT 1
      UNION ALL SELECT i + 1 FROM n WHERE i < $((PER_ROUND * 10)))
      INSERT INTO jobs(body, partition) SELECT json_object('model',
      'gpt-4o-mini', 'input', 'burst $r.' || i), 'burst' FROM n RETURNING id;" \
      >>"$T/ids.burst" 2>>"$T/producer.err" || echo "burst $r" >>"$T/lost"
    bursts=$((bursts + PER_ROUND * 10))
    sleep 0.3
    touch "$T/full"
    dd if=/dev/zero of="$T/mnt/filler" bs=64k 2>/dev/null
    sleep "1.$((RANDOM % 10))"
    k=$((RANDOM % WORKERS + 1))
    kill -9 "${W[$k]}" 2>/dev/null && kills=$((kills + 1))
    { wait "${W[$k]}"; } 2>/dev/null
    start_worker "$k"
    sleep 0.5
    rm -f "$T/mnt/filler"
    fulls=$((fulls + 1))
    sleep 1 # writers that started while it was full finish
    rm -f "$T/full"
  fi
done
touch "$STOP"
wait "${BG[@]}"
# The last word: all processes stop; the journal is whole and drains.
for k in $(seq 1 $WORKERS); do
  kill -9 "${W[$k]}" 2>/dev/null
  { wait "${W[$k]}"; } 2>/dev/null
done
echo "killed $kills workers mid-run; $fulls full-disk episodes; $(grep -c . "$T/wal.samples") WAL samples;" \
  "$(cat "$T/scrapes") scrapes; status runs/failures $(cat "$T/status.count");" \
  "replay runs/failures $(cat "$T/replay.count")"

# How many commits the full disk refused is reported, not asserted: a WAL
# that already grew to its size limit is reused in place after a checkpoint,
# so a commit can still succeed on a full file system (seen in one run of
# ten). full_disk.sh asserts the refusal path itself.
if [ "$FULL" = 1 ]; then
  echo "commits refused for a full disk: $(cat "$T"/w.*.log 2>/dev/null |
    grep -c "disk full\|disk is full")"
fi
eq "PRAGMA integrity_check after the storm" ok "$(sql 'PRAGMA integrity_check')"
eq "the WAL was there at every sample while processes ran" 0 \
  "$(grep -c missing "$T/wal.samples")"
eq "the WAL was one file throughout (one inode)" 1 \
  "$(sort -u "$T/wal.samples" | grep -vc missing)"
check "no producer lost a job or failed" test ! -s "$T/lost"
[ -s "$T/lost" ] && { head -5 "$T/lost"; head -5 "$T/producer.err"; }
eq "status readers never failed" 0 "$(cut -d' ' -f2 "$T/status.count")"
[ -s "$T/status.err" ] && head -5 "$T/status.err"
[ -s "$T/replay.err" ] && head -5 "$T/replay.err"
eq "replays and rescues never failed" 0 "$(cut -d' ' -f2 "$T/replay.count")"
check "metrics endpoints were scraped" test "$(cat "$T/scrapes")" -gt 0
eq "pruning ran beside it all (the ancient jobs are gone)" 0 \
  "$(sql "SELECT count(*) FROM jobs WHERE queue='ancient'")"

timeout 180 "$SLUICE" work "${wargs[@]}" --exit-when-idle 2>"$T/drain.log"
eq "a last worker drains everything and exits 0" 0 $?
stop_mock

touch "$T/ids.burst"
cat "$T"/ids.cli "$T"/ids.sql "$T"/ids.c "$T"/ids.burst | sort >"$T/reported"
eq "each producer reported every job it was given" \
  $((ROUNDS * PER_ROUND * 3 + bursts)) "$(grep -c . "$T/reported")"
eq "no id reported twice" 0 "$(uniq -d "$T/reported" | wc -l)"
sql "SELECT id FROM jobs WHERE queue <> 'ancient'" | sort >"$T/present"
eq "every reported job is in the journal" 0 \
  "$(comm -23 "$T/reported" "$T/present" | wc -l)"
eq "and nothing else is" 0 "$(comm -13 "$T/reported" "$T/present" | wc -l)"
eq "every job ended succeeded or failed" 0 \
  "$(sql "SELECT count(*) FROM jobs WHERE state NOT IN ('succeeded','failed')")"
eq "at most one result per job" 0 \
  "$(sql 'SELECT count(*) FROM (SELECT job_id FROM results GROUP BY job_id HAVING count(*) > 1)')"
eq "a result for each succeeded job and no other" \
  "$(sql "SELECT count(*) FROM jobs WHERE state='succeeded'")|0" \
  "$(sql "SELECT count(*), sum(j.state <> 'succeeded') FROM results r JOIN jobs j ON j.id = r.job_id")"
eq "no job has two successful attempts" 0 \
  "$(sql "SELECT count(*) FROM (SELECT job_id FROM attempts WHERE failure_class IS NULL GROUP BY job_id HAVING count(*) > 1)")"
# A key the API answered 200 twice is a kill between answer and commit: it
# must belong to a job that succeeded once (same key both times).
awk '$3 == "/v1/responses" && $5 == 200 {print $4}' "$T/mock.log" | sort |
  uniq -d >"$T/dups"
sql "SELECT idempotency_key FROM jobs WHERE state='succeeded'" | sort >"$T/ok"
eq "a key answered twice belongs to a job that succeeded once" 0 \
  "$(comm -23 "$T/dups" "$T/ok" | wc -l)"
eq "PRAGMA integrity_check at the end" ok "$(sql 'PRAGMA integrity_check')"
# The per-queue counts (migration 0015) survived every kill -9, full disk,
# plain-SQL producer and prune: they equal a recount of the jobs.
eq "job_counts equals a recount of jobs" 0 "$(sql "
  WITH r AS (SELECT queue, state, urgency, CASE WHEN state = 'failed'
       THEN coalesce(last_class, 'unknown') ELSE '' END AS class,
       count(*) AS n FROM jobs GROUP BY 1, 2, 3, 4),
     c AS (SELECT queue, state, urgency, class, n FROM job_counts WHERE n <> 0)
  SELECT (SELECT count(*) FROM (SELECT * FROM r EXCEPT SELECT * FROM c))
       + (SELECT count(*) FROM (SELECT * FROM c EXCEPT SELECT * FROM r))")"
check "job_counts is not empty" test "$(sql 'SELECT sum(n) FROM job_counts')" -gt 0
echo "jobs $(grep -c . "$T/reported"): succeeded" \
  "$(sql "SELECT count(*) FROM jobs WHERE state='succeeded' AND queue<>'ancient'")," \
  "failed $(sql "SELECT count(*) FROM jobs WHERE state='failed'");" \
  "replayed $(sql 'SELECT count(*) FROM replays') times"
finish
