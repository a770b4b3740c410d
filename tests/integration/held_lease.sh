#!/usr/bin/env bash
# A job held back by storm control is still the worker's job: its lease is
# heartbeated like a request in flight's, and a job whose lease is gone is
# never sent. A slow API (6 s a reply) and the shortest allowed lease (4 s
# for --poll 1s): the route admits the claimed jobs a few at a time, so
# some wait longer than the lease. Before the fix their leases expired, the
# worker's own rescue gave them back, it claimed and sent them again, and
# the held copies went out too: each held job was sent twice.
. "$(dirname "$0")/../lib/testlib.sh"

N=8
start_mock --latency-ms 6000 --log "$T/mock.log"
"$SLUICE" init >/dev/null
for i in $(seq 1 $N); do printf '{"model":"m","input":"held %d"}\n' "$i"; done |
  "$SLUICE" enqueue >/dev/null
timeout 120 "$SLUICE" work --base-url "$MOCK_URL" --concurrency $N \
  --lease 4s --poll 1s --exit-when-idle 2>"$T/w.log"
eq "the worker drains and exits 0" 0 $?
stop_mock
# The premise: replies spread over more than a lease, so jobs were held.
spread=$(api_calls "$T/mock.log" | awk 'NR == 1 || $1 < lo { lo = $1 }
  $1 > hi { hi = $1 } END { print hi - lo }')
check "some jobs waited longer than the lease before they were sent" \
  test "${spread:-0}" -gt 4000
eq "every job succeeded" "$N" \
  "$(sql "SELECT count(*) FROM jobs WHERE state='succeeded'")"
eq "each job was sent once" "$N" "$(api_calls "$T/mock.log" | wc -l)"
eq "no key was sent twice" 0 \
  "$(api_calls "$T/mock.log" | awk '{print $4}' | sort | uniq -d | wc -l)"
check "no lease of a held job expired" \
  bash -c "! grep -q 'rescued [0-9]* jobs whose lease expired' '$T/w.log'"
eq "one attempt per job" "$N" "$(sql 'SELECT count(*) FROM attempts')"
finish
