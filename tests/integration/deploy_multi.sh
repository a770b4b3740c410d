#!/usr/bin/env bash
# deploy/multi-host/: the template unit (systemd-analyze verify when
# present, else a line check; the keys it relies on), the environment file
# (KEY=value lines, a postgresql:// journal with no password, every
# SLUICE_<OPTION> an option of `sluice work`), the pgpass example's shape,
# and, on a throwaway PostgreSQL cluster: roles.sql and grants.sql apply,
# the unit's ExecStart with the environment file runs two workers on one
# database with the password from the pgpass credential only, and the
# door role may insert jobs but not change them.
. "$(dirname "$0")/../lib/testlib.sh"
. "$SLUICE_ROOT/tests/lib/pglib.sh"
D="$SLUICE_ROOT/deploy/multi-host"
UNIT="$D/sluice-pg@.service"
ENVF="$D/sluice-pg.env"

for f in README.md sluice-pg@.service sluice-pg.env pgpass.example roles.sql grants.sql; do
  check "deploy/multi-host/$f exists" test -s "$D/$f"
done

# --- the unit ----------------------------------------------------------------
exec_start=$(sed -n '/^ExecStart=/,/[^\\]$/p' "$UNIT" | tr -d '\\\n')
for want in "--spill-dir /var/lib/sluice/spill-%i" \
  "--api-key-file %d/openai-key" "--drain-timeout 30s"; do
  case "$exec_start" in
  *"$want"*) pass "unit ExecStart has $want" ;;
  *) fail "unit ExecStart has $want" "$exec_start" ;;
  esac
done
for kv in "EnvironmentFile=/etc/sluice/sluice-pg.env" \
  "LoadCredential=pgpass:/etc/sluice/pgpass" \
  "LoadCredential=openai-key:/etc/sluice/openai-key" \
  "Environment=PGPASSFILE=%d/pgpass" "Type=notify" "KillSignal=SIGTERM" \
  "TimeoutStopSec=45s" "User=sluice" "ProtectSystem=strict" \
  "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX" "StateDirectory=sluice"; do
  check "unit sets $kv" grep -qx -- "$kv" "$UNIT"
done
check "no password or key in the unit" \
  bash -c "! grep -Eiq '^Environment=.*(PGPASSWORD|OPENAI_API_KEY|sk-)' '$UNIT'"

if command -v systemd-analyze >/dev/null 2>&1; then
  mkdir -p "$T/units" "$T/man/man1" "$T/man/man5"
  sed "s|/usr/local/bin/sluice|$SLUICE|" "$UNIT" >"$T/units/sluice-pg@.service"
  ln -s sluice-pg@.service "$T/units/sluice-pg@1.service"
  cp "$SLUICE_ROOT/man/sluice.1" "$T/man/man1/"
  cp "$SLUICE_ROOT/man/sluice.conf.5" "$T/man/man5/"
  verify() { MANPATH="$T/man" SYSTEMD_LOG_COLOR=0 systemd-analyze verify "$1" 2>&1; }
  out=$(verify "$T/units/sluice-pg@1.service")
  rc=$?
  if [ $rc -eq 0 ] && [ -z "$out" ]; then
    pass "systemd-analyze verify sluice-pg@1.service: clean"
  else
    fail "systemd-analyze verify sluice-pg@1.service" "rc=$rc: $out"
  fi
  sed 's/^KillMode=mixed/KillMode=sometimes/' "$T/units/sluice-pg@.service" \
    >"$T/units/broken-pg@.service"
  ln -s broken-pg@.service "$T/units/broken-pg@1.service"
  case "$(verify "$T/units/broken-pg@1.service")" in
  *sometimes*) pass "systemd-analyze verify flags a broken copy" ;;
  *) fail "systemd-analyze verify flags a broken copy" ;;
  esac
else
  bad=$(grep -nvE '^(#.*|;.*|\[(Unit|Service|Install)\]|[A-Z][A-Za-z]+=.*|    .*|)$' "$UNIT")
  eq "unit syntax checked by grep (systemd-analyze absent)" "" "$bad"
fi

# --- the environment file ------------------------------------------------------
bad=$(grep -nvE '^(#.*|[A-Z][A-Z0-9_]*=.*|)$' "$ENVF")
eq "env file: comments and KEY=value lines only" "" "$bad"
# KEY=value, quotes removed as systemd does
envval() { sed -n "s/^$1=//p" "$ENVF" | sed 's/^"\(.*\)"$/\1/'; }
journal=$(envval SLUICE_JOURNAL)
case $journal in
postgresql://*) pass "env file: SLUICE_JOURNAL is a postgresql:// URI" ;;
*) fail "env file: SLUICE_JOURNAL is a postgresql:// URI" "$journal" ;;
esac
check "env file: no password in the URI, no PGPASSWORD" \
  bash -c "! printf '%s' '$journal' | grep -q '//[^/@]*:[^/@]*@' && ! grep -q PGPASSWORD '$ENVF'"
"$SLUICE" work --help >"$T/work-help" 2>&1
for v in $(sed -n 's/^\(SLUICE_[A-Z_]*\)=.*/\1/p' "$ENVF"); do
  [ "$v" = SLUICE_JOURNAL ] && continue
  opt=$(printf '%s' "${v#SLUICE_}" | tr 'A-Z_' 'a-z-')
  check "env file: $v is sluice work --$opt" grep -q -- "--$opt " "$T/work-help"
done
for f in $(echo "$exec_start" | grep -o -- '--[a-z][a-z-]*' | sort -u); do
  check "sluice work knows $f" grep -q -- "$f" "$T/work-help"
done
bad=$(grep -vE '^(#.*|[^:#]+:[0-9*]+:[^:]+:[^:]+:.+)$' "$D/pgpass.example")
eq "pgpass.example: host:port:database:user:password lines" "" "$bad"

# --- on a real database ---------------------------------------------------------
if ! pg_available; then
  echo "SKIP: PostgreSQL is not installed (roles, grants and workers not run)"
  finish
fi
PG_OPTS="-c fsync=off" pg_start || { fail "pg_start"; finish; }
pg_psql -d postgres -f "$D/roles.sql" >"$T/roles.out" 2>&1
eq "roles.sql applies" 0 "$?"
# sluice must give its password (its hba line before pglib's trust line)
sed -i "1a host all sluice 127.0.0.1/32 scram-sha-256" "$PG_DIR/data/pg_hba.conf"
PW="pw-$RANDOM$RANDOM"
pg_psql -d postgres -c "ALTER ROLE sluice PASSWORD '$PW'; SELECT pg_reload_conf()" >/dev/null
mkdir -p "$T/creds" "$T/state"
printf '127.0.0.1:%s:jobs:sluice:%s\n' "$PGPORT" "$PW" >"$T/creds/pgpass"
chmod 0600 "$T/creds/pgpass"
KEY="sk-multi-test-$RANDOM$RANDOM"
printf '%s\n' "$KEY" >"$T/creds/openai-key"
chmod 0600 "$T/creds/openai-key"
# The env file as systemd reads it, pointed at the throwaway server.
here_env=()
while IFS= read -r line; do
  case $line in '#'* | '') continue ;; esac
  line=$(printf '%s' "$line" | sed -e 's/="\(.*\)"$/=\1/' \
    -e "s|db1.internal:5432|127.0.0.1:$PGPORT|" -e 's/sslmode=verify-full/sslmode=disable/')
  here_env+=("$line")
done <"$ENVF"
here_env+=("PGPASSFILE=$T/creds/pgpass")
J=$(printf '%s\n' "${here_env[@]}" | sed -n 's/^SLUICE_JOURNAL=//p')

env -u PGPASSFILE SLUICE_JOURNAL="$J" "$SLUICE" init >"$T/nopw.out" 2>&1
check "without the pgpass file the journal refuses (password required)" test $? -ne 0
env "${here_env[@]}" "$SLUICE" init >"$T/init.out" 2>&1
eq "with it (PGPASSFILE), sluice init creates the schema" 0 "$?"
pg_psql -d jobs -f "$D/grants.sql" >"$T/grants.out" 2>&1
eq "grants.sql applies" 0 "$?"
for i in $(seq 1 40); do printf '{"model":"m","input":"multi %d"}\n' "$i"; done |
  env "${here_env[@]}" "$SLUICE" enqueue >/dev/null 2>"$T/enq.err"
eq "sluice enqueue through the env file's journal" 40 \
  "$(pg_psql -d jobs -c "SELECT count(*) FROM sluice.jobs")"

if start_mock --require-key "$KEY" --latency-ms 50; then
  read -ra cmd <<<"$(echo "$exec_start" | sed -e 's/^ExecStart=//' \
    -e "s|/usr/local/bin/sluice|$SLUICE|" -e "s|/var/lib/sluice|$T/state|g" \
    -e "s|%d|$T/creds|g")"
  pids=()
  for i in 1 2; do # two instances: sluice-pg@1 and sluice-pg@2
    inst=("${cmd[@]//%i/$i}")
    env "${here_env[@]}" "${inst[@]}" --base-url "$MOCK_URL" --poll 100ms \
      --exit-when-idle 2>"$T/w$i.log" &
    pids+=($!)
  done
  PIDS+=("${pids[@]}")
  rcs=""
  for p in "${pids[@]}"; do
    timeout 120 tail --pid="$p" -f /dev/null
    wait "$p"
    rcs="$rcs$?"
  done
  eq "two instances of the unit's ExecStart exit 0" "00" "$rcs"
  eq "... and finish every job once" "40|40" \
    "$(pg_psql -d jobs -c "SELECT count(*) FILTER (WHERE state = 'succeeded'),
       (SELECT count(*) FROM sluice.results) FROM sluice.jobs")"
  check "... each instance with its own spill directory" \
    test -d "$T/state/spill-1" -a -d "$T/state/spill-2"
  check "... the password and key appear in no log" \
    bash -c "! grep -q -e '$PW' -e '$KEY' '$T/w1.log' '$T/w2.log' '$T/init.out' '$T/enq.err'"
  stop_mock
else
  fail "sluice-mock starts"
fi

# The door role: insert a job and read outcomes; never change a job.
door() { "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -U sluice_door -d jobs -c "$1" 2>&1; }
out=$(door "INSERT INTO sluice.jobs(body) VALUES ('{\"model\":\"m\",\"input\":\"door\"}') RETURNING state")
eq "sluice_door may INSERT INTO sluice.jobs" "pending" "$out"
out=$(door "INSERT INTO sluice.jobs(idempotency_key, body) VALUES ('k1', '{\"model\":\"m\"}'), ('k1', '{\"model\":\"m\"}')
  ON CONFLICT (idempotency_key) DO NOTHING RETURNING 1" 2>&1)
eq "... with ON CONFLICT (idempotency_key) DO NOTHING" 1 "$out"
# One statement in 32 folds job_counts (pg 0017), as the trigger's owner:
# 200 single-row inserts by the door role all land (odds of no fold 0.2%).
for i in $(seq 200); do
  echo "INSERT INTO sluice.jobs(queue, body) VALUES ('door', '{\"model\":\"m\",\"n\":$i}');"
done | "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -U sluice_door -d jobs >"$T/door200.out" 2>&1
check "... 200 single inserts in a row, folds among them ($(head -c 200 "$T/door200.out"))" \
  test "$(door "SELECT count(*) FROM sluice.jobs WHERE queue = 'door'")" = 200
out=$(door "SELECT count(*) FROM sluice.job_outputs")
eq "... and read outcomes" 40 "$out"
out=$(door "UPDATE sluice.jobs SET state = 'cancelled'")
case $out in
*"permission denied"*) pass "... but not UPDATE sluice.jobs" ;;
*) fail "... but not UPDATE sluice.jobs" "$out" ;;
esac
finish
