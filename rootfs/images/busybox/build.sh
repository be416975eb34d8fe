#!/usr/bin/env bash
# Makes the default `busybox` image's root filesystem from Debian's busybox-static, with no
# network, and imports it into hvc's image store.
# Usage: build.sh HVC_BINARY [hvc global options...]
set -euo pipefail
hvc=${1:?usage: build.sh HVC [options]}
shift
busybox=/bin/busybox
[ -x "$busybox" ] && file -L "$busybox" | grep -q 'statically linked' || {
  echo "busybox image: $busybox is not the static busybox: apt-get install busybox-static" >&2; exit 1; }
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
mkdir -p "$tree"/{bin,sbin,usr/bin,usr/sbin,etc,root,tmp,var,home,proc,sys,dev,run}
chmod 1777 "$tree/tmp"
chmod 700 "$tree/root"
cp "$busybox" "$tree/bin/busybox"
for applet in $("$busybox" --list-full); do
  [ -e "$tree/$applet" ] || ln -s /bin/busybox "$tree/$applet"
done
cat > "$tree/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat > "$tree/etc/group" <<'GROUP'
root:x:0:
daemon:x:1:
nogroup:x:65534:
GROUP
"$hvc" import "$@" --cmd sh --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$tree" busybox:latest
