#!/usr/bin/env bash
# A root filesystem tree for a container that runs its own VM (`hvc run --nested`): busybox,
# this host's qemu-system-x86_64 with the libraries it loads and the microvm firmware, in a
# merged-/usr layout; with ASSETS_DIR, hvc's guest kernel at /l2/vmlinux (its initramfs is the
# caller's to add).
# Usage: build-tree.sh TREE [ASSETS_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tree=${1:?usage: build-tree.sh TREE [ASSETS_DIR]} assets=${2:-}
mkdir -p "$tree"/usr/{bin,sbin,lib,lib64} "$tree"/{proc,sys,dev,tmp,run} "$tree/usr/share/qemu"
for dir in bin sbin lib lib64; do ln -sfn "usr/$dir" "$tree/$dir"; done
"$here/../copy-closure.sh" "$tree" /bin/busybox /usr/bin/qemu-system-x86_64
for applet in sh true; do ln -sf busybox "$tree/usr/bin/$applet"; done
for f in qboot.rom bios-microvm.bin pvh.bin linuxboot_dma.bin kvmvapic.bin; do cp -L "/usr/share/qemu/$f" "$tree/usr/share/qemu/"; done
if [ -n "$assets" ]; then
  mkdir -p "$tree/l2"
  cp "$assets/vmlinux" "$tree/l2/vmlinux"
fi
