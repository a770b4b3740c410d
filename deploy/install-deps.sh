#!/bin/sh
# Install the Debian packages sluice needs to build, test, bench and demo,
# skipping those already installed. Static linking (pkg-config --static
# sqlite3) needs zlib1g-dev: tests/integration/deps.sh checks the list.
# postgresql and libpq-dev: the PostgreSQL journal (issue 15); the tests
# start throwaway clusters with its initdb and pg_ctl (tests/lib/pglib.sh).
# Runs apt-get update once. Root or sudo.
set -eu
PKGS="build-essential pkg-config libsqlite3-dev sqlite3 libuv1-dev
libcurl4-openssl-dev libcjson-dev libcmocka-dev libmicrohttpd-dev
libsystemd-dev libinih-dev nghttp2-proxy wrk openssl procps valgrind
clang libclang-rt-14-dev curl groff-base man-db zlib1g-dev
postgresql libpq-dev chromium chromium-driver python3-selenium"

missing=""
for p in $PKGS; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
    missing="$missing $p"
  fi
done
[ -z "$missing" ] && exit 0

echo "install-deps: installing:$missing" >&2
if [ "$(id -u)" -eq 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1; then
  SUDO="sudo"
else
  echo "install-deps: need root or sudo to install:$missing" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
