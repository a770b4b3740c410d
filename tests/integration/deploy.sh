#!/usr/bin/env bash
# deploy/: the systemd template unit (systemd-analyze verify when present,
# else a check of its keys), the runit scripts (sh -n), supervisord.conf (an
# INI sanity check without Python), and the flags they pass to
# `sluice work` against its --help once the worker exists.
. "$(dirname "$0")/../lib/testlib.sh"
D="$SLUICE_ROOT/deploy"
UNIT="$D/sluice@.service"
DRAIN_S=30 # the --drain-timeout the examples pass

# Value of KEY= in the unit (last one wins, as in systemd).
unit_key() { sed -n "s/^$1=//p" "$UNIT" | tail -1; }
# Seconds from a systemd or sluice time span like 45s, 2min, 1m30s.
span_s() {
  local s=$1 total=0 n u
  while [ -n "$s" ]; do
    n=${s%%[!0-9]*}
    s=${s#"$n"}
    u=${s%%[0-9]*}
    s=${s#"$u"}
    [ -n "$n" ] || return 1
    case "$u" in
    "" | s | sec) total=$((total + n)) ;;
    m | min) total=$((total + n * 60)) ;;
    h) total=$((total + n * 3600)) ;;
    *) return 1 ;;
    esac
  done
  echo "$total"
}

# --- systemd unit: keys every deployment relies on -------------------------
exec_start=$(sed -n '/^ExecStart=/,/[^\\]$/p' "$UNIT" | tr -d '\\\n')
for want in "--queue %i" "--journal /var/lib/sluice/sluice.db" \
  "--api-key-file %d/openai-key" "--drain-timeout ${DRAIN_S}s"; do
  case "$exec_start" in
  *"$want"*) pass "unit ExecStart has $want" ;;
  *) fail "unit ExecStart has $want" "$exec_start" ;;
  esac
done
for kv in "LoadCredential=openai-key:/etc/sluice/openai-key" "Type=notify" \
  "KillSignal=SIGTERM" "Restart=on-failure" "StateDirectory=sluice" \
  "UMask=0077" "NoNewPrivileges=yes" "ProtectSystem=strict" \
  "ProtectHome=yes" "PrivateTmp=yes" "PrivateDevices=yes" \
  "ProtectKernelTunables=yes" "ProtectKernelModules=yes" \
  "ProtectKernelLogs=yes" "ProtectControlGroups=yes" \
  "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX" \
  "SystemCallFilter=@system-service" "MemoryDenyWriteExecute=yes" \
  "LockPersonality=yes" "User=sluice"; do
  check "unit sets $kv" grep -qx -- "$kv" "$UNIT"
done
check "no Environment= line carries an API key" \
  bash -c "! grep -Eiq '^Environment=.*(OPENAI_API_KEY|sk-)' '$UNIT'"
stop=$(span_s "$(unit_key TimeoutStopSec)")
if [ -n "$stop" ] && [ "$stop" -gt "$DRAIN_S" ]; then
  pass "TimeoutStopSec ($stop s) is above the drain timeout ($DRAIN_S s)"
else
  fail "TimeoutStopSec is above the drain timeout" "got '$stop'"
fi

# Type=notify needs a binary that speaks sd_notify: with libsystemd
# installed, the default build (USE_SYSTEMD=auto) links it.
if pkg-config --exists libsystemd 2>/dev/null; then
  check "Type=notify: the built sluice links libsystemd" \
    bash -c "readelf -d '$SLUICE' | grep -q 'NEEDED.*libsystemd'"
else
  pass "libsystemd absent here: Type=notify needs a build with it (not checked)"
fi

# --- systemd unit: systemd's own parser -------------------------------------
if command -v systemd-analyze >/dev/null 2>&1; then
  # verify wants ExecStart's binary and Documentation's man page to exist:
  # point the unit at the built binary and MANPATH at our man pages.
  mkdir -p "$T/units" "$T/man/man1"
  sed "s|/usr/local/bin/sluice|$SLUICE|" "$UNIT" >"$T/units/sluice@.service"
  ln -s sluice@.service "$T/units/sluice@default.service"
  cp "$SLUICE_ROOT/man/sluice.1" "$T/man/man1/" 2>/dev/null
  verify() { # unit file; prints what systemd-analyze said, returns its rc
    MANPATH="$T/man" SYSTEMD_LOG_COLOR=0 systemd-analyze verify "$1" 2>&1
  }
  out=$(verify "$T/units/sluice@default.service")
  rc=$?
  # verify reports bad values as warnings and still exits 0: any output fails
  if [ $rc -eq 0 ] && [ -z "$out" ]; then
    pass "systemd-analyze verify sluice@default.service: clean"
  else
    fail "systemd-analyze verify sluice@default.service" "rc=$rc: $out"
  fi
  # The check above can fail: a broken copy must draw a complaint.
  sed 's/^ProtectHome=yes/ProtectHome=sometimes/' \
    "$T/units/sluice@.service" >"$T/units/broken@.service"
  ln -s broken@.service "$T/units/broken@x.service"
  out=$(verify "$T/units/broken@x.service")
  case "$out" in
  *sometimes*) pass "systemd-analyze verify flags a broken unit" ;;
  *) fail "systemd-analyze verify flags a broken unit" "said: $out" ;;
  esac
else
  # Without systemd: every line is a comment, a [Section] systemd knows, or
  # Key=value with a capitalised key (the keys themselves are checked above).
  bad=$(grep -nvE '^(#.*|;.*|\[(Unit|Service|Install)\]|[A-Z][A-Za-z]+=.*|    .*|)$' "$UNIT")
  eq "unit syntax checked by grep (systemd-analyze absent)" "" "$bad"
fi
check "sysusers entry creates the sluice user" \
  grep -qE '^u sluice ' "$D/sluice.sysusers"

# --- runit ----------------------------------------------------------------
for f in "$D/runit/sluice/run" "$D/runit/sluice/log/run"; do
  n=${f#"$D/"}
  check "$n: sh -n" sh -n "$f"
  check "$n: executable" test -x "$f"
  check "$n: #!/bin/sh" bash -c "head -1 '$f' | grep -qx '#!/bin/sh'"
done
check "runit run execs the worker (so it gets runsv's SIGTERM)" \
  grep -q "exec /usr/local/bin/sluice work" "$D/runit/sluice/run"

# --- supervisord.conf: INI sanity -------------------------------------------
# Lines are blank, ; or # comments, [section], or key=value; no duplicate
# section or key; every program has command, stopsignal=TERM and a
# stopwaitsecs above the drain timeout; the group names real programs.
ini=$(awk '
  function err(m) { print FILENAME ":" FNR ": " m; bad = 1 }
  /^[ \t]*$/ || /^[ \t]*[;#]/ { next }
  /^\[[^]]+\][ \t]*$/ {
    sec = $0; sub(/^\[/, "", sec); sub(/\][ \t]*$/, "", sec)
    if (sec in seen) err("duplicate section " sec)
    seen[sec] = 1; order[++ns] = sec; next
  }
  /^[A-Za-z_][A-Za-z0-9_.]*[ \t]*=/ {
    if (sec == "") { err("key outside a section"); next }
    k = $0; sub(/[ \t]*=.*/, "", k); v = $0; sub(/^[^=]*=[ \t]*/, "", v)
    if ((sec SUBSEP k) in val) err("duplicate key " k " in " sec)
    val[sec, k] = v; next
  }
  { err("not an INI line: " $0) }
  END {
    if (!("supervisord" in seen)) err("no [supervisord] section")
    for (i = 1; i <= ns; i++) {
      s = order[i]
      if (s !~ /^program:/) continue
      np++
      if (val[s, "command"] !~ /^\/usr\/local\/bin\/sluice work /)
        err(s ": command is not sluice work")
      if (val[s, "stopsignal"] != "TERM") err(s ": stopsignal is not TERM")
      if (val[s, "stopwaitsecs"] + 0 <= drain)
        err(s ": stopwaitsecs not above the drain timeout")
      if (val[s, "command"] ~ /OPENAI_API_KEY|sk-/) err(s ": key on command line")
      if (val[s, "numprocs"] + 0 > 1 && val[s, "process_name"] !~ /process_num/)
        err(s ": numprocs > 1 needs process_num in process_name")
    }
    if (np < 2) err("fewer than two programs: not several on one journal")
    for (i = 1; i <= ns; i++) {
      s = order[i]
      if (s !~ /^group:/) continue
      n = split(val[s, "programs"], p, ",")
      for (j = 1; j <= n; j++)
        if (!(("program:" p[j]) in seen)) err(s ": no program " p[j])
    }
    exit bad
  }' drain="$DRAIN_S" "$D/supervisord.conf")
eq "supervisord.conf passes the INI sanity check" "" "$ini"
# ... and the check can fail.
printf '[program:x]\ncommand=/bin/true\nnot a line\n' >"$T/bad.conf"
out=$(awk '/^[ \t]*$/||/^[;#]/{next} /^\[.*\]$/{next} /^[A-Za-z_]+=/{next}
  {print "bad"}' "$T/bad.conf")
eq "the INI line rule rejects a stray line" "bad" "$out"

# --- the flags the examples pass exist in `sluice work --help` --------------
if "$SLUICE" work --help >"$T/work-help" 2>&1; then
  flags=$({
    echo "$exec_start"
    grep '^command=' "$D/supervisord.conf"
    sed -n '/sluice work/,/[^\\]$/p' "$D/runit/sluice/run"
  } | grep -o -- '--[a-z][a-z-]*' | sort -u)
  for f in $flags; do
    check "sluice work knows $f" grep -q -- "$f" "$T/work-help"
  done
else
  pass "sluice work --help not available in this build (flags not compared)"
fi

# --- the three command lines really run ------------------------------------
# Each example's worker command, with its paths moved under $T, against
# sluice-mock demanding the key from the key file: the unit serves queue
# `default` (%i), supervisord's second program `mail`, the runit script the
# queue named in its env directory. --base-url and --exit-when-idle are
# appended so each stops once its queue is done.
KEY="sk-deploy-test-$RANDOM$RANDOM"
mkdir -p "$T/state" "$T/creds" "$T/etc"
printf '%s\n' "$KEY" >"$T/creds/openai-key"
cp "$T/creds/openai-key" "$T/etc/openai-key"
chmod 0600 "$T/creds/openai-key" "$T/etc/openai-key"
relocate() { # stdin: a command line from deploy/; stdout: runnable here
  sed -e "s|/usr/local/bin/sluice|$SLUICE|g" \
    -e "s|/var/lib/sluice|$T/state|g" -e "s|/etc/sluice|$T/etc|g" \
    -e "s|%i|default|g" -e "s|%d|$T/creds|g"
}
J="$T/state/sluice.db"
jobs_done() { # queue -> "succeeded/total"
  sqlite3 -cmd ".timeout 10000" "$J" "SELECT sum(state = 'succeeded') || '/' ||
    count(*) FROM jobs WHERE queue = '$1'"
}
queue_done() { [ "$(jobs_done "$1")" = "$2" ]; }
if start_mock --require-key "$KEY"; then
  "$SLUICE" init --journal "$J" >/dev/null
  for q in default default default mail mail other; do
    "$SLUICE" enqueue --journal "$J" -q "$q" \
      '{"model":"gpt-4o-mini","input":"deploy"}' >/dev/null
  done
  # The unit and supervisord stop their workers with SIGTERM: do the same
  # once the queue is done (--exit-when-idle would wait for every queue).
  extra="--base-url $MOCK_URL --poll 100ms"
  serve_then_term() { # name queue expected-done log; cmd in "${cmd[@]}"
    local pid rc i
    # not under timeout(1): it would send the worker a second SIGTERM
    "${cmd[@]}" $extra 2>"$4" &
    pid=$!
    PIDS+=("$pid")
    if wait_for 30 queue_done "$2" "$3"; then
      pass "$1 serves queue $2"
    else
      fail "$1 serves queue $2" "$(jobs_done "$2") done; $(tail -3 "$4")"
    fi
    kill -TERM "$pid"
    for i in $(seq 1 600); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null # still there after 60 s: fail below
    wait "$pid"
    rc=$?
    eq "$1 drains on SIGTERM and exits 0" 0 $rc
  }

  read -ra cmd <<<"$(echo "$exec_start" | sed 's/^ExecStart=//' | relocate)"
  serve_then_term "the unit's ExecStart" default 3/3 "$T/unit.log"
  eq "... and only queue default (%i)" "0/2 0/1" \
    "$(jobs_done mail) $(jobs_done other)"

  read -ra cmd <<<"$(sed -n 's/^command=//p' "$D/supervisord.conf" |
    grep -- '--queue mail' | relocate)"
  serve_then_term "supervisord's sluice-mail command" mail 2/2 \
    "$T/supervisord.log"
  eq "... and only queue mail" "0/1" "$(jobs_done other)"

  extra="$extra --exit-when-idle"
  # runit: a stand-in chpst applies -e ENVDIR (one variable per file) and
  # ignores -u (the test is not root); the script's own logic runs as is.
  mkdir -p "$T/sv/sluice-other/env" "$T/fakebin"
  relocate <"$D/runit/sluice/run" |
    sed "s|--drain-timeout 30s|& $extra|" >"$T/sv/sluice-other/run"
  echo other >"$T/sv/sluice-other/env/QUEUE"
  cat >"$T/fakebin/chpst" <<'EOF'
#!/bin/sh
while [ $# -gt 0 ]; do
  case "$1" in
  -u) shift 2 ;;
  -e) for f in "$2"/*; do [ -f "$f" ] && export "$(basename "$f")=$(head -1 "$f")"; done
      shift 2 ;;
  *) break ;;
  esac
done
exec "$@"
EOF
  chmod 0755 "$T/fakebin/chpst" "$T/sv/sluice-other/run"
  (cd "$T/sv/sluice-other" && PATH="$T/fakebin:$PATH" timeout 60 ./run \
    >"$T/runit.log" 2>&1)
  eq "the runit run script runs and exits 0" 0 $?
  eq "... it served the queue named in env/QUEUE" "1/1" "$(jobs_done other)"

  if grep -qF "$KEY" "$T"/unit.log "$T"/supervisord.log "$T"/runit.log; then
    fail "the API key appears in no worker log"
  else
    pass "the API key appears in no worker log"
  fi
  stop_mock
else
  fail "sluice-mock starts"
fi

finish
