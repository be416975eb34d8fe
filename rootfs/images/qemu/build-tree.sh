#!/usr/bin/env bash
# A root filesystem tree for a container that runs its own VM (`hvc run --nested`): busybox,
# this host's qemu-system-x86_64 with the libraries it loads and the microvm firmware, and hvc's
# guest kernel at /l2/vmlinux (its initramfs is the caller's to add).
# Usage: build-tree.sh TREE ASSETS_DIR
set -euo pipefail
tree=${1:?usage: build-tree.sh TREE ASSETS_DIR} assets=${2:?usage: build-tree.sh TREE ASSETS_DIR}
mkdir -p "$tree/bin" "$tree/proc" "$tree/sys" "$tree/dev" "$tree/tmp" "$tree/l2" "$tree/usr/share/qemu"
cp /bin/busybox "$tree/bin/busybox"
ln -sf busybox "$tree/bin/sh"
ln -sf busybox "$tree/bin/true"
cp /usr/bin/qemu-system-x86_64 "$tree/bin/"
for lib in $(ldd /usr/bin/qemu-system-x86_64 | grep -o '/[^ ]*'); do cp -L --parents "$lib" "$tree/"; done
for f in qboot.rom bios-microvm.bin pvh.bin linuxboot_dma.bin kvmvapic.bin; do cp -L "/usr/share/qemu/$f" "$tree/usr/share/qemu/"; done
cp "$assets/vmlinux" "$tree/l2/vmlinux"
