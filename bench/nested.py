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
Then what nesting support costs VMs that do not nest: cold (`--no-template`) and templated starts
of busybox with the guest kernel as shipped against one built without rootfs/kernel/nesting.config
(`HVC_KERNEL_NESTING=0 rootfs/kernel/build.sh`, cached like the shipped one), alternating, each
kernel with a store of its own so that neither sweeps the other's template.

Usage: nested.py --hvc PATH --tmp DIR [--runs N]; hvc works in the HVC_ROOT and HVC_ASSETS its
environment names. The image is removed at the end.
"""
import argparse
import os
import shutil
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


def wall(argv, expect=None, env=None):
    start = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env)
    seconds = time.monotonic() - start
    if done.returncode != 0 or (expect and expect not in done.stdout):
        raise RuntimeError(f"{' '.join(argv[:6])}... exited {done.returncode}: {done.stderr[-400:]}")
    return seconds * 1000.0


def without_nesting(hvc, tmp):
    """An environment whose assets hold the kernel built without nesting.config and whose store
    (its own, under the benchmark's directory, which run.sh clears of processes and files) holds
    the busybox image."""
    here = os.path.dirname(os.path.abspath(__file__))
    assets = os.path.join(tmp, "assets-without-nesting")
    os.makedirs(os.path.join(assets, "seccomp"), exist_ok=True)
    subprocess.run([os.path.join(here, "..", "rootfs", "kernel", "build.sh"), os.path.join(assets, "vmlinux")],
                   check=True, stdout=sys.stderr, env=dict(os.environ, HVC_KERNEL_NESTING="0"))
    for name in ("initramfs.cpio", "seccomp/vmm.json"):
        shutil.copyfile(os.path.join(os.environ["HVC_ASSETS"], name), os.path.join(assets, name))
    env = dict(os.environ, HVC_ASSETS=assets, HVC_ROOT=os.path.join(tmp, "root-without-nesting"))
    subprocess.run([os.path.join(here, "..", "rootfs", "images", "busybox", "build.sh"), hvc], check=True,
                   stdout=subprocess.DEVNULL, env=env)
    return env


def nesting_cost(hvc, tmp, runs):
    """Medians of cold and templated busybox starts, (shipped, without nesting.config)."""
    shipped, baseline = dict(os.environ), without_nesting(hvc, tmp)
    cases = {"cold": [hvc, "run", "--rm", "--network", "none", "--no-template", "busybox", "true"],
             "templated": [hvc, "run", "--rm", "--network", "none", "busybox", "true"]}
    samples = {(case, kernel): [] for case in cases for kernel in ("shipped", "baseline")}
    for round_no in range(runs + 1):  # the first round makes each store's template
        for case, argv in cases.items():
            kernels = (("shipped", shipped), ("baseline", baseline))
            for kernel, env in (kernels if round_no % 2 else kernels[::-1]):  # neither always goes first
                ms = wall(argv, env=env)
                if round_no:
                    samples[(case, kernel)].append(ms)
    return {key: statistics.median(values) for key, values in samples.items()}


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
    cost = nesting_cost(args.hvc, args.tmp, 2 * args.runs)
    m = {key: statistics.median(values) for key, values in samples.items()}
    rows = [
        ("templated start, plain (`run --rm IMAGE true`)", m["plain"]),
        ("templated start, nested (`run --rm --nested IMAGE true`): L1 start", m["l1"]),
        (f"L1 workload (`{LOOP}`): nested run − L1 start", m["l1-work"] - m["l1"]),
        ("L2 boot: QEMU `-accel kvm` in the container, hvc's kernel to /init and exit − L1 start", m["l2"] - m["l1"]),
        ("L2 workload (the same loop as L2's /init) − L2 boot", m["l2-work"] - m["l2"]),
    ]
    out = ["### Nesting (`hvc run --nested`, bench/nested.py)", "",
           f"{args.runs} runs each after a warm-up, round-robin; medians of wall times, phases as differences of medians.", "",
           "| What | median (ms) |", "| --- | ---: |"]
    out += [f"| {label} | {value:.0f} |" for label, value in rows]
    out += ["", f"L2 ÷ L1 for the workload: **{(m['l2-work'] - m['l2']) / max(1.0, m['l1-work'] - m['l1']):.2f}x**; "
            f"nested ÷ plain templated start: **{m['l1'] / m['plain']:.2f}x**.", "",
            "What nesting support (rootfs/kernel/nesting.config: KVM, and TUN, bridge, veth, nftables and tc for "
            "the networks of a container's own VMs) costs containers that do not nest: busybox starts with the "
            f"shipped kernel against one built without it, alternating, {2 * args.runs} runs each.", "",
            "| Start | shipped kernel (ms) | without nesting.config (ms) | ratio |", "| --- | ---: | ---: | ---: |"]
    for case in ("cold", "templated"):
        shipped, baseline = cost[(case, "shipped")], cost[(case, "baseline")]
        out.append(f"| {case} (`run --rm{' --no-template' if case == 'cold' else ''} busybox true`) | {shipped:.0f} | {baseline:.0f} | {shipped / baseline:.3f}x |")
    out.append("")
    sys.stdout.write("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
