#!/usr/bin/env bash
# The worker over TLS and HTTP/2, for real: nghttpx with a certificate made
# now, in front of sluice-mock. Requests multiplex on one connection;
# certificate verification is on unless told otherwise.
. "$(dirname "$0")/../lib/testlib.sh"
NGHTTPX=$(command -v nghttpx || echo /usr/sbin/nghttpx)

start_mock --log "$T/mock.log"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$T/key.pem" -out "$T/cert.pem" -days 2 -subj /CN=localhost \
  -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" >/dev/null 2>&1
check "made a self-signed certificate" test -s "$T/cert.pem"

port=
for try in $(seq 1 20); do
  p=$((20000 + RANDOM % 40000))
  "$NGHTTPX" --conf=/dev/null "-f127.0.0.1,$p" "-b127.0.0.1,$MOCK_PORT" \
    --single-process -n1 --no-ocsp --errorlog-file="$T/nghttpx.err" \
    --accesslog-file="$T/access.log" \
    --accesslog-format='$remote_port $alpn $status' \
    "$T/key.pem" "$T/cert.pem" >/dev/null 2>&1 &
  NPID=$!
  PIDS+=("$NPID")
  # nghttpx's own word that it listens: a probe connection alone would
  # also succeed on a port another process holds (nghttpx then exits 255)
  listening() { grep -q "Listening on 127.0.0.1:$p, tls" "$T/nghttpx.err"; }
  settled() { listening || ! kill -0 "$NPID" 2>/dev/null; }
  wait_for 10 settled
  if listening && kill -0 "$NPID" 2>/dev/null; then
    port=$p
    break
  fi
  kill "$NPID" 2>/dev/null
  wait "$NPID" 2>/dev/null
done
check "nghttpx listens" test -n "$port"
URL="https://127.0.0.1:$port/v1"

"$SLUICE" init >/dev/null
for i in $(seq 1 200); do printf '{"model":"m","input":"h2 %d"}\n' "$i"; done |
  "$SLUICE" enqueue >/dev/null
timeout 60 "$SLUICE" work --base-url "$URL" --ca-file "$T/cert.pem" \
  --concurrency 32 --exit-when-idle 2>"$T/w1.log"
eq "200 jobs over TLS with --ca-file" 200 \
  "$(sql "SELECT count(*) FROM jobs WHERE state='succeeded'")"
# nghttpx writes its access log as streams close, maybe after the worker
# is gone: wait for the 200 lines rather than a fixed time
h2_logged() { [ "$(grep -c ' h2 200$' "$T/access.log" 2>/dev/null)" -ge 200 ]; }
wait_for 10 h2_logged
eq "every request went over HTTP/2" 0 "$(grep -vc ' h2 ' "$T/access.log")"
check "the 200 calls are in the access log" \
  test "$(grep -c ' h2 200$' "$T/access.log")" -ge 200
eq "one connection carried them all" 1 \
  "$(awk '{print $1}' "$T/access.log" | sort -u | wc -l)"
eq "TLS handshake time recorded" 0 \
  "$(sql "SELECT count(*) FROM attempts WHERE tls_ms IS NULL")"

# Verification is on by default: a self-signed certificate is refused. No
# retry can fix that: the queue's online route pauses (as for auth), the
# job keeps its attempt, and `sluice resume` lifts the pause.
"$SLUICE" enqueue -m 1 '{"model":"m","input":"untrusted"}' >/dev/null
timeout 60 "$SLUICE" work --base-url "$URL" --poll 100ms 2>"$T/w2.log" &
wpid=$!
PIDS+=($wpid)
paused() { [ "$(sql "SELECT online_paused FROM queue_limits WHERE queue = 'default'")" = 1 ]; }
check "an untrusted certificate pauses the queue's online route" wait_for 10 paused
sleep 0.5
kill -TERM $wpid; wait $wpid
eq "the job is pending, its attempt refunded" "pending|0|tls" \
  "$(sql "SELECT state, attempts, last_class FROM jobs ORDER BY id DESC LIMIT 1")"
eq "the exchange is recorded once, as tls" 1 \
  "$(sql "SELECT count(*) FROM attempts WHERE failure_class = 'tls'")"
check "the error says why" \
  grep -qi "certificate" <(sql "SELECT last_error FROM jobs ORDER BY id DESC LIMIT 1")
check "the log says what to fix and how to resume" \
  grep -q "online route paused: tls: .*sluice resume default" "$T/w2.log"
"$SLUICE" resume default >/dev/null
eq "sluice resume lifts it" 0 \
  "$(sql "SELECT online_paused FROM queue_limits WHERE queue = 'default'")"
timeout 60 "$SLUICE" work --base-url "$URL" --ca-file "$T/cert.pem" \
  --exit-when-idle 2>"$T/w2b.log"
eq "with the CA given, the held job succeeds" succeeded \
  "$(sql "SELECT state FROM jobs ORDER BY id DESC LIMIT 1")"
# --insecure turns it off (for tests only)
"$SLUICE" enqueue '{"model":"m","input":"insecure"}' >/dev/null
timeout 60 "$SLUICE" work --base-url "$URL" --insecure --exit-when-idle \
  2>"$T/w3.log"
eq "--insecure skips verification" succeeded \
  "$(sql "SELECT state FROM jobs ORDER BY id DESC LIMIT 1")"
kill "$NPID" 2>/dev/null
stop_mock
finish
