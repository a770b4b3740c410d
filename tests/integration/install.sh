#!/usr/bin/env bash
# make install into a DESTDIR from the already built tree: the files land
# where they should, pkg-config finds the library through the sysroot, a
# producer compiles and links against the installed static library (and the
# shared one), and the installed binary and producer enqueue into a journal.
. "$(dirname "$0")/../lib/testlib.sh"
ROOT="$T/root"
P="$ROOT/usr/local"

# Use the build directory the tests run on, relative to the repository when
# it is inside it (its .d files name objects that way), and the same
# sanitizer setting it was built with: a rebuild with other flags would mix
# instrumented and plain objects.
build=${SLUICE_BUILD#"$SLUICE_ROOT"/}
if [ ! -f "$SLUICE_BUILD/libsluice.a" ]; then
  fail "the build directory holds libsluice.a" "build it first"
  finish
fi
if nm "$SLUICE_BUILD/libsluice.a" 2>/dev/null | grep -q __asan_; then
  san=1
  SANFLAGS="-fsanitize=address,undefined"
else
  san=0
  SANFLAGS=""
fi

make -s -C "$SLUICE_ROOT" BUILD="$build" SAN=$san PREFIX=/usr/local \
  DESTDIR="$ROOT" install >"$T/make.log" 2>&1
rc=$?
eq "make install PREFIX=/usr/local DESTDIR=... exits 0" 0 $rc
[ $rc -eq 0 ] || sed 's/^/  make: /' "$T/make.log" | tail -20

for f in bin/sluice lib/libsluice.a lib/libsluice.so lib/libsluice.so.0 \
  include/sluice.h include/sluice_states.h include/sluice_worker.h \
  lib/pkgconfig/sluice.pc share/man/man1/sluice.1 \
  share/man/man3/libsluice.3 share/man/man5/sluice.conf.5; do
  check "installed $f" test -e "$P/$f"
done
check "bin/sluice is executable" test -x "$P/bin/sluice"
eq "libsluice.so links to the soname" "libsluice.so.0" \
  "$(readlink "$P/lib/libsluice.so")"
check "libsluice.so.0 carries soname libsluice.so.0" \
  bash -c "readelf -d '$P/lib/libsluice.so.0' | grep -q 'SONAME.*\[libsluice.so.0\]'"
check "installed header is the source header" \
  cmp -s "$SLUICE_ROOT/include/sluice.h" "$P/include/sluice.h"
check "nothing installed outside DESTDIR/usr/local" \
  bash -c "[ -z \"\$(find '$ROOT' -mindepth 1 -maxdepth 2 ! -path '$ROOT/usr' ! -path '$ROOT/usr/local')\" ]"
for m in man1/sluice.1 man3/libsluice.3 man5/sluice.conf.5; do
  name=$(basename "$m")
  out=$(MANPATH="$P/share/man" man -w "${name%.*}" "${name##*.}" 2>/dev/null |
    grep -c "^$P/share/man/$m")
  eq "man finds the installed $name" 1 "$out"
done

# Another PREFIX on the same build: the .pc names it (the build's own .pc
# was written for /usr/local).
make -s -C "$SLUICE_ROOT" BUILD="$build" SAN=$san PREFIX=/opt/sluice \
  DESTDIR="$T/root2" install >"$T/make2.log" 2>&1
eq "make install PREFIX=/opt/sluice exits 0" 0 $?
eq "the .pc of PREFIX=/opt/sluice says so" "/opt/sluice" \
  "$(PKG_CONFIG_PATH="$T/root2/opt/sluice/lib/pkgconfig" \
    pkg-config --variable=prefix sluice)"

# pkg-config through the sysroot
export PKG_CONFIG_SYSROOT_DIR="$ROOT" PKG_CONFIG_PATH="$P/lib/pkgconfig"
cflags=$(pkg-config --cflags sluice 2>"$T/pc.err")
libs=$(pkg-config --cflags --libs sluice 2>>"$T/pc.err")
eq "pkg-config --cflags --libs sluice exits 0" 0 $?
case "$libs" in
*"-I$P/include"*"-L$P/lib"*"-lsluice"*) pass "pkg-config points into DESTDIR" ;;
*) fail "pkg-config points into DESTDIR" "$libs $(cat "$T/pc.err")" ;;
esac
eq "pkg-config --modversion is SL_VERSION" \
  "$(sed -n 's/^#define SL_VERSION "\(.*\)"/\1/p' "$SLUICE_ROOT/include/sluice.h")" \
  "$(pkg-config --modversion sluice)"
static_libs=$(pkg-config --static --libs sluice)
case "$static_libs" in
*-lsqlite3*) pass "pkg-config --static adds SQLite" ;;
*) fail "pkg-config --static adds SQLite" "$static_libs" ;;
esac

# The producer: examples/producer.c when it exists, else a tiny one.
if [ -f "$SLUICE_ROOT/examples/producer.c" ]; then
  src="$SLUICE_ROOT/examples/producer.c"
else
  src="$T/producer.c"
  cat >"$src" <<'EOF'
#include <stdio.h>
#include <sluice.h>
int main(int argc, char **argv) {
  struct sl_open_options o = {0};
  struct sl_job_spec s = {0};
  struct sl_journal *j;
  int64_t id;
  int rc;
  o.path = argc > 1 ? argv[1] : "sluice.db";
  if (sl_open(&j, &o, NULL, 0) != SL_OK)
    return 1;
  s.body = "{\"model\":\"gpt-4o-mini\",\"input\":\"hi\"}";
  rc = sl_enqueue(j, &s, &id, NULL);
  if (rc == SL_OK)
    printf("%lld\n", (long long)id);
  sl_close(j);
  return rc == SL_OK ? 0 : 1;
}
EOF
fi
# Static: the installed libsluice.a, whatever .so sits beside it.
# shellcheck disable=SC2086
cc -std=c11 -Wall -Wextra -Werror $SANFLAGS $cflags -o "$T/producer-static" \
  "$src" $(echo "$static_libs" |
    sed 's/-lsluice/-Wl,-Bstatic -lsluice -Wl,-Bdynamic/') \
  >"$T/cc.log" 2>&1
rc=$?
eq "$(basename "$src") compiles and links against installed libsluice.a" 0 $rc
[ $rc -eq 0 ] || sed 's/^/  cc: /' "$T/cc.log" | head -20
check "the static producer needs no libsluice.so" \
  bash -c "! readelf -d '$T/producer-static' | grep -q 'NEEDED.*libsluice'"
check "the static producer needs no libuv or libcurl" \
  bash -c "! readelf -d '$T/producer-static' | grep -Eq 'NEEDED.*(libuv|libcurl)'"
# Shared: plain pkg-config --libs, found at run time through the soname.
# shellcheck disable=SC2086
cc -std=c11 -Wall -Wextra -Werror $SANFLAGS -o "$T/producer-shared" "$src" \
  $libs >"$T/cc2.log" 2>&1
eq "$(basename "$src") links against installed libsluice.so" 0 $?
check "the shared producer needs libsluice.so.0" \
  bash -c "readelf -d '$T/producer-shared' | grep -q 'NEEDED.*\[libsluice.so.0\]'"

# The example in libsluice(3) compiles too.
sed -n '/^\.SH EXAMPLE/,/^\.SH SEE ALSO/p' "$P/share/man/man3/libsluice.3" |
  sed -n '/^\.EX/,/^\.EE/p' | sed '1d' | sed -n '/^\.EE/q;p' |
  sed -e 's/\\e/\\/g' -e 's/\\-/-/g' -e "s/\\\\(aq/'/g" >"$T/man_example.c"
# shellcheck disable=SC2086
cc -std=c11 -Wall -Wextra -Werror $SANFLAGS -o "$T/man_example" \
  "$T/man_example.c" $libs >"$T/cc3.log" 2>&1
eq "the libsluice(3) example compiles" 0 $?

# The worker's side stands alone too: sluice_worker.h brings sluice.h.
cat >"$T/worker_side.c" <<'EOF'
#include <sluice_worker.h>
int main(void) {
  struct sl_claim_options o = {0};
  int64_t mark = 0;
  (void)o;
  return sl_journal_wake_fd(NULL) == SL_INVAL &&
                 sl_journal_changed(NULL, &mark) == SL_INVAL
             ? 0
             : 1;
}
EOF
# shellcheck disable=SC2086
cc -std=c11 -Wall -Wextra -Werror $SANFLAGS -o "$T/worker_side" \
  "$T/worker_side.c" $libs >"$T/cc4.log" 2>&1
eq "a program including only <sluice_worker.h> compiles" 0 $?
LD_LIBRARY_PATH="$P/lib" "$T/worker_side"
eq "... and runs against the installed library" 0 $?

# Run them: the installed binary creates the journal and enqueues; the
# producers write to it; sqlite3 sees every job.
J="$T/installed.db"
"$P/bin/sluice" init --journal "$J" >/dev/null
eq "installed sluice init exits 0" 0 $?
id=$("$P/bin/sluice" enqueue --journal "$J" '{"model":"m","input":"x"}')
eq "installed sluice enqueues (first id)" 1 "$id"
eq "installed sluice --version" "sluice $(pkg-config --modversion sluice)" \
  "$("$P/bin/sluice" --version | cut -d' ' -f1,2)"
"$T/producer-static" "$J" >"$T/p1.out" 2>&1
eq "static producer runs" 0 $?
before=$(sqlite3 "$J" "SELECT count(*) FROM jobs")
check "static producer enqueued jobs" test "$before" -gt 1
LD_LIBRARY_PATH="$P/lib" "$T/producer-shared" "$J" >"$T/p2.out" 2>&1
eq "shared producer runs with the installed .so" 0 $?
out=$(LD_LIBRARY_PATH="$P/lib" "$T/man_example" "$J")
eq "the libsluice(3) example enqueues" 0 $?
eq "its job is in queue mail" "mail" \
  "$(sqlite3 "$J" "SELECT queue FROM jobs WHERE id = ${out:-0}")"
"$P/bin/sluice" status --journal "$J" >/dev/null
eq "installed sluice status exits 0" 0 $?

finish
