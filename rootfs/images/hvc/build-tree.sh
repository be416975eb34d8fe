#!/usr/bin/env bash
# A root filesystem tree that runs hvc itself (`hvc run --nested IMAGE hvc run ...`): hvc and its
# shim with their libraries, QEMU and its firmware, the tools hvc's networks use (iproute2,
# nftables, iptables, nsenter, the CNI plugins), mkfs.erofs and tar for images, hvc's guest
# assets, busybox, and an image store at /var/lib/hvc holding the default busybox image.
# Usage: build-tree.sh TREE ASSETS_DIR BIN_DIR   (BIN_DIR: where hvc and hvc-shim are built)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tree=${1:?usage: build-tree.sh TREE ASSETS_DIR BIN_DIR} assets=${2:?usage: build-tree.sh TREE ASSETS_DIR BIN_DIR}
bin=${3:?usage: build-tree.sh TREE ASSETS_DIR BIN_DIR}
"$here/../qemu/build-tree.sh" "$tree"
cni=$(for d in /usr/lib/cni /opt/cni/bin; do [ -x "$d/bridge" ] && echo "$d" && break; done)
[ -n "$cni" ] || { echo "hvc image: no CNI plugins: apt-get install containernetworking-plugins" >&2; exit 1; }
"$here/../copy-closure.sh" "$tree" "$bin/hvc=/usr/local/bin/hvc" "$bin/hvc-shim=/usr/local/bin/hvc-shim" \
  /usr/sbin/ip /usr/sbin/tc /usr/sbin/nft /usr/sbin/iptables /usr/bin/nsenter /usr/bin/mkfs.erofs /bin/tar \
  "$cni/bridge=/usr/lib/cni/bridge" "$cni/host-local=/usr/lib/cni/host-local" "$cni/portmap=/usr/lib/cni/portmap"
for applet in $(/bin/busybox --list); do [ -e "$tree/usr/bin/$applet" ] || ln -s busybox "$tree/usr/bin/$applet"; done
install -D -m 644 "$assets/vmlinux" "$tree/usr/local/share/hvc/vmlinux"
install -D -m 644 "$assets/initramfs.cpio" "$tree/usr/local/share/hvc/initramfs.cpio"
install -D -m 644 "$assets/seccomp/vmm.json" "$tree/usr/local/share/hvc/seccomp/vmm.json"
mkdir -p "$tree"/{etc,root,var/tmp,var/lib}
chmod 1777 "$tree/tmp" "$tree/var/tmp"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$tree/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$tree/etc/group"
"$here/../busybox/build.sh" "$bin/hvc" --root "$tree/var/lib/hvc"
