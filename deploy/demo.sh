#!/usr/bin/env bash
# make demo: the main job end to end on the embedded default. An SQLite
# journal, and the bundled mock OpenAI server unless OPENAI_API_KEY is set
# (then the real API, with a handful of jobs). Usage: deploy/demo.sh BUILD
set -euo pipefail
BUILD=$(cd "${1:-build}" && pwd)
SLUICE="$BUILD/sluice"
DIR="$BUILD/demo"
rm -rf "$DIR"
mkdir -p "$DIR"
export SLUICE_JOURNAL="$DIR/demo.db"
MOCK_PID=

cleanup() {
  if [ -n "$MOCK_PID" ]; then
    kill "$MOCK_PID" 2>/dev/null || true
    wait "$MOCK_PID" 2>/dev/null || true
  fi
}
trap cleanup EXIT

say() { printf '\n== %s\n' "$*"; }

if [ -n "${OPENAI_API_KEY:-}" ]; then
  ONLINE=5
  BATCHED=0
  BASE="${OPENAI_BASE_URL:-https://api.openai.com/v1}"
  say "OPENAI_API_KEY is set: using the real API at $BASE with $ONLINE jobs"
else
  ONLINE=1000
  BATCHED=${DEMO_BATCHED:-300}
  "$BUILD/sluice-mock" --port 0 --port-file "$DIR/mock.port" \
    --latency-ms 20 --batch-phase-ms 200 --log "$DIR/mock.log" \
    2>"$DIR/mock.stderr" &
  MOCK_PID=$!
  for _ in $(seq 1 100); do [ -s "$DIR/mock.port" ] && break; sleep 0.05; done
  [ -s "$DIR/mock.port" ] || { cat "$DIR/mock.stderr"; exit 1; }
  BASE="http://127.0.0.1:$(cat "$DIR/mock.port")/v1"
  export OPENAI_API_KEY=""
  say "OPENAI_API_KEY is unset: using the bundled mock at $BASE (20 ms latency)"
fi

say "sluice init"
"$SLUICE" init

say "enqueue $ONLINE urgent jobs (JSONL on stdin, one transaction)"
for i in $(seq 1 "$ONLINE"); do
  printf '{"model":"gpt-4o-mini","input":"Say hello to visitor %d.","max_output_tokens":16}\n' "$i"
done | "$SLUICE" enqueue --queue demo --partition "demo-$(date +%Y%m%d)"
if [ "$BATCHED" -gt 0 ]; then
  say "enqueue $BATCHED deferrable jobs (Batch API)"
  for i in $(seq 1 "$BATCHED"); do
    printf '{"model":"gpt-4o-mini","input":"Summarise document %d."}\n' "$i"
  done | "$SLUICE" enqueue --queue demo --urgency deferrable
fi
"$SLUICE" status

say "sluice work --exit-when-idle"
start=$(date +%s%N)
"$SLUICE" work --base-url "$BASE" --concurrency 64 --exit-when-idle \
  --batch-max-wait 500ms --batch-poll 200ms --log-level warn
end=$(date +%s%N)
echo "worker finished in $(((end - start) / 1000000)) ms"

say "sluice status"
"$SLUICE" status

say "results by route (deferrable jobs went through the Batch API)"
sqlite3 "$SLUICE_JOURNAL" \
  "SELECT route, count(*), sum(total_tokens) FROM results GROUP BY route" |
  sed 's/^/  /'
sqlite3 "$SLUICE_JOURNAL" \
  "SELECT 'batch ' || id || ': ' || state || ', remote ' ||
          coalesce(remote_batch_id, '-') || ' ' || coalesce(remote_status, '-')
          || ', ' || completed_count || '/' || request_count || ' completed'
     FROM batches" | sed 's/^/  /'

say "a few results"
sqlite3 "$SLUICE_JOURNAL" \
  "SELECT r.job_id, r.http_status, r.request_id, r.input_tokens, r.output_tokens,
          substr(coalesce(json_extract(r.body, '\$.output[0].content[0].text'),
                          r.body), 1, 60)
     FROM results r ORDER BY r.job_id LIMIT 5" |
  sed 's/^/  /'

say "per-hop timings of job 1 (sluice show 1)"
"$SLUICE" show 1 | grep -E "attempt|state"
say "journal: $SLUICE_JOURNAL (inspect with sqlite3 or sluice status)"
