#!/usr/bin/env bash
# Builds the guest kernel from Debian's linux-source-6.1, hvc.config and nesting.config, cached
# outside the work tree under $HVC_CACHE (default /var/cache/hvc) keyed by the hash of every
# input. HVC_KERNEL_NESTING=0 leaves nesting.config out (the benchmark's baseline).
# Usage: build.sh OUT_VMLINUX
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build.sh OUT_VMLINUX}
cache=${HVC_CACHE:-/var/cache/hvc}
tarball=/usr/src/linux-source-6.1.tar.xz
[ -f "$tarball" ] || { echo "build.sh: $tarball missing: apt-get install linux-source-6.1" >&2; exit 1; }
srcver=$(dpkg-query -W -f='${Version}' linux-source-6.1)
fragments=("$here/hvc.config")
[ "${HVC_KERNEL_NESTING:-1}" = 0 ] || fragments+=("$here/nesting.config")
key=$( { echo "$srcver"; cat "${fragments[@]}" "$here/build.sh"; } | sha256sum | cut -c1-16)
dir=$cache/kernel/$key
if [ ! -f "$dir/vmlinux" ]; then
  echo "guest kernel: building (linux-source $srcver, key $key); about 11 minutes on 2 cores"
  mkdir -p "$cache/kernel"
  work=$(mktemp -d "$cache/kernel/build.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  tar -C "$work" -xf "$tarball"
  src=$(echo "$work"/linux-source-6.1)
  make -C "$src" -s allnoconfig
  "$src/scripts/kconfig/merge_config.sh" -m -O "$src" "$src/.config" "${fragments[@]}" >/dev/null
  make -C "$src" -s olddefconfig
  for fragment in "${fragments[@]}"; do "$here/check-config.sh" "$fragment" "$src/.config"; done
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
