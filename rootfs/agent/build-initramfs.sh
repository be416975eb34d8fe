#!/usr/bin/env bash
# Packs the guest initramfs: /init (pre-init) and /sbin/hvc-agent, uncompressed newc cpio.
# Usage: build-initramfs.sh AGENT_BINARY OUT_CPIO
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
agent=${1:?usage: build-initramfs.sh AGENT OUT}
out=${2:?usage: build-initramfs.sh AGENT OUT}
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{proc,sys,dev,run,sbin,sysroot}
mknod -m 600 "$stage/dev/console" c 5 1
gcc -static -Os -s -o "$stage/init" "$here/preinit.c"
strip -o "$stage/sbin/hvc-agent" "$agent"
mkdir -p "$(dirname "$out")"
(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc --owner 0:0 --reproducible) > "$out.tmp"
mv "$out.tmp" "$out"
