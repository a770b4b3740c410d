#!/usr/bin/env bash
# man/: the three pages format without groff warnings, and stay in step with
# the code: every command and long option of `sluice` is in sluice(1), every
# function and error code of sluice.h is in libsluice(3).
. "$(dirname "$0")/../lib/testlib.sh"
M="$SLUICE_ROOT/man"
H="$SLUICE_ROOT/include/sluice.h"

for page in sluice.1 libsluice.3 sluice.conf.5; do
  if [ ! -f "$M/$page" ]; then
    fail "man/$page exists"
    continue
  fi
  warn=$(groff -man -Tutf8 -ww -z "$M/$page" 2>&1)
  eq "groff -man -ww: $page has no warnings" "" "$warn"
  check "man -l $page renders a NAME section" \
    bash -c "MANWIDTH=80 man -l '$M/$page' 2>/dev/null | grep -q '^NAME'"
done

# In man source a long option is written \-\-name.
in_page() { grep -qF -- "$(printf '%s' "$2" | sed 's/-/\\-/g')" "$M/$1"; }
in_file() { grep -qF -- "$(printf '%s' "$2" | sed 's/-/\\-/g')" "$1"; }

cmds=$("$SLUICE" --help | sed -n '/^Commands:/,/^$/p' | awk 'NR > 1 && NF { print $1 }')
check "sluice --help lists commands" test -n "$cmds"
for c in $cmds; do
  # (a hyphen in a heading is written \-: migrate\-journal)
  check "sluice(1) has a section for $c" \
    bash -c "sed 's/\\\\-/-/g' '$M/sluice.1' | grep -q '^\.SS \"sluice $c'"
  "$SLUICE" "$c" --help >"$T/help" 2>&1
  for o in $(grep -o -- '--[a-z][a-z-]*' "$T/help" | sort -u); do
    check "sluice(1) documents $c $o" in_page sluice.1 "$o"
  done
done
for v in SLUICE_JOURNAL SLUICE_CONFIG OPENAI_API_KEY OPENAI_BASE_URL; do
  check "sluice(1) documents \$$v" grep -q "^\.B $v" "$M/sluice.1"
done
# Exit codes: every value of enum sl_exit is a .TP entry of EXIT STATUS.
for code in $(sed -n 's/^ *SL_EXIT_[A-Z]* = \([0-9]*\),* *\/\*.*/\1/p' \
  "$SLUICE_ROOT/cli/cli.h"); do
  check "sluice(1) EXIT STATUS lists $code" \
    bash -c "sed -n '/^\.SH EXIT STATUS/,/^\.SH /p' '$M/sluice.1' | grep -qx '\.B $code'"
done

fns=$(sed -n 's/^[a-z].*[ *]\(sl_[a-z_]*\)(.*/\1/p' "$H" | sort -u)
check "sluice.h declares functions" test -n "$fns"
for f in $fns; do
  check "libsluice(3) covers $f" grep -q "\\b$f(" "$M/libsluice.3"
done
for e in $(sed -n 's/^ *XX(\([A-Z_]*\), -[0-9]*,.*/\1/p' "$H"); do
  check "libsluice(3) lists SL_$e" grep -q "^\.B SL_$e\$" "$M/libsluice.3"
done

# The option tables (cli/work_opts.c, and each command's) against the
# pages: each row is named in its command's section of sluice(1) (--journal
# and --help, shared by every command, anywhere in the page), each option
# that section describes is a row, and SIGHUP's section of sluice.conf(5)
# names exactly the rows that reload.
DUMP="$SLUICE_BUILD/tests/helpers/opt_dump"
"$DUMP" >"$T/table"
check "opt_dump lists the work table" grep -q '^work concurrency ' "$T/table"
for cmd in $(cut -d' ' -f1 "$T/table" | sort -u); do
  awk -v c="$cmd" '{ l = $0; gsub(/\\-/, "-", l) } l ~ "^\\.SS \"sluice " c "[ \"]" { f = 1 } f && /^\.S[SH] / && l !~ "sluice " c "[ \"]" { f = 0 } f' \
    "$M/sluice.1" >"$T/$cmd.1"
  check "sluice(1) has a section for the $cmd table" test -s "$T/$cmd.1"
  # an option's definition is the line after .TP
  awk 'p == ".TP" { print } { p = $0 }' "$T/$cmd.1" |
    sed -n 's/^\.B[IR]* \(\\-[a-zA-Z] ", " \)\{0,1\}\\-\\-\([a-z\\-]*\).*/\2/p' |
    sed 's/\\-/-/g' | sort -u >"$T/$cmd.described"
  while read -r name; do
    check "sluice(1)'s $cmd option --$name is a row of its table" \
      grep -q "^$cmd $name " "$T/table"
  done <"$T/$cmd.described"
done
while read -r cmd name ini env reload help; do
  case $name:$help in
  journal:* | journal-wait:* | help:* | *:0) # shared, or named elsewhere
    check "sluice(1) documents $cmd --$name" in_page sluice.1 "--$name" ;;
  *) check "sluice(1)'s $cmd section names --$name" in_file "$T/$cmd.1" "--$name" ;;
  esac
  if [ "$env" != - ] && [ "${env#SLUICE_}" = "$(printf '%s' "$name" | tr 'a-z-' 'A-Z_')" ]; then
    : # SLUICE_<OPTION>: the rule sluice.conf(5) states once
  elif [ "$env" != - ]; then
    check "sluice(1) documents \$$env of --$name" grep -q "^\.B $env" "$M/sluice.1"
  fi
done <"$T/table"
awk '/^\.SH RELOADING/ { f = 1; next } /^\.(SH|PP)/ { f = 0 } f' "$M/sluice.conf.5" |
  sed -n 's/^\.B \([a-z\\-]*\)$/\1/p' | sed 's/\\-/-/g' | sort >"$T/reload.5"
awk '$5 == 1 { print $2 }' "$T/table" | sort >"$T/reload.table"
eq "sluice.conf(5) RELOADING names the rows SIGHUP reloads" \
  "$(cat "$T/reload.table")" "$(cat "$T/reload.5")"

# The example of sluice.conf(5) is a file `sluice work` accepts (config
# errors stop it before --help is handled), and a bad key is refused.
sed -n '/^\.SH EXAMPLE/,/^\.SH SEE ALSO/p' "$M/sluice.conf.5" |
  sed -n '/^\.EX/,/^\.EE/p' | sed -e '1d' -e '$d' -e 's/\\-/-/g' >"$T/ex.ini"
check "sluice.conf(5) example has a [work] section" grep -qx '\[work\]' "$T/ex.ini"
"$SLUICE" work --config "$T/ex.ini" --help >/dev/null 2>"$T/err"
eq "sluice work accepts the sluice.conf(5) example" "0 " \
  "$? $(cat "$T/err")"
printf '[work]\nno-such-key = 1\n' >"$T/bad.ini"
"$SLUICE" work --config "$T/bad.ini" --help >/dev/null 2>&1
eq "... and refuses an unknown key (exit 4)" 4 $?

finish
