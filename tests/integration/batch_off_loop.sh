#!/usr/bin/env bash
# The batch route's long journal ops run off the worker's loop (issues 14
# and 15), on SQLite: a backlog of thousands of deferrable jobs is packed,
# written, sent and ingested while online jobs flow through the mock, and
# the loop-lag probe never sees it held for long; SIGTERM during a pack
# waits for it and loses or doubles nothing (tests/lib/offloop.sh).
. "$SLUICE_ROOT/tests/lib/testlib.sh"
. "$SLUICE_ROOT/tests/lib/batchlib.sh"
. "$SLUICE_ROOT/tests/lib/offloop.sh"

start_mock --batch-phase-ms 100 --latency-ms 20 --log "$T/mock.log" ||
  { fail "mock"; finish; }
offloop_flow "${OFFLOOP_JOBS:-4000}"
offloop_sigterm "${OFFLOOP_PACK_JOBS:-12000}"
stop_mock
finish
