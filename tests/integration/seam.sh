#!/usr/bin/env bash
# The storage seam holds (docs/internals/storage.md): every sqlite3_* call
# and every SQL statement is under lib/sqlite/; lib/ above it, the worker,
# the CLI and the dashboard name no engine; no public header has an SQLite
# type or a PRAGMA; the worker wakes through the journal, never the WAL.
. "$(dirname "$0")/../lib/testlib.sh"
cd "$SLUICE_ROOT" || exit 1

# C sources and headers of a tree, comments left in (a comment may name
# SQLite; code may not), so look only at code tokens.
code_hits() { # PATTERN FILES...: lines that match outside /* */ comments
  local pat=$1
  shift
  [ $# -gt 0 ] || return 0
  awk -v pat="$pat" '
    FNR == 1 { inc = 0 }
    { line = $0; out = ""
      while (length(line)) {
        if (inc) { e = index(line, "*/"); if (!e) { line = ""; break }
                   line = substr(line, e + 2); inc = 0 }
        else { s = index(line, "/*"); if (!s) { out = out line; break }
               out = out substr(line, 1, s - 1); line = substr(line, s + 2); inc = 1 }
      }
      if (out ~ pat) print FILENAME ":" FNR ": " $0 }' "$@"
}

above=$(ls lib/*.c lib/*.h 2>/dev/null)
eq "lib/ above the seam calls no sqlite3_ function" "" \
  "$(code_hits 'sqlite3' $above)"
eq "lib/ above the seam holds no SQL" "" \
  "$(code_hits '"(SELECT|INSERT|UPDATE|DELETE|PRAGMA|BEGIN) ' $above)"
eq "the only backend sources lie under lib/<backend>/" "" \
  "$(grep -l 'sqlite3_' lib/*/*.c | grep -v '^lib/sqlite/')"
eq "libpq is called only under lib/pg/" "" \
  "$(code_hits 'PQ[a-z]+[A-Za-z]*\\(|libpq-fe' $above lib/sqlite/*.c lib/sqlite/*.h)"
app=$(ls worker/*.c worker/*.h worker/*/*.c worker/*/*.h cli/*.c cli/*.h \
  web/*.c web/*.h 2>/dev/null)
eq "worker, CLI and dashboard call no sqlite3_ function" "" \
  "$(code_hits 'sqlite3' $app)"
eq "worker, CLI and dashboard call no libpq function" "" \
  "$(code_hits 'PQ[a-z]+[A-Za-z]*\\(|libpq-fe' $app)"
eq "public headers: no SQLite type, no PRAGMA in code" "" \
  "$(code_hits 'sqlite3|PRAGMA' include/*.h)"
eq "sluice.h stands without the worker's header" "" \
  "$(grep -n 'include "sluice_worker.h"' include/sluice.h)"
eq "the worker never names the WAL" "" \
  "$(code_hits '-wal|uv_fs_event' $app)"
eq "every public journal function has an X(...) row or is built above" "" \
  "$(for f in $(grep -ho 'int sl_[a-z_]*(struct sl_journal \*j' include/*.h |
        sed 's/int sl_\([a-z_]*\)(.*/\1/'); do
       grep -q "X($f," lib/backend.h || grep -q "^int sl_$f(" lib/*.c ||
         echo "$f"
     done)"
finish
