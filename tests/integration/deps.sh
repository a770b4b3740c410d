# deps.sh: deploy/install-deps.sh installs every Debian package that the
# build, the tests and a static producer link need, so a fresh bookworm
# machine passes `make test` (the last round passed only because a
# developer's machine happened to have zlib1g-dev).
#
# For each -lNAME of `pkg-config --static --libs` over the project's
# packages, and each pkg-config module the Makefile asks for, find the file
# that provides it and the Debian package owning that file, and check that
# the package is named in install-deps.sh (or is part of build-essential).
. "$(dirname "$0")/../lib/testlib.sh"

DEPS="$SLUICE_ROOT/deploy/install-deps.sh"
listed=$(sed -n '/^PKGS="/,/"$/p' "$DEPS" | tr -d '"' | sed 's/^PKGS=//' |
  tr -s ' \n' '\n\n')
# build-essential brings libc6-dev, gcc and libgcc: their libraries are in.
essential="libc6-dev libgcc-12-dev gcc-12 libc-dev-bin"

owner() { # FILE -> the Debian package that owns it ("" when none)
  dpkg -S "$(readlink -f "$1")" 2>/dev/null | head -1 | cut -d: -f1
}

covered() { # PKG: listed, or pulled in by a listed package (clang -> clang-14)
  local p
  for p in $listed $essential; do
    [ "$p" = "$1" ] && return 0
  done
  for p in $listed; do
    dpkg-query -W -f='${Depends}' "$p" 2>/dev/null | tr ',|' '\n\n' |
      awk '{print $1}' | grep -qx "$1" && return 0
  done
  return 1
}

# The modules the Makefile builds against, and zlib for static SQLite.
modules=$(sed -n 's/^\(LIB\|WORKER\|MOCK\|TEST\|PG\)_PKGS *:= *//p' \
  "$SLUICE_ROOT/Makefile" | tr ' ' '\n' | sort -u)
check "the Makefile names its pkg-config modules" test -n "$modules"

for m in $modules zlib; do
  pc=$(pkg-config --variable=pcfiledir "$m" 2>/dev/null)/$m.pc
  if [ ! -f "$pc" ]; then
    fail "pkg-config finds $m" "no $m.pc on this machine"
    continue
  fi
  pkg=$(owner "$pc")
  if covered "$pkg"; then
    pass "install-deps.sh installs $pkg (pkg-config $m)"
  else
    fail "install-deps.sh installs $pkg (pkg-config $m)" "add $pkg to PKGS"
  fi
done

# Each library a static link of a producer pulls in: libsluice's own
# Requires.private is SQLite, whose --static libs add -lm and -lz.
libdirs=$(gcc -print-search-dirs | sed -n 's/^libraries: =//p' | tr ':' ' ')
static_libs=$(pkg-config --static --libs sqlite3)
case "$static_libs" in
*-lz*) pass "pkg-config --static sqlite3 asks for zlib (the case to cover)" ;;
*) pass "pkg-config --static sqlite3 needs no zlib on this build" ;;
esac
for flag in $static_libs; do
  case "$flag" in -l*) ;; *) continue ;; esac
  name=${flag#-l}
  file=""
  for d in $libdirs /usr/lib/x86_64-linux-gnu /usr/lib; do
    for f in "$d/lib$name.a" "$d/lib$name.so"; do
      [ -e "$f" ] && { file=$f; break 2; }
    done
  done
  if [ -z "$file" ]; then
    fail "a static producer can link $flag" "no lib$name.a or .so found"
    continue
  fi
  pkg=$(owner "$file")
  if covered "$pkg"; then
    pass "install-deps.sh installs $pkg ($flag)"
  else
    fail "install-deps.sh installs $pkg ($flag)" "add $pkg to PKGS"
  fi
done

# The commands the tests run beside the compiler.
for cmd in sqlite3 nghttpx wrk openssl curl groff valgrind clang readelf \
  chromium chromedriver; do
  path=$(command -v "$cmd" || true)
  if [ -z "$path" ]; then
    fail "$cmd is installed" "not on PATH"
    continue
  fi
  pkg=$(owner "$path")
  case "$cmd" in readelf) pkg=binutils ;; esac # via build-essential
  if covered "$pkg" || [ "$pkg" = binutils ]; then
    pass "install-deps.sh installs $pkg ($cmd)"
  else
    fail "install-deps.sh installs $pkg ($cmd)" "add $pkg to PKGS"
  fi
done
# The browser test's driver bindings (tests/browser/dashboard.py).
sel=$(/usr/bin/python3 -c 'import selenium; print(selenium.__file__)' 2>/dev/null)
pkg=$([ -n "$sel" ] && owner "$sel")
if [ -n "$pkg" ] && covered "$pkg"; then
  pass "install-deps.sh installs $pkg (selenium for python3)"
else
  fail "install-deps.sh installs python3-selenium" "add it to PKGS"
fi
finish
