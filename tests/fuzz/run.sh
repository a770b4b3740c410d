#!/usr/bin/env bash
# Run every libFuzzer target for SECONDS each, from its seed corpus.
# Usage: tests/fuzz/run.sh BUILD_DIR SECONDS
set -u
BUILD=${1:-build/fuzz}
SECONDS_EACH=${2:-60}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
rc=0
for f in "$BUILD"/fuzz/fuzz_*; do
  [ -x "$f" ] || continue
  name=$(basename "$f")
  corpus=$(mktemp -d /tmp/sluice-corpus.XXXXXX)
  mkdir -p "$ROOT/build/fuzz-artifacts"
  [ -d "$ROOT/tests/fuzz/corpus/$name" ] && cp "$ROOT/tests/fuzz/corpus/$name"/* "$corpus"/ 2>/dev/null
  if "$f" -max_total_time="$SECONDS_EACH" -rss_limit_mb=1024 -max_len=4096 \
    -artifact_prefix="$ROOT/build/fuzz-artifacts/$name-" \
    -print_final_stats=0 "$corpus" >"$corpus.log" 2>&1; then
    echo "PASS: $name fuzzed ${SECONDS_EACH}s ($(grep -o 'Done [0-9]* runs' "$corpus.log" | tail -1))"
  else
    echo "FAIL: $name (reproducer in build/fuzz-artifacts/)"
    tail -n 30 "$corpus.log"
    rc=1
  fi
  rm -rf "$corpus" "$corpus.log"
done
exit $rc
