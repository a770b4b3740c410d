#!/usr/bin/env bash
# sluice jobs: finding jobs by state, queue, partition, class, time,
# metadata, id and key, newest first; --json; metadata from enqueue;
# bad filters refused with exit 2 and a reason.
. "$(dirname "$0")/../lib/testlib.sh"

"$SLUICE" init >/dev/null
a=$("$SLUICE" enqueue -q mail -P t1 -M '{"tenant":"acme","order":42}' '{"model":"m"}')
b=$("$SLUICE" enqueue -q mail -P t2 -M '{"tenant":"acme","order":43}' '{"model":"m"}')
c=$("$SLUICE" enqueue -q bulk -k key-c '{"model":"m"}')
d=$("$SLUICE" enqueue -q bulk -M '{"tenant":"beta"}' '{"model":"m"}')
sql "UPDATE jobs SET state = 'failed', last_class = 'auth', finished_at = 1 WHERE id = $c;
     UPDATE jobs SET created_at = created_at - 7200000 WHERE id = $a"

# ids [FILTERS...]: the ids `sluice jobs --json` lists, in order.
ids() {
  "$SLUICE" jobs --json "$@" >"$T/ids.json" || return
  sqlite3 :memory: "SELECT group_concat(json_extract(value, '\$.id'), ' ')
    FROM json_each(json_extract(readfile('$T/ids.json'), '\$.jobs'))"
}

eq "jobs lists everything newest first" "$d $c $b $a" "$(ids)"
eq "--queue" "$b $a" "$(ids --queue mail)"
eq "--queue and --partition" "$a" "$(ids -q mail -P t1)"
eq "--state failed (dead letters)" "$c" "$(ids --state failed)"
eq "--class" "$c" "$(ids --class auth)"
eq "--class that no job has" "" "$(ids --class timeout)"
eq "--metadata" "$b $a" "$(ids --metadata tenant=acme)"
eq "--metadata twice: both must match" "$a" "$(ids -M tenant=acme -M order=42)"
eq "--since 1h leaves out the job created 2h ago" "$d $c $b" "$(ids --since 1h)"
eq "--until 1h keeps only it" "$a" "$(ids --until 1h)"
eq "--since an RFC 3339 time" "$d $c $b $a" "$(ids --since 2020-01-01T00:00:00Z)"
eq "--id" "$b" "$(ids --id $b)"
eq "--idempotency-key" "$c" "$(ids -k key-c)"
eq "--limit" "$d $c" "$(ids --limit 2)"

"$SLUICE" jobs --json --id $a >"$T/a.json"
eq "--json carries metadata as an object" 42 \
  "$(sqlite3 :memory: "SELECT json_extract(readfile('$T/a.json'), '\$.jobs[0].metadata.order')")"
"$SLUICE" jobs -M tenant=beta >"$T/text"
check "text view: header and the job's row" \
  grep -q "^$d  *pending  *bulk .*{\"tenant\":\"beta\"}" "$T/text"
"$SLUICE" jobs -q nosuch >"$T/text"
eq "nothing matches: exit 0" 0 $?
check "... and says so" grep -q "no matching jobs" "$T/text"

for args in "--state done" "--class nope" "--since 1700000000" "--metadata tenant" \
            "--limit 0" "--id x" "stray"; do
  "$SLUICE" jobs $args >/dev/null 2>"$T/err"
  eq "jobs $args: exit 2" 2 $?
  check "jobs $args: says what was wrong" test -s "$T/err"
done
check "a bare number gets a hint" grep -q "bare number" \
  <("$SLUICE" jobs --since 1700000000 2>&1)

# Metadata: refused when not an object, nothing written.
"$SLUICE" enqueue -M '[1]' '{"model":"m"}' >/dev/null 2>"$T/err"
eq "enqueue --metadata that is not an object: exit 1" 1 $?
check "... names the constraint" grep -q "metadata must be a JSON object" "$T/err"
eq "... and writes nothing" 4 "$(sql 'SELECT count(*) FROM jobs')"
# JSONL on stdin: --metadata applies to every line.
printf '{"model":"m"}\n{"model":"m"}\n' |
  "$SLUICE" enqueue -M '{"run":"r7"}' >/dev/null
eq "JSONL enqueue stores --metadata on each job" 2 \
  "$(sql "SELECT count(*) FROM jobs WHERE json_extract(metadata, '\$.run') = 'r7'")"
"$SLUICE" show --json $a >"$T/show.json"
eq "show --json carries metadata" acme \
  "$(sqlite3 :memory: "SELECT json_extract(readfile('$T/show.json'), '\$.metadata.tenant')")"
"$SLUICE" show $a >"$T/show"
check "show prints metadata" grep -q 'metadata .*"tenant":"acme"' "$T/show"

finish
