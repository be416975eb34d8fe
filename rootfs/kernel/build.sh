#!/usr/bin/env bash
# Builds the guest kernel from Debian's linux-source-6.1 and hvc.config, cached outside the
# work tree under $HVC_CACHE (default /var/cache/hvc) keyed by the hash of every input.
# Usage: build.sh OUT_VMLINUX
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build.sh OUT_VMLINUX}
cache=${HVC_CACHE:-/var/cache/hvc}
tarball=/usr/src/linux-source-6.1.tar.xz
[ -f "$tarball" ] || { echo "build.sh: $tarball missing: apt-get install linux-source-6.1" >&2; exit 1; }
srcver=$(dpkg-query -W -f='${Version}' linux-source-6.1)
key=$( { echo "$srcver"; cat "$here/hvc.config" "$here/build.sh"; } | sha256sum | cut -c1-16)
dir=$cache/kernel/$key
if [ ! -f "$dir/vmlinux" ]; then
  echo "guest kernel: building (linux-source $srcver, key $key); about 11 minutes on 2 cores"
  mkdir -p "$cache/kernel"
  work=$(mktemp -d "$cache/kernel/build.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  tar -C "$work" -xf "$tarball"
  src=$(echo "$work"/linux-source-6.1)
  make -C "$src" -s allnoconfig
  "$src/scripts/kconfig/merge_config.sh" -m -O "$src" "$src/.config" "$here/hvc.config" >/dev/null
  make -C "$src" -s olddefconfig
  "$here/check-config.sh" "$here/hvc.config" "$src/.config"
  make -C "$src" -s -j"$(nproc)" vmlinux
  mkdir -p "$dir.tmp"
  strip --strip-debug -o "$dir.tmp/vmlinux" "$src/vmlinux"
  cp "$src/.config" "$dir.tmp/config"
  make -C "$src" -s kernelrelease > "$dir.tmp/release"
  rm -rf "$dir"; mv "$dir.tmp" "$dir"
else
  echo "guest kernel: cached ($dir)"
fi
mkdir -p "$(dirname "$out")"
cp "$dir/vmlinux" "$out.tmp" && mv "$out.tmp" "$out"
cp "$dir/release" "$(dirname "$out")/kernel-release"
