# shellcheck shell=bash
# pglib.sh: a throwaway PostgreSQL cluster for one test or benchmark.
# Source it after testlib.sh (or alone), then call pg_start. It sets:
#   PG_BIN      the server's bin dir (initdb, pg_ctl, psql, pg_dump)
#   PGHOST PGPORT PGUSER PGDATABASE   exported, so psql and libpq need no
#               flags (PGHOST is 127.0.0.1: the tests speak TCP)
#   PG_URL      postgresql://sluice_admin@127.0.0.1:PORT/postgres
#   PG_PW_ROLE, PG_PW_PASSWORD   a login role that must give a password
#               (scram-sha-256); every other role is trusted on loopback
# and stops and removes the cluster on exit (pg_stop; a guard process
# stops it too if the shell dies by kill -9).
#
# PostgreSQL refuses to run as root, and CI runs as root on a fresh clone:
# as root the cluster runs as the system user sluice-pgtest (created here
# when missing), otherwise as the calling user. The data dir is a temp dir
# owned by that user; the unix socket lives there too, never in
# /var/run/postgresql. Every wait is bounded.
#
# PG_OPTS (before pg_start) adds server options, e.g. "-c fsync=off" for
# tests that measure nothing; benchmarks leave the durable defaults.

PG_TEST_USER=${PG_TEST_USER:-sluice-pgtest}
PG_ADMIN=sluice_admin
PG_PW_ROLE=sluice_pw
PG_DIR=""
PG_GUARD_PID=""

# pg_find_bin: set PG_BIN to the directory holding initdb and pg_ctl
# (Debian keeps them off PATH, under /usr/lib/postgresql/N/bin).
pg_find_bin() {
  local d
  PG_BIN=""
  d=$(pg_config --bindir 2>/dev/null)
  if [ -n "$d" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/initdb" ]; then
    PG_BIN=$d
    return 0
  fi
  for d in $(printf "%s\n" /usr/lib/postgresql/*/bin | sort -V -r); do
    if [ -x "$d/pg_ctl" ] && [ -x "$d/initdb" ]; then
      PG_BIN=$d
      return 0
    fi
  done
  return 1
}

# pg_available: true when the server programs are installed.
pg_available() { pg_find_bin; }

# The user the server runs as: root cannot, so a dedicated system user.
pg_run_user() {
  if [ "$(id -u)" -ne 0 ]; then
    id -un
    return 0
  fi
  if ! getent passwd "$PG_TEST_USER" >/dev/null; then
    # Two tests may race to create it: a failed useradd is fine if the
    # user exists afterwards.
    useradd --system --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin "$PG_TEST_USER" 2>/dev/null ||
      getent passwd "$PG_TEST_USER" >/dev/null || return 1
  fi
  echo "$PG_TEST_USER"
}

# pg_as CMD...: run a server program as the cluster's user, in its dir
# (the caller's cwd may be unreadable to that user).
pg_as() {
  if [ "$(id -u)" -ne 0 ]; then
    (cd "$PG_DIR" && "$@")
  else
    (cd "$PG_DIR" && HOME="$PG_DIR" setpriv --reuid="$PG_RUN_UID" \
      --regid="$PG_RUN_GID" --clear-groups -- "$@")
  fi
}

# pg_start: initdb, configure, start on a free loopback port. Returns
# non-zero (and prints why) if the cluster cannot be started.
pg_start() {
  local user port log
  pg_find_bin || { echo "pglib: PostgreSQL is not installed (initdb, pg_ctl)"; return 1; }
  user=$(pg_run_user) || { echo "pglib: cannot create user $PG_TEST_USER"; return 1; }
  PG_RUN_UID=$(id -u "$user")
  PG_RUN_GID=$(id -g "$user")
  PG_DIR=$(mktemp -d /tmp/sluice-pg.XXXXXX) || return 1
  chmod 0700 "$PG_DIR"
  chown "$PG_RUN_UID:$PG_RUN_GID" "$PG_DIR" || return 1
  pg_install_trap
  log="$PG_DIR/initdb.log"
  if ! pg_as "$PG_BIN/initdb" -D "$PG_DIR/data" -U "$PG_ADMIN" \
    --auth=trust --encoding=UTF8 --locale=C.UTF-8 --no-sync >"$log" 2>&1; then
    echo "pglib: initdb failed:"
    tail -n 20 "$log"
    return 1
  fi
  # The password role's line comes first: hba takes the first match.
  cat >"$PG_DIR/data/pg_hba.conf" <<EOF
local all all                       trust
host  all $PG_PW_ROLE 127.0.0.1/32 scram-sha-256
host  all all         127.0.0.1/32 trust
EOF
  # A free port: try a few random ones; the server refuses a taken one.
  for _ in 1 2 3 4 5 6 7 8; do
    port=$((20000 + RANDOM % 30000))
    # shellcheck disable=SC2086
    if pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" \
      -w -t 30 -o "-c listen_addresses=127.0.0.1 -c port=$port \
        -c unix_socket_directories=$PG_DIR -c max_connections=40 \
        -c shared_buffers=32MB -c dynamic_shared_memory_type=mmap \
        ${PG_OPTS:-}" start >"$PG_DIR/pg_ctl.log" 2>&1; then
      break
    fi
    port=""
    pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -t 10 stop \
      >/dev/null 2>&1
  done
  if [ -z "$port" ]; then
    echo "pglib: the server did not start:"
    tail -n 20 "$PG_DIR/server.log" 2>/dev/null
    return 1
  fi
  export PGHOST=127.0.0.1 PGPORT=$port PGUSER=$PG_ADMIN PGDATABASE=postgres
  unset PGPASSWORD PGSERVICE PGSERVICEFILE PGPASSFILE PGOPTIONS
  export PGCONNECT_TIMEOUT=10
  export PG_URL="postgresql://$PG_ADMIN@127.0.0.1:$port/postgres"
  PG_PW_PASSWORD="pw-$RANDOM$RANDOM$RANDOM"
  if ! pg_psql -d postgres -c "CREATE ROLE $PG_PW_ROLE LOGIN PASSWORD '$PG_PW_PASSWORD'" \
    >/dev/null; then
    echo "pglib: cannot create role $PG_PW_ROLE"
    return 1
  fi
  pg_guard
  return 0
}

# pg_psql ARGS...: psql that stops at the first error and prints bare rows.
pg_psql() {
  "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -At "$@"
}

# pg_createdb NAME: a fresh database owned by the admin role.
pg_createdb() { pg_psql -d postgres -c "CREATE DATABASE \"$1\""; }

# pg_test_db NAME: the preamble of a script on a throwaway cluster. Skips
# the script (exit 0) without PostgreSQL; else starts the cluster (fsync
# off unless PG_OPTS says) and makes database NAME, usable by the
# password role $PG_PW_ROLE.
pg_test_db() {
  if ! pg_available; then
    echo "SKIP: PostgreSQL is not installed"
    exit 0
  fi
  PG_OPTS="${PG_OPTS:--c fsync=off}" pg_start || { fail "pg_start"; finish; }
  pg_createdb "$1" >/dev/null
  pg_psql -d "$1" -c "GRANT ALL ON DATABASE \"$1\" TO $PG_PW_ROLE;
    GRANT CREATE ON SCHEMA public TO $PG_PW_ROLE" >/dev/null
}

# pg_migrate DB: apply migrations/pg/ as lib/pg's runner will: each file
# not yet recorded in sluice.schema_migrations, in one transaction under
# an advisory lock, recorded in the same transaction.
pg_migrate() {
  local db=$1 f v name have
  for f in "${SLUICE_ROOT:?}"/migrations/pg/[0-9][0-9][0-9][0-9]_*.sql; do
    name=$(basename "$f" .sql)
    v=$((10#${name%%_*}))
    have=$(pg_psql -d "$db" -c "SELECT 1 FROM pg_namespace n JOIN pg_class c
      ON c.relnamespace = n.oid WHERE n.nspname = 'sluice'
      AND c.relname = 'schema_migrations'")
    if [ -n "$have" ] && [ -n "$(pg_psql -d "$db" -c \
      "SELECT 1 FROM sluice.schema_migrations WHERE version = $v")" ]; then
      continue
    fi
    { echo "SELECT pg_advisory_xact_lock(hashtext('sluice.migrate'));"
      cat "$f"
      echo "INSERT INTO sluice.schema_migrations (version, name) VALUES ($v, '$name');"
    } | pg_psql -d "$db" --single-transaction -f - >/dev/null || return 1
  done
}

# pg_stop: stop the server (bounded) and remove its directory. Idempotent.
pg_stop() {
  local pid
  [ -n "$PG_DIR" ] || return 0
  if [ -n "$PG_GUARD_PID" ]; then
    kill "$PG_GUARD_PID" 2>/dev/null
    wait "$PG_GUARD_PID" 2>/dev/null
    PG_GUARD_PID=""
  fi
  if [ -f "$PG_DIR/data/postmaster.pid" ]; then
    pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -t 20 stop \
      >/dev/null 2>&1
    pid=$(head -1 "$PG_DIR/data/postmaster.pid" 2>/dev/null)
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
  fi
  rm -rf "$PG_DIR"
  PG_DIR=""
}

# pg_down / pg_up: stop the running cluster (fast) and start it again with
# the options pg_start gave it (postmaster.opts: port, socket dir), as a
# server restart in the middle of a test. pg_up tries a few times: the
# machine is shared and loaded.
pg_down() {
  pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w -t 60 stop \
    >>"$T/pg_ctl.log" 2>&1
}
pg_up() {
  local i
  # Read once, as pg_start left it: a restart rewrites the file.
  : "${PG_UP_OPTS:=$(cut -d' ' -f2- "$PG_DIR/data/postmaster.opts")}"
  for i in 1 2 3; do
    pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" \
      -o "$PG_UP_OPTS" -w -t 60 start >>"$T/pg_ctl.log" 2>&1 && return 0
    echo "pg_ctl start failed (try $i):"
    tail -n 5 "$T/pg_ctl.log" "$PG_DIR/server.log"
    sleep 1
  done
  return 1
}

# pg_relay_start: tests/helpers/tcp_relay from a free loopback port to the
# cluster, a line per accepted connection in $T/relay.err; sets RELAY,
# RELAY_PID and RELAY_PORT. Fails a check and returns 1 if it cannot.
pg_relay_start() {
  RELAY="$SLUICE_BUILD/tests/helpers/tcp_relay"
  [ -x "$RELAY" ] || { fail "tcp_relay helper built" "$RELAY"; return 1; }
  "$RELAY" 0 "$PGPORT" "$T/relay.port" 2>"$T/relay.err" &
  RELAY_PID=$!
  PIDS+=("$RELAY_PID")
  wait_for 10 test -s "$T/relay.port" ||
    { fail "the relay listens"; return 1; }
  RELAY_PORT=$(cat "$T/relay.port")
}

# Stop the cluster before testlib's cleanup (which removes $T), and turn
# TERM/INT (tests/run.sh's timeout) into an exit so the trap runs.
pg_install_trap() {
  local prev
  prev=$(trap -p EXIT | sed -e "s/^trap -- '//" -e "s/' EXIT\$//")
  # shellcheck disable=SC2064
  trap "pg_stop; $prev" EXIT
  trap 'exit 143' TERM INT
}

# A guard that stops the cluster once this shell is gone (kill -9 of the
# test leaves no trap to run), checking every second for at most 4 hours.
pg_guard() {
  local shell_pid=$$ dir=$PG_DIR bin=$PG_BIN
  (
    trap - EXIT TERM INT
    for _ in $(seq 1 14400); do
      kill -0 "$shell_pid" 2>/dev/null || break
      sleep 1
    done
    if [ -f "$dir/data/postmaster.pid" ]; then
      PG_DIR=$dir PG_BIN=$bin pg_as "$bin/pg_ctl" -D "$dir/data" \
        -m immediate -t 20 stop >/dev/null 2>&1
      rm -rf "$dir"
    fi
  ) </dev/null >/dev/null 2>&1 &
  PG_GUARD_PID=$!
}
