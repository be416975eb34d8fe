#!/usr/bin/env bash
# The system calls QEMU makes in hvc's VMs: runs a mixed workload (cold boots, a template's
# capture and clones, a pool, shared folders, networking, exec, stop, kill) with a private store
# under `strace -f`, and prints, one per line, every call made by a QEMU process (after its
# execve) or its threads. The allow list in vmm.json is this census, grouped with reasons.
#
# Usage: Specs/seccomp/census.sh PATH_TO_HVC [OUTPUT_TRACE]
# Env:   HVC_ASSETS  guest kernel and initramfs (default: build/share/hvc in this repo)
set -euo pipefail

die() { echo "census: error: $*" >&2; exit 1; }
[ $# -ge 1 ] || die "usage: Specs/seccomp/census.sh PATH_TO_HVC [OUTPUT_TRACE]"
hvc=$(realpath "$1")
[ -x "$hvc" ] || die "$1 is not an executable hvc"
command -v strace >/dev/null || die "strace is missing: apt-get install strace"
repo=$(cd "$(dirname "$0")/../.." && pwd)
export HVC_ASSETS=${HVC_ASSETS:-$repo/build/share/hvc}

work=$(mktemp -d /tmp/hvc-census.XXXXXX)
export HVC_ROOT=$work/root HVC_RUN_ROOT=$work/run
trace=${2:-$work/trace}
cleanup() {
    "$hvc" rm -f $("$hvc" ps -a -q 2>/dev/null) >/dev/null 2>&1 || true
    "$hvc" pool set busybox 0 >/dev/null 2>&1 || true
    "$hvc" template rm --all >/dev/null 2>&1 || true
    "$hvc" network rm bridge >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

"$repo/rootfs/images/busybox/build.sh" "$hvc" >/dev/null
mkdir -p "$work/share"

# Everything runs under one strace, which returns once every traced process (keepers and pool
# members included) has exited: the workload removes them at its end.
cat > "$work/workload.sh" <<EOF
set -x
"$hvc" run --rm --no-template busybox sh -c 'echo cold; ping -c 1 -W 2 \$(ip route | awk "/default/ {print \\\$3}") >/dev/null; true'
"$hvc" run --rm busybox echo captured-then-cloned
"$hvc" run --rm --network none busybox echo clone-without-network
"$hvc" run --rm -v $work/share:/data busybox sh -c 'echo a > /data/f; cat /data/f; mkdir /data/d; mv /data/f /data/d/g; chmod 600 /data/d/g; ln -s g /data/d/l; ls -la /data/d; stat /data/d/g; rm -r /data/d; dd if=/dev/zero of=/data/big bs=1M count=8 2>/dev/null; sync; rm /data/big'
"$hvc" run --rm -v census-volume:/v busybox sh -c 'echo v > /v/x; cat /v/x'
"$hvc" run -d --name census-c --memory 128m busybox sh -c 'trap "exit 0" TERM; while :; do sleep 1; done'
"$hvc" exec census-c sh -c 'echo exec; cat /proc/meminfo >/dev/null'
"$hvc" exec -t census-c true </dev/null || true
"$hvc" logs census-c
"$hvc" stop -t 5 census-c
"$hvc" rm census-c
"$hvc" run -d --name census-k busybox sleep 100
"$hvc" kill census-k
"$hvc" rm -f census-k
"$hvc" pool set busybox 1
sleep 5
"$hvc" run --rm busybox echo pooled
"$hvc" pool set busybox 0
"$hvc" run --rm --memory 96m busybox sh -c 'dd if=/dev/zero of=/dev/null bs=80M count=1 2>/dev/null; echo oom=\$?'
"$hvc" run --rm --cpus 2 busybox sh -c 'echo two cpus; nproc'
"$hvc" volume rm census-volume
"$hvc" template rm --all
"$hvc" network rm bridge
EOF
strace -f -qq -s 64 --pidns-translation -o "$trace" bash "$work/workload.sh" >&2

# QEMU's processes: a pid whose execve of qemu-system succeeded, and the threads and children
# it cloned; their calls after that execve.
python3 - "$trace" <<'PY'
import re, sys
call = re.compile(r"^(\d+)\s+(?:<\.\.\. (\w+) resumed>|(\w+)\()")
# QEMU runs in a PID namespace of its own: the host's pid of a thread it clones is in the comment
# --pidns-translation adds.
result = re.compile(r"\)\s+=\s+\d+ /\* (\d+) in strace's PID NS \*/")
lines = [(m.group(1), m.group(2) or m.group(3), bool(m.group(2)), line)
         for line in open(sys.argv[1], errors="replace") for m in [call.match(line)] if m]
# First the processes: QEMU's pids (from their execve) and every thread or child they cloned,
# to a fixed point (a thread's first calls can come before its creator's clone returns).
qemu, pending = {}, set()
for number, (pid, name, resumed, line) in enumerate(lines):
    if name == "execve" and not resumed and "qemu-system" in line:
        if line.rstrip().endswith("<unfinished ...>"):
            pending.add(pid)
        elif "= 0" in line:
            qemu[pid] = number
    elif name == "execve" and resumed and pid in pending:
        pending.discard(pid)
        if "= 0" in line:
            qemu[pid] = number
if not qemu:
    sys.exit("census: no QEMU process was traced")
changed = True
while changed:
    changed = False
    for pid, name, resumed, line in lines:
        if pid in qemu and name in ("clone", "clone3", "fork", "vfork"):
            r = result.search(line)
            if r and r.group(1) not in qemu:
                qemu[r.group(1)] = -1
                changed = True
calls = {name for number, (pid, name, _, _) in enumerate(lines) if pid in qemu and number > qemu[pid]}
print("\n".join(sorted(calls)))
PY
