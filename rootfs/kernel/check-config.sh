#!/usr/bin/env bash
# Fails when an option hvc.config asks for did not survive olddefconfig (a missing dependency).
# Usage: check-config.sh FRAGMENT DOTCONFIG
set -euo pipefail
frag=$1 config=$2 bad=0
while IFS= read -r line; do
  case "$line" in ''|'#'*) continue ;; esac
  opt=${line%%=*} want=${line#*=}
  if [ "$want" = n ]; then
    grep -q "^$opt=" "$config" && { echo "check-config: $opt should be off" >&2; bad=1; }
  else
    grep -qx "$opt=$want" "$config" || { echo "check-config: $opt=$want missing (got: $(grep "^$opt=\|# $opt " "$config" || echo unset))" >&2; bad=1; }
  fi
done < "$frag"
exit $bad
