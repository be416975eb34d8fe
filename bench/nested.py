#!/usr/bin/env python3
"""Nesting (`hvc run --nested`): a second-level VM's boot and a small workload at L1 and L2, as
a Markdown section on stdout.

One image holds Debian's QEMU (the host package's binary, its libraries and the microvm
firmware), busybox, hvc's guest kernel and two initramfs for the second-level (L2) guest: one
whose /init prints a marker and reboots, one that runs the workload first. Every figure is a
median of wall times of `hvc run --rm` (templated), and a phase is a difference of medians:
  - L1 start: `--nested IMAGE true`, beside a plain (non-nested) start of the same image;
  - L1 workload: `--nested IMAGE sh -c LOOP` − L1 start;
  - L2 boot: `--nested IMAGE qemu-system-x86_64 -accel kvm ... (marker /init)` − L1 start:
    QEMU's start, the L2 kernel's boot to /init, and its exit;
  - L2 workload: the same with the workload /init − L2 boot.

Usage: nested.py --hvc PATH --tmp DIR [--runs N]; hvc works in the HVC_ROOT and HVC_ASSETS its
environment names. The image is removed at the end.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

import bench

IMAGE = "hvc-bench-nested:1"
MARKER = "hvc-bench-l2-up"
# About a second of shell arithmetic at L1 under TCG.
LOOP = "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done"
QEMU = ["qemu-system-x86_64", "-L", "/usr/share/qemu", "-M", "microvm,x-option-roms=off,isa-serial=on,rtc=on,acpi=off",
        "-accel", "kvm", "-cpu", "host", "-m", "128", "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
        "-serial", "stdio", "-kernel", "/l2/vmlinux", "-append", "console=ttyS0 quiet reboot=t panic=-1"]


def build_image(hvc, tmp):
    tree = os.path.join(tmp, "nested-tree")
    here = os.path.dirname(os.path.abspath(__file__))
    subprocess.run([os.path.join(here, "..", "rootfs", "images", "qemu", "build-tree.sh"), tree, os.environ["HVC_ASSETS"]],
                   check=True)
    bench.make_initramfs(os.path.join(tree, "l2/boot.cpio"), "/bin/busybox", MARKER)
    bench.make_initramfs(os.path.join(tree, "l2/work.cpio"), "/bin/busybox", MARKER, work=LOOP)
    subprocess.run([hvc, "import", "--cmd", "sh", "--env", "PATH=/bin", tree, IMAGE], check=True,
                   stdout=subprocess.DEVNULL)


def wall(argv, expect=None):
    start = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    seconds = time.monotonic() - start
    if done.returncode != 0 or (expect and expect not in done.stdout):
        raise RuntimeError(f"{' '.join(argv[:6])}... exited {done.returncode}: {done.stderr[-400:]}")
    return seconds * 1000.0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--hvc", required=True)
    p.add_argument("--tmp", required=True)
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args()
    build_image(args.hvc, args.tmp)
    run = [args.hvc, "run", "--rm", "--network", "none", "--memory", "1g"]
    cases = {
        "plain": run + [IMAGE, "true"],
        "l1": run + ["--nested", IMAGE, "true"],
        "l1-work": run + ["--nested", IMAGE, "sh", "-c", LOOP],
        "l2": run + ["--nested", IMAGE] + QEMU + ["-initrd", "/l2/boot.cpio"],
        "l2-work": run + ["--nested", IMAGE] + QEMU + ["-initrd", "/l2/work.cpio"],
    }
    samples = {key: [] for key in cases}
    try:
        for key, argv in cases.items():  # warm-up: makes the nested and the plain template
            wall(argv, MARKER if key.startswith("l2") else None)
        for round_no in range(args.runs):
            for key, argv in cases.items():
                samples[key].append(wall(argv, MARKER if key.startswith("l2") else None))
            print(f"nested: run {round_no + 1}/{args.runs}", file=sys.stderr, flush=True)
    finally:
        subprocess.run([args.hvc, "rmi", IMAGE], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    m = {key: statistics.median(values) for key, values in samples.items()}
    rows = [
        ("templated start, plain (`run --rm IMAGE true`)", m["plain"]),
        ("templated start, nested (`run --rm --nested IMAGE true`): L1 start", m["l1"]),
        (f"L1 workload (`{LOOP}`): nested run − L1 start", m["l1-work"] - m["l1"]),
        ("L2 boot: QEMU `-accel kvm` in the container, hvc's kernel to /init and exit − L1 start", m["l2"] - m["l1"]),
        ("L2 workload (the same loop as L2's /init) − L2 boot", m["l2-work"] - m["l2"]),
    ]
    out = ["#### Nesting (`hvc run --nested`, bench/nested.py)", "",
           f"{args.runs} runs each after a warm-up, round-robin; medians of wall times, phases as differences of medians.", "",
           "| What | median (ms) |", "| --- | ---: |"]
    out += [f"| {label} | {value:.0f} |" for label, value in rows]
    out += ["", f"L2 ÷ L1 for the workload: **{(m['l2-work'] - m['l2']) / max(1.0, m['l1-work'] - m['l1']):.2f}x**; "
            f"nested ÷ plain templated start: **{m['l1'] / m['plain']:.2f}x**.", ""]
    sys.stdout.write("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
