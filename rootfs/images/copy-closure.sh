#!/usr/bin/env bash
# Copies host files into a root filesystem tree with every shared library they load. A file
# goes to the same path in the tree, or to TREEPATH when given as FILE=TREEPATH; its libraries go
# to their host paths with the merged-/usr directories resolved (/lib/x → /usr/lib/x), so the
# tree wants /lib, /lib64, /bin and /sbin as links into /usr, as this host has them.
# Usage: copy-closure.sh TREE FILE[=TREEPATH]...
set -euo pipefail
tree=${1:?usage: copy-closure.sh TREE FILE[=TREEPATH]...}
shift
canonical() { echo "$(readlink -f "$(dirname "$1")")/$(basename "$1")"; }
place() {  # host file, path in the tree
  mkdir -p "$tree$(dirname "$2")"
  cp -L "$1" "$tree$2"
}
for spec in "$@"; do
  file=${spec%%=*} target=${spec#*=}
  [ "$spec" = "$file" ] && target=$(canonical "$file")
  place "$file" "$target"
  # A static file has no libraries: ldd says so and fails.
  for lib in $({ ldd "$file" 2>/dev/null || true; } | grep -o '/[^ ]*'); do
    at=$(canonical "$lib")
    [ -e "$tree$at" ] || place "$lib" "$at"
  done
done
