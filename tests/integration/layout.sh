#!/usr/bin/env bash
# layout.sh: the engine never reaches back into the command (issue 13):
# nothing under lib/, worker/ or web/ includes a header of cli/, calls the
# command's parsers (sl_cli_*, sl_cmd_*, sl_opt_*, sl_config_*) or reads an
# INI file (inih: SIGHUP reload is the command's callback), and worker/
# holds no main() and no getopt table. The checker is first shown
# a planted violation, so it cannot pass by finding nothing.
. "$(dirname "$0")/../lib/testlib.sh"
R="$SLUICE_ROOT"

# Print every offence under the directories given (relative to $1).
offences() {
  local root=$1 h f
  shift
  for h in "$root"/cli/*.h; do
    h=$(basename "$h")
    grep -rnE --include='*.[ch]' "^[[:space:]]*#[[:space:]]*include[[:space:]]*[\"<](\.\./)*(cli/)?$h[\">]" \
      "${@/#/$root/}" 2>/dev/null
  done
  grep -rnE --include='*.[ch]' '#[[:space:]]*include[[:space:]]*["<](\.\./)*cli/' \
    "${@/#/$root/}" 2>/dev/null
  grep -rnwE --include='*.[ch]' 'sl_(cli|cmd|opt|config)_[a-z_]+' \
    "${@/#/$root/}" 2>/dev/null
  grep -rnE --include='*.[ch]' '#[[:space:]]*include[[:space:]]*<ini\.h>|ini_parse' \
    "${@/#/$root/}" 2>/dev/null
  for f in $(find "${@/#/$root/}" -name '*.[ch]' 2>/dev/null); do
    case $f in "$root"/worker/*)
      grep -nHE 'getopt|struct option|^int main\(' "$f" ;;
    esac
  done
}

# The checker sees a planted include, call and getopt table.
P="$T/planted"
mkdir -p "$P/cli" "$P/lib" "$P/worker" "$P/web"
cp "$R"/cli/*.h "$P/cli/"
printf '#include "cli.h"\n' >"$P/lib/a.c"
printf '#include "../cli/render.h"\n' >"$P/web/b.c"
printf 'int f(void) { return sl_cli_parse_int(0, 0, 0, 0); }\n' >"$P/worker/c.c"
printf 'static const struct option o[] = {{0}};\n' >"$P/worker/d.c"
printf '#include <ini.h>\n' >"$P/worker/e.c"
n=$(offences "$P" lib worker web | cut -d: -f1 | sort -u | wc -l)
eq "the checker finds each planted offence" 5 "$n"

check "cli/ holds the headers it is checked against" \
  bash -c "ls '$R'/cli/cli.h '$R'/cli/cli_opt.h >/dev/null"
out=$(offences "$R" lib worker web)
eq "lib/, worker/ and web/ include nothing of cli/" "" "$out"
check "the sluice binary's main is cli/main.c" test -f "$R/cli/main.c"
check "worker/ has no main.c" test ! -e "$R/worker/main.c"

finish
