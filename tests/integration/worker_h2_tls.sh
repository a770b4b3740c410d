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
  if wait_for 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$p" 2>/dev/null; then
    port=$p
    break
  fi
  kill "$NPID" 2>/dev/null
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
sleep 0.5 # nghttpx writes its access log as streams close
eq "every request went over HTTP/2" 0 "$(grep -vc ' h2 ' "$T/access.log")"
check "the 200 calls are in the access log" \
  test "$(grep -c ' h2 200$' "$T/access.log")" -ge 200
eq "one connection carried them all" 1 \
  "$(awk '{print $1}' "$T/access.log" | sort -u | wc -l)"
eq "TLS handshake time recorded" 0 \
  "$(sql "SELECT count(*) FROM attempts WHERE tls_ms IS NULL")"

# Verification is on by default: a self-signed certificate is refused.
"$SLUICE" enqueue -m 1 '{"model":"m","input":"untrusted"}' >/dev/null
timeout 60 "$SLUICE" work --base-url "$URL" --exit-when-idle 2>"$T/w2.log"
eq "an untrusted certificate fails as network, unsent" "failed|network" \
  "$(sql "SELECT state, last_class FROM jobs ORDER BY id DESC LIMIT 1")"
check "the error says why" \
  grep -qi "certificate" <(sql "SELECT last_error FROM jobs ORDER BY id DESC LIMIT 1")
# --insecure turns it off (for tests only)
"$SLUICE" enqueue '{"model":"m","input":"insecure"}' >/dev/null
timeout 60 "$SLUICE" work --base-url "$URL" --insecure --exit-when-idle \
  2>"$T/w3.log"
eq "--insecure skips verification" succeeded \
  "$(sql "SELECT state FROM jobs ORDER BY id DESC LIMIT 1")"
kill "$NPID" 2>/dev/null
stop_mock
finish
