#!/usr/bin/env bash
# Run every benchmark: each executable in BUILD/bench/ and every bench/*.sh
# script but this one. Each prints its own figures. Benchmarks report, they
# never fail on time; this script exits non-zero only when a benchmark itself
# failed (crashed, or found the journal not holding the work it should).
# Usage: bench/run.sh [BUILD_DIR] [extra args passed to each binary]
set -u
BUILD=${1:-build}
shift || true
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "$ROOT" && cd "$BUILD" && pwd) || {
  echo "no build dir" >&2
  exit 2
}
export SLUICE_BUILD="$BUILD" SLUICE_ROOT="$ROOT"
self=$(basename "$0")
failed=()

echo "bench: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(nproc) cores, build $BUILD"
for b in "$BUILD"/bench/*; do
  [ -f "$b" ] && [ -x "$b" ] || continue
  # the PostgreSQL baseline needs a cluster: bench/pg_baseline.sh runs it
  case "$(basename "$b")" in bench_pg_*) continue ;; esac
  # bench/scale.sh's probe and builder need its journal (make bench-scale)
  case "$(basename "$b")" in scale_probe | scale_build) continue ;; esac
  echo "=== $(basename "$b")"
  "$b" "$@" || failed+=("$(basename "$b")")
done
for s in "$ROOT"/bench/*.sh; do
  [ -f "$s" ] || continue
  [ "$(basename "$s")" = "$self" ] && continue
  [ "$(basename "$s")" = scale.sh ] && continue # make bench-scale
  [ "$(basename "$s")" = lib.sh ] && continue   # sourced by the others
  echo "=== $(basename "$s")"
  bash "$s" "$BUILD" || failed+=("$(basename "$s")")
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "bench: failed: ${failed[*]}"
  exit 1
fi
echo "bench: done"
