#!/usr/bin/env bash
# make test runs each libFuzzer target briefly (make fuzz runs them longer).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
FUZZ_BUILD=${SLUICE_FUZZ_BUILD:-$ROOT/build/fuzz}
if ! ls "$FUZZ_BUILD"/fuzz/fuzz_* >/dev/null 2>&1; then
  echo "FAIL: no fuzz targets in $FUZZ_BUILD (make BUILD=build/fuzz FUZZ=1 fuzz-bins)"
  exit 1
fi
exec "$ROOT/tests/fuzz/run.sh" "$FUZZ_BUILD" "${FUZZ_BRIEF_SECONDS:-8}"
