#!/usr/bin/env python3
"""Helper for bench/run.sh: makes the peers' inputs, times every run, and writes the report.

Subcommands:
  initramfs OUT BUSYBOX MARKER   write a newc cpio: /bin/busybox, /dev/console and an /init
                                 script that prints MARKER and reboots (QEMU -no-reboot exits)
  oci-config CONFIG_JSON         turn `runc spec`'s config into a non-terminal `/bin/true` run
  measure [options]              run the benchmarks round-robin, then the idle-memory figures,
                                 and print the Markdown report
"""
import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time

# ---------------------------------------------------------------------------------------------
# initramfs (newc cpio, written directly: no cpio tool and no mknod needed)


def _cpio_entry(name, mode, data=b"", rdev=(0, 0), ino=0):
    name_bytes = name.encode() + b"\0"
    fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(name_bytes), 0]
    header = b"070701" + b"".join(b"%08x" % f for f in fields)
    out = header + name_bytes
    out += b"\0" * (-len(out) % 4)
    out += data
    out += b"\0" * (-len(out) % 4)
    return out


def make_initramfs(out, busybox, marker, work=""):
    """A busybox initramfs whose /init runs `work` (a shell line, if any), prints `marker` and
    reboots (a triple fault, which makes QEMU -no-reboot exit)."""
    with open(busybox, "rb") as f:
        busybox_bytes = f.read()
    init = ("#!/bin/busybox sh\n"
            + (f"{work}\n" if work else "")
            + f"/bin/busybox echo {marker}\n"
            "/bin/busybox reboot -f\n").encode()
    entries = [
        ("bin", 0o040755, b"", (0, 0)),
        ("dev", 0o040755, b"", (0, 0)),
        ("dev/console", 0o020600, b"", (5, 1)),
        ("bin/busybox", 0o100755, busybox_bytes, (0, 0)),
        ("init", 0o100755, init, (0, 0)),
    ]
    blob = b"".join(_cpio_entry(n, m, d, r, ino=i + 1) for i, (n, m, d, r) in enumerate(entries))
    blob += _cpio_entry("TRAILER!!!", 0)
    with open(out, "wb") as f:
        f.write(blob)


def oci_config(path):
    with open(path) as f:
        config = json.load(f)
    config["process"]["terminal"] = False
    config["process"]["args"] = ["/bin/true"]
    with open(path, "w") as f:
        json.dump(config, f, indent=2)


# ---------------------------------------------------------------------------------------------
# timing


class BenchError(Exception):
    pass


def timed(argv, env=None, timeout=120.0):
    """Runs argv with no stdin; returns (seconds, returncode, stdout, stderr)."""
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException as e:  # a timeout, or this helper being interrupted: leave nothing
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate()
        if isinstance(e, subprocess.TimeoutExpired):
            raise BenchError(f"timed out after {timeout:.0f}s: {' '.join(argv)}") from None
        raise
    elapsed = time.monotonic() - start
    return elapsed, proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def tail(text, lines=8):
    return "\n".join("    " + line for line in text.strip().splitlines()[-lines:])


TIMING_FIELD = re.compile(r"([A-Za-z][\w-]*)=([0-9]+(?:\.[0-9]+)?)ms")


def parse_timing(stderr):
    for line in stderr.splitlines():
        if line.startswith("hvc-timing:"):
            return {k: float(v) for k, v in TIMING_FIELD.findall(line)}
    return None


class Bench:
    def __init__(self, key, label, run):
        self.key, self.label, self.run = key, label, run
        self.samples = []  # wall ms


def qemu_accel_args(accel):
    # hvc's own CPU models: the host's under KVM; under TCG QEMU's max without the byte-wise
    # string copies (ERMS, FSRM) that TCG runs slowly.
    return ["-accel", "kvm", "-cpu", "host"] if accel == "kvm" else ["-accel", "tcg", "-cpu", "max,svm=off,erms=off,fsrm=off"]


def make_qemu_run(args, tmp, name, machine_args, kernel, marker):
    console = os.path.join(tmp, f"{name}.console")

    def run():
        if os.path.exists(console):
            os.unlink(console)
        argv = ["qemu-system-x86_64", "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
                *machine_args, *qemu_accel_args(args.accel), "-m", "256M", "-smp", "1",
                "-kernel", kernel, "-initrd", args.peer_initramfs,
                "-append", "console=ttyS0 quiet reboot=t panic=-1",
                "-serial", f"file:{console}"]
        seconds, rc, out, err = timed(argv, timeout=args.timeout)
        try:
            with open(console, errors="replace") as f:
                log = f.read()
        except OSError:
            log = ""
        if rc != 0 or marker not in log or "Kernel panic" in log:
            raise BenchError(f"{name}: QEMU exited {rc}, init marker "
                             f"{'seen' if marker in log else 'missing'}\n  stderr:\n{tail(err)}"
                             f"\n  console:\n{tail(log)}")
        return seconds * 1000.0, None

    return run


CALIBRATED = {"HVC_GUEST_CLOCK": "calibrated"}
ERMS = {"HVC_GUEST_ERMS": "on"}


def make_hvc_run(args, extra, env_extra=None):
    env = dict(os.environ, HVC_TIMING="1", **(env_extra or {}))

    def run():
        seconds, rc, out, err = timed([args.hvc, "run", "--rm", *extra, "busybox", "true"], env=env,
                                      timeout=args.timeout)
        if rc != 0:
            raise BenchError(f"hvc run {' '.join(extra)} exited {rc}\n  stderr:\n{tail(err)}")
        marks = parse_timing(err)
        if marks is None:
            raise BenchError(f"hvc run printed no hvc-timing line\n  stderr:\n{tail(err)}")
        return seconds * 1000.0, marks

    return run


def make_podman_run(args, network="none"):
    """podman with runc; on `network` ("none"), or on podman's default network when None, so
    that each hvc row has a peer on the same kind of network."""
    network_flags = ["--network", network] if network else []

    def run():
        seconds, rc, out, err = timed([*args.podman.split(), "run", "--rm", *network_flags,
                                       "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
                                       args.podman_image, "/bin/true"], timeout=args.timeout)
        if rc != 0:
            raise BenchError(f"podman run exited {rc}\n  stderr:\n{tail(err)}")
        return seconds * 1000.0, None

    return run


def make_podman_hvc_run(args):
    """podman with hvc-oci as its runtime, on podman's own storage; hvc's paths as runtime flags
    (conmon passes the runtime no environment)."""
    podman = args.podman.split()
    podman[podman.index("--runtime") + 1] = args.hvc_oci
    for flag, value in (("hvc-root", os.environ["HVC_ROOT"]), ("hvc-run-root", os.environ["HVC_RUN_ROOT"]),
                        ("hvc-assets", os.environ["HVC_ASSETS"]), ("root", os.environ["HVC_RUN_ROOT"] + "/oci")):
        podman += ["--runtime-flag", f"{flag}={value}"]

    def run():
        seconds, rc, out, err = timed([*podman, "run", "--rm", "--network", "none", args.podman_image, "/bin/true"],
                                      timeout=args.timeout)
        if rc != 0:
            raise BenchError(f"podman --runtime hvc-oci run exited {rc}\n  stderr:\n{tail(err)}")
        return seconds * 1000.0, None

    return run


def measure_podman_kept(args):
    """podman --runtime hvc-oci with hvcd serving hvc's state, whose keeper service starts the
    template's keeper outside conmon's tree (conmon waits for every process it adopts, so a
    keeper started under it leaves at once and every run reloads the template), round-robin with
    podman --runtime runc measured again beside it."""
    hvcd = os.path.join(os.path.dirname(args.hvc), "hvcd")
    daemon = subprocess.Popen([hvcd, "--root", os.environ["HVC_ROOT"], "--run-root", os.environ["HVC_RUN_ROOT"],
                               "--assets", os.environ["HVC_ASSETS"], "--socket", os.path.join(args.tmp, "bench-hvcd.sock")],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        service = os.path.join(os.environ["HVC_RUN_ROOT"], "keepers.sock")
        deadline = time.monotonic() + 10
        while not os.path.exists(service):
            if time.monotonic() > deadline or daemon.poll() is not None:
                raise BenchError("hvcd did not start its keeper service")
            time.sleep(0.05)
        benches = [Bench("podman-hvc-kept", "`podman --runtime hvc-oci run --rm`, `/bin/true`, with hvcd keeping the template "
                         "(its own round-robin with the next row)", make_podman_hvc_run(args)),
                   Bench("podman-b", "`podman --runtime runc run --rm --network none`, `/bin/true` (beside the row above)",
                         make_podman_run(args))]
        round_robin(args, benches, "hvcd keeping templates")
        benches += measure_podman_pooled(args)
        return benches
    finally:
        try:
            set_oci_pool(args, 0)
        finally:
            daemon.terminate()
            daemon.wait(timeout=30)


def set_oci_pool(args, size):
    seconds, rc, out, err = timed([args.hvc, "pool", "set", "hvc-oci-base:1", str(size), "--network", "none"], timeout=args.timeout)
    if rc != 0:
        raise BenchError(f"hvc pool set hvc-oci-base:1 {size} --network none exited {rc}\n  stderr:\n{tail(err)}")


def measure_podman_pooled(args):
    """podman --runtime hvc-oci taking VMs from a warm pool of two of hvc-oci's shape (no network
    interface), which hvcd refills, round-robin with podman --runtime runc measured again beside
    it. Every run, either row's, waits (untimed) until both VMs wait: the refill a claim starts
    runs during that claim's own run, as in steady use, and never in the peer's."""
    set_oci_pool(args, 2)
    benches = [Bench("podman-hvc-pooled", "`podman --runtime hvc-oci run --rm`, `/bin/true`, VM from a warm pool hvcd refills "
                     "(its own round-robin with the next row)", make_podman_hvc_run(args)),
               Bench("podman-c", "`podman --runtime runc run --rm --network none`, `/bin/true` (beside the row above)",
                     make_podman_run(args))]
    def pool_full():
        # Before each run, the pool full again: no refill of an earlier run lands in this one.
        deadline = time.monotonic() + 60
        while pool_waiting(args) < 2:
            if time.monotonic() > deadline:
                raise BenchError("the hvc-oci pool was not refilled within 60 s")
            time.sleep(0.05)

    round_robin(args, benches, "hvc-oci pool", before_run=pool_full)
    return benches


def round_robin(args, benches, label, before_run=None):
    """Runs `benches` in turn, warm-up rounds first (not kept); `before_run`, untimed, before every run."""
    for round_no in range(args.warmup + args.runs):
        parts = []
        for b in benches:
            if before_run:
                before_run()
            wall, _ = b.run()
            parts.append(f"{b.key} {wall:.0f}ms")
            if round_no >= args.warmup:
                b.samples.append(wall)
        print(f"bench: {label}, round {round_no + 1}: {', '.join(parts)}", file=sys.stderr, flush=True)


def make_runc_run(args):
    counter = [0]

    def run():
        counter[0] += 1
        cid = f"hvc-bench-{os.getpid()}-{counter[0]}"
        base = ["runc", "--root", args.runc_root]
        seconds, rc, out, err = timed([*base, "run", "--bundle", args.bundle, cid],
                                      timeout=args.timeout)
        # Foreground `runc run` destroys the container when it exits; make sure of it.
        subprocess.run([*base, "delete", "--force", cid], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if rc != 0:
            raise BenchError(f"runc run exited {rc}\n  stderr:\n{tail(err)}")
        return seconds * 1000.0, None

    return run


# ---------------------------------------------------------------------------------------------
# statistics and report


def ms(value):
    return f"{value:.1f}"


def stats_cells(values):
    if not values:
        return ["n/a", "n/a", "n/a"]
    return [ms(statistics.median(values)), ms(min(values)), ms(max(values))]


def breakdown(walls, marks_list, runs, templated):
    """Rows (label, per-run values in ms, per-run % of wall) from the hvc-timing marks."""

    def phase(f):
        values, percents = [], []
        for wall, m in zip(walls, marks_list):
            try:
                v = f(m, wall)
            except KeyError:
                continue
            values.append(v)
            percents.append(100.0 * v / wall)
        return values, percents

    if templated:
        rows = [
            ("hvc start → template found, its memory open (`template`)", lambda m, w: m["template"]),
            ("template → clone's QEMU launched (jail, `launch`)", lambda m, w: m["launch"] - m["template"]),
            ("QEMU launched → device state restored (`restored`)", lambda m, w: m["restored"] - m["launch"]),
            ("QEMU launched → on the network (CNI and tc, beside the restore: `network`)", lambda m, w: m["network"] - m["launch"]),
            ("restored → agent `ready`", lambda m, w: m["ready"] - m["restored"]),
        ]
    else:
        rows = [
            ("hvc start → QEMU launched (`launch`)", lambda m, w: m["launch"]),
            ("QEMU launched → agent `ready` (guest boot)", lambda m, w: m["ready"] - m["launch"]),
            ("guest: kernel boot → agent main (`guest-agent-start`, guest uptime)",
             lambda m, w: m["guest-agent-start"]),
        ]
    rows += [
        ("`ready` → `started` (agent starts the process)", lambda m, w: m["started"] - m["ready"]),
        ("`started` → `exited` (the command runs)", lambda m, w: m["exited"] - m["started"]),
        ("`exited` → `vm-gone` (teardown)", lambda m, w: m["vm-gone"] - m["exited"]),
        ("`vm-gone` → `network-gone` (CNI DEL, the namespace)", lambda m, w: m["network-gone"] - m["vm-gone"]),
        ("**hvc's own overhead** = wall − (`exited` − `launch`)",
         lambda m, w: w - (m["exited"] - m["launch"])),
    ]
    out = []
    for label, f in rows:
        values, percents = phase(f)
        if values and len(values) < runs:
            label += f" ({len(values)}/{runs} runs had the marks)"
        elif not values:
            label += " (mark not reported)"
        out.append((label, values, percents))
    return out


def ratio(a, b):
    return f"{a / b:.2f}x" if b > 0 else "n/a"


def report(args, benches, marks, memory):
    by_key = {b.key: b for b in benches}
    median = {b.key: statistics.median(b.samples) for b in benches}
    lines = ["## hvc benchmark: `hvc run --rm busybox true` vs. peers", ""]
    lines.append(f"Machine: {args.facts}")
    lines.append("")
    lines.append(f"{args.runs} timed runs of each (after {args.warmup} warm-up round(s) not counted, "
                 "which also make the busybox template), run round-robin so load drifts hit all "
                 "alike; wall time from process launch to exit, in ms. Last column: this row's "
                 "median ÷ templated hvc's median.")
    lines.append("")
    lines.append("| Benchmark | median (ms) | min (ms) | max (ms) | this / templated |")
    lines.append("| --- | ---: | ---: | ---: | ---: |")
    for b in benches:
        lines.append(f"| {b.label} | {' | '.join(stats_cells(b.samples))} | "
                     f"{ratio(median[b.key], median['template'])} |")
    lines.append("")
    if "pool" in median:
        lines.append(f"Pooled runs take their turn in the round-robin: before each, a pool of one is filled and "
                     f"its VM left to settle; after it, the pool is emptied (neither is timed). Cold ÷ pooled = **{ratio(median['cold'], median['pool'])}**; "
                     f"pooled ÷ podman --runtime runc (both on their default network) = **{ratio(median['pool'], median['podman-net'])}**.")
        lines.append("")
    lines.append(f"Like for like: templated on the default network ÷ podman --runtime runc on its default network = "
                 f"**{ratio(median['template'], median['podman-net'])}**; templated without a network ÷ podman "
                 f"--runtime runc without a network = **{ratio(median['template-none'], median['podman'])}**.")
    lines.append("")
    lines.append(f"Cold ÷ templated = **{ratio(median['cold'], median['template'])}**; "
                 f"templated ÷ runc = {ratio(median['template'], median['runc'])}; "
                 f"podman --runtime hvc-oci ÷ podman --runtime runc = "
                 f"**{ratio(median['podman-hvc'], median['podman'])}**, with hvcd keeping the template "
                 f"**{ratio(median['podman-hvc-kept'], median['podman-b'])}**, with a warm pool "
                 f"**{ratio(median['podman-hvc-pooled'], median['podman-c'])}** (podman's rows without a network); "
                 f"templated on the default network − without a network = "
                 f"**{median['template'] - median['template-none']:.0f} ms**; "
                 f"cold ÷ bare QEMU = {ratio(median['cold'], median['bare'])}; "
                 f"q35 cloud kernel ÷ cold = {ratio(median['q35'], median['cold'])}; "
                 f"with the host's TSC rate given to the guest ÷ left to calibrate: cold "
                 f"{ratio(median['cold'], median['cold-calibrated'])}, templated "
                 f"{ratio(median['template-ab'], median['template-calibrated'])}; "
                 f"with ERMS and FSRM hidden from the guest ÷ shown: cold "
                 f"{ratio(median['cold'], median['cold-erms'])}, templated "
                 f"{ratio(median['template-ab'], median['template-erms'])}.")
    lines.append("")
    for key, title in (("template", "templated"), ("cold", "cold")):
        b = by_key[key]
        lines.append(f"### {title} `hvc run` breakdown (`HVC_TIMING=1`)")
        lines.append("")
        lines.append("| Phase | median (ms) | min (ms) | max (ms) | % of wall (median) |")
        lines.append("| --- | ---: | ---: | ---: | ---: |")
        lines.append(f"| wall time | {' | '.join(stats_cells(b.samples))} | 100% |")
        for label, values, percents in breakdown(b.samples, marks[key], args.runs, key == "template"):
            pct = f"{statistics.median(percents):.1f}%" if percents else "n/a"
            lines.append(f"| {label} | {' | '.join(stats_cells(values))} | {pct} |")
        lines.append("")
    if memory:
        lines.append(f"### Memory: {args.idle} idle containers (`hvc run -d busybox sleep`)")
        lines.append("")
        lines.append("PSS from `/proc/PID/smaps_rollup` (shared pages divided among their users), "
                     "in MiB per container: the VMM alone, and the VMM with its `hvc-shim` supervisor.")
        lines.append("")
        lines.append("| Start | QEMU PSS median | min | max | QEMU + supervisor median |")
        lines.append("| --- | ---: | ---: | ---: | ---: |")
        for label, (vmm, total, _, _) in memory["rows"]:
            lines.append(f"| {label} | {statistics.median(vmm):.1f} | {min(vmm):.1f} | {max(vmm):.1f} | "
                         f"{statistics.median(total):.1f} |")
        lines.append("")
        lines.append(f"The template's keeper (one per template, holding its sealed memory for every "
                     f"clone): {memory['keeper']:.1f} MiB PSS.")
        _, _, vmm_cpu, shim_cpu = memory["rows"][0][1]
        if vmm_cpu:
            lines.append("")
            lines.append(f"### Idle CPU: {args.idle} idle templated containers over {args.idle_cpu_seconds} s")
            lines.append("")
            lines.append("CPU time (user + system, from `/proc/PID/stat`) over the interval, in % of one core "
                         "per container.")
            lines.append("")
            lines.append("| Process | median | min | max | all containers together |")
            lines.append("| --- | ---: | ---: | ---: | ---: |")
            for label, values in (("QEMU (the guest and its devices)", vmm_cpu), ("hvc-shim supervisor", shim_cpu)):
                lines.append(f"| {label} | {statistics.median(values):.3f}% | {min(values):.3f}% | "
                             f"{max(values):.3f}% | {sum(values):.2f}% |")
            lines.append("")
    return "\n".join(lines) + "\n"


def pss_mib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def cpu_ticks(pid):
    """utime + stime of a process, in clock ticks (its threads included)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return 0


def idle_memory(args, extra, cpu_seconds=0):
    """Starts args.idle detached containers, waits for them to idle, and returns per-container
    (QEMU PSS, QEMU + supervisor PSS, QEMU CPU % of a core, supervisor CPU % of a core) lists,
    the CPU read over `cpu_seconds` of idling (none when 0); removes the containers."""
    names = [f"bench-idle-{os.getpid()}-{i}" for i in range(args.idle)]
    try:
        for name in names:
            seconds, rc, out, err = timed([args.hvc, "run", "-d", *extra, "--name", name, "busybox",
                                           "sleep", "3600"], timeout=args.timeout)
            if rc != 0:
                raise BenchError(f"hvc run -d exited {rc}\n  stderr:\n{tail(err)}")
        time.sleep(3)
        seconds, rc, out, err = timed([args.hvc, "inspect", *names], timeout=args.timeout)
        if rc != 0:
            raise BenchError(f"hvc inspect exited {rc}\n  stderr:\n{tail(err)}")
        vmm, total, vmm_cpu, shim_cpu = [], [], [], []
        pids = [(r["state"]["vmmPID"], r["state"]["supervisorPID"]) for r in json.loads(out)]
        for q, shim in pids:
            vmm.append(pss_mib(q))
            total.append(pss_mib(q) + pss_mib(shim))
        if cpu_seconds > 0:
            tick = os.sysconf("SC_CLK_TCK")
            start = [(cpu_ticks(q), cpu_ticks(shim)) for q, shim in pids]
            time.sleep(cpu_seconds)
            for (q, shim), (q0, shim0) in zip(pids, start):
                vmm_cpu.append((cpu_ticks(q) - q0) / tick / cpu_seconds * 100.0)
                shim_cpu.append((cpu_ticks(shim) - shim0) / tick / cpu_seconds * 100.0)
        return vmm, total, vmm_cpu, shim_cpu
    finally:
        subprocess.run([args.hvc, "rm", "-f", *names], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def keeper_pss():
    """PSS of the template keepers of this benchmark's store (HVC_ROOT, set by run.sh)."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv[1:2] == [b"keep-template"] and os.environ["HVC_ROOT"].encode() in argv:
            total += pss_mib(int(entry))
    return total


def pool_waiting(args):
    seconds, rc, out, err = timed([args.hvc, "pool", "ls", "--format", "json"], timeout=args.timeout)
    if rc != 0:
        raise BenchError(f"hvc pool ls exited {rc}\n  stderr:\n{tail(err)}")
    return sum(p.get("waiting", 0) for p in json.loads(out))


def set_pool(args, size):
    seconds, rc, out, err = timed([args.hvc, "pool", "set", "busybox", str(size)], timeout=args.timeout)
    if rc != 0:
        raise BenchError(f"hvc pool set busybox {size} exited {rc}\n  stderr:\n{tail(err)}")


def make_pooled_run(args):
    """`hvc run --rm busybox true` taking a VM from a warm pool of one. The pool is filled (and its
    VM left to settle) before the timed run and emptied after it, neither of them timed, so that
    the row takes its turn in the round-robin and its refills land in no other row's run."""
    def wait_for(waiting, what):
        deadline = time.monotonic() + 60
        while pool_waiting(args) != waiting:
            if time.monotonic() > deadline:
                raise BenchError(f"the warm pool {what} within 60 s")
            time.sleep(0.05)

    def run():
        set_pool(args, 1)
        try:
            wait_for(1, "did not fill")
            time.sleep(0.5)  # its warm-up is done once it waits; let it go idle
            # A claimed VM's supervisor times nothing (no HVC_TIMING line): wall time only.
            seconds, rc, out, err = timed([args.hvc, "run", "--rm", "busybox", "true"], timeout=args.timeout)
            if rc != 0:
                raise BenchError(f"pooled hvc run exited {rc}\n  stderr:\n{tail(err)}")
            return seconds * 1000.0, None
        finally:
            set_pool(args, 0)
            wait_for(0, "was not emptied")
            time.sleep(0.5)

    return run


def median_ms(argv, runs, timeout):
    samples = []
    for _ in range(runs):
        seconds, rc, out, err = timed(argv, timeout=timeout)
        if rc != 0:
            raise BenchError(f"{' '.join(argv[1:4])} exited {rc}\n  stderr:\n{tail(err)}")
        samples.append(seconds * 1000.0)
    return statistics.median(samples)


def measure_scale(args):
    """args.scale idle templated containers started one after another: the time of each start,
    their memory and idle CPU all together, and a templated start and an exec with them all
    as neighbours; removes them."""
    names = [f"bench-scale-{os.getpid()}-{i}" for i in range(args.scale)]
    starts = []
    try:
        for n, name in enumerate(names):
            seconds, rc, out, err = timed([args.hvc, "run", "-d", "--name", name, "busybox", "sleep", "36000"],
                                          timeout=args.timeout)
            if rc != 0:
                raise BenchError(f"scale: container {n + 1} did not start (exit {rc})\n  stderr:\n{tail(err)}")
            starts.append(seconds * 1000.0)
            if (n + 1) % 50 == 0:
                print(f"bench: scale: {n + 1} containers, last start {starts[-1]:.0f}ms", file=sys.stderr, flush=True)
        time.sleep(5)
        seconds, rc, out, err = timed([args.hvc, "inspect", *names], timeout=args.timeout)
        if rc != 0:
            raise BenchError(f"hvc inspect exited {rc}\n  stderr:\n{tail(err)}")
        pids = [(r["state"]["vmmPID"], r["state"]["supervisorPID"]) for r in json.loads(out)]
        vmm_pss = sum(pss_mib(q) for q, _ in pids)
        shim_pss = sum(pss_mib(shim) for _, shim in pids)
        keeper = keeper_pss()
        tick = os.sysconf("SC_CLK_TCK")
        before = sum(cpu_ticks(q) + cpu_ticks(shim) for q, shim in pids)
        time.sleep(10)
        idle_cpu = (sum(cpu_ticks(q) + cpu_ticks(shim) for q, shim in pids) - before) / tick / 10 * 100.0
        start_with_neighbours = median_ms([args.hvc, "run", "--rm", "busybox", "true"], 7, args.timeout)
        exec_with_neighbours = median_ms([args.hvc, "exec", names[0], "true"], 7, args.timeout)
        load = os.getloadavg()[0]
        return {"count": args.scale, "starts": starts, "vmm_pss": vmm_pss, "shim_pss": shim_pss, "keeper": keeper,
                "idle_cpu": idle_cpu, "start": start_with_neighbours, "exec": exec_with_neighbours, "load": load}
    finally:
        for i in range(0, len(names), 50):
            subprocess.run([args.hvc, "rm", "-f", *names[i:i + 50]], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)


def sustained_starts(args, seconds):
    """`hvc run --rm busybox true` one after another for `seconds`: starts per second, with
    templates and then with a warm pool of 2."""
    rates = {}
    for label, pool in (("templated", 0), ("pooled (pool of 2)", 2)):
        if pool:
            rc = subprocess.run([args.hvc, "pool", "set", "busybox", str(pool)], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=args.timeout).returncode
            if rc != 0:
                raise BenchError("hvc pool set failed")
        try:
            count, deadline = 0, time.monotonic() + seconds
            while time.monotonic() < deadline:
                _, rc, _, err = timed([args.hvc, "run", "--rm", "busybox", "true"], timeout=args.timeout)
                if rc != 0:
                    raise BenchError(f"sustained run exited {rc}\n  stderr:\n{tail(err)}")
                count += 1
            rates[label] = count / seconds
            print(f"bench: sustained {label}: {count} starts in {seconds} s", file=sys.stderr, flush=True)
        finally:
            if pool:
                subprocess.run([args.hvc, "pool", "set", "busybox", "0"], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(1.5)
    return rates


def check_guest_cpus(args):
    """The rows with the old guest CPU compare something only if its guest shows ERMS and hvc's
    own does not: each guest's /proc/cpuinfo is read once."""
    def erms_cpus(env_extra):
        _, rc, out, err = timed([args.hvc, "run", "--rm", "--network", "none", "busybox", "grep", "-cw", "erms",
                                 "/proc/cpuinfo"], env=dict(os.environ, **env_extra), timeout=args.timeout)
        if rc not in (0, 1) or not out.strip().isdigit():
            raise BenchError(f"reading the guest's /proc/cpuinfo: exited {rc}\n  stderr:\n{tail(err)}")
        return int(out)
    if args.accel == "tcg" and (erms_cpus({}) or not erms_cpus(ERMS)):
        raise BenchError("HVC_GUEST_ERMS=on did not give the guest a CPU with ERMS, or hvc's own guest shows it")


def measure(args):
    check_guest_cpus(args)
    benches = [
        Bench("cold", "`hvc run --rm --no-template busybox true` (cold boot)", make_hvc_run(args, ["--no-template"])),
        Bench("template", "`hvc run --rm busybox true` (clone of the template, on the default network)", make_hvc_run(args, [])),
        Bench("pool", "`hvc run --rm busybox true` (VM from a warm pool)", make_pooled_run(args)),
        Bench("template-none", "`hvc run --rm --network none busybox true` (clone of the template without a network interface)",
              make_hvc_run(args, ["--network", "none"])),
        Bench("cold-calibrated", "cold boot, guest left to calibrate its clock (`HVC_GUEST_CLOCK=calibrated`: jiffies under TCG, as before)",
              make_hvc_run(args, ["--no-template"], CALIBRATED)),
        Bench("cold-erms", "cold boot, guest CPU showing ERMS and FSRM (`HVC_GUEST_ERMS=on`: byte-wise string copies under TCG, as before)",
              make_hvc_run(args, ["--no-template"], ERMS)),
        Bench("bare", "bare QEMU microvm, hvc's kernel, busybox /init → reboot (no hvc)",
              make_qemu_run(args, args.tmp, "bare",
                            ["-M", "microvm,x-option-roms=off,isa-serial=on,rtc=on,acpi=off"],
                            args.kernel, args.marker)),
        Bench("q35", f"QEMU q35, Debian cloud kernel {args.cloud_release}, busybox /init → reboot",
              make_qemu_run(args, args.tmp, "q35", ["-M", "q35"], args.cloud_kernel, args.marker)),
        Bench("runc", "`runc run` of the busybox rootfs, `/bin/true`", make_runc_run(args)),
        Bench("podman", "`podman --runtime runc run --rm --network none` of the same rootfs, `/bin/true`", make_podman_run(args)),
        Bench("podman-net", "`podman --runtime runc run --rm` of the same rootfs on podman's default network, `/bin/true`",
              make_podman_run(args, network=None)),
        Bench("podman-hvc", "`podman --runtime hvc-oci run --rm` of the same rootfs, `/bin/true` (a VM per container)",
              make_podman_hvc_run(args)),
    ]
    marks = {"cold": [], "template": []}
    total_rounds = args.warmup + args.runs
    for round_no in range(total_rounds):
        warm = round_no < args.warmup
        what = "warm-up" if warm else f"run {round_no - args.warmup + 1}/{args.runs}"
        parts = []
        for b in benches:
            wall, m = b.run()
            parts.append(f"{b.key} {wall:.0f}ms")
            if not warm:
                b.samples.append(wall)
                if b.key in marks:
                    marks[b.key].append(m)
        print(f"bench: {what}: {', '.join(parts)}", file=sys.stderr, flush=True)
    # Clones as hvc makes them against clones with the old clock and with the old CPU model: an
    # image keeps one template per shape, so they would replace each other's in a round-robin;
    # they alternate in blocks instead, each block after one run that makes its template.
    ab = {"template-ab": Bench("template-ab", "`hvc run --rm busybox true`, clone (blocks alternating with the next two rows)",
                               make_hvc_run(args, [])),
          "template-calibrated": Bench("template-calibrated", "clone, guest left to calibrate its clock "
                                       "(`HVC_GUEST_CLOCK=calibrated`; blocks alternating with the rows beside)",
                                       make_hvc_run(args, [], CALIBRATED)),
          "template-erms": Bench("template-erms", "clone, guest CPU showing ERMS and FSRM "
                                 "(`HVC_GUEST_ERMS=on`; blocks alternating with the rows beside)",
                                 make_hvc_run(args, [], ERMS))}
    blocks = 4
    for block in range(blocks):
        for b in ab.values():
            b.run()
            for _ in range(max(1, args.runs // 2)):
                wall, _ = b.run()
                b.samples.append(wall)
        print(f"bench: clock and CPU blocks {block + 1}/{blocks}", file=sys.stderr, flush=True)
    benches[4:4] = list(ab.values())
    benches += measure_podman_kept(args)
    memory = None
    if args.idle > 0:
        print(f"bench: memory of {args.idle} idle templated containers", file=sys.stderr, flush=True)
        templated = idle_memory(args, [], cpu_seconds=args.idle_cpu_seconds)
        keeper = keeper_pss()
        print(f"bench: memory of {args.idle} idle cold-booted containers", file=sys.stderr, flush=True)
        cold = idle_memory(args, ["--no-template"])
        memory = {"rows": [("templated (clone)", templated), ("cold boot", cold)], "keeper": keeper}
    scale = None
    if args.scale > 0:
        print(f"bench: {args.scale} idle containers, one after another", file=sys.stderr, flush=True)
        scale = measure_scale(args)
    rates = sustained_starts(args, args.sustained_seconds) if args.sustained_seconds > 0 else None
    return report(args, benches, marks, memory) + scale_report(args, scale, rates)


def scale_report(args, scale, rates):
    lines = []
    if scale:
        n, starts = scale["count"], scale["starts"]
        total = scale["vmm_pss"] + scale["shim_pss"] + scale["keeper"]
        lines += [f"### Scale: {n} idle containers (`hvc run -d busybox sleep`, templated, one after another)", ""]
        lines += ["| Figure | value |", "| --- | ---: |"]
        for k in sorted({1, min(100, n), n}):
            lines.append(f"| start of container {k} | {starts[k - 1]:.0f} ms |")
        for lo in range(0, n, 50):
            chunk = starts[lo:lo + 50]
            lines.append(f"| median start, containers {lo + 1}–{lo + len(chunk)} | {statistics.median(chunk):.0f} ms |")
        lines.append(f"| total PSS: QEMUs + supervisors + keeper | {total:.0f} MiB ({total / n:.1f} MiB per container) |")
        lines.append(f"| of which QEMUs / supervisors / keeper | {scale['vmm_pss']:.0f} / {scale['shim_pss']:.0f} / {scale['keeper']:.0f} MiB |")
        lines.append(f"| CPU of all {n} while idle (QEMUs + supervisors, 10 s) | {scale['idle_cpu']:.2f}% of one core |")
        lines.append(f"| templated `hvc run --rm busybox true` with {n} idle neighbours (median of 7) | {scale['start']:.0f} ms |")
        lines.append(f"| `hvc exec C true` with {n} idle neighbours (median of 7) | {scale['exec']:.0f} ms |")
        lines.append(f"| load average (1 min) at the end | {scale['load']:.2f} |")
        lines.append("")
    if rates:
        lines += [f"### Sustained starts: `hvc run --rm busybox true` one after another for {args.sustained_seconds} s", ""]
        lines += ["| Start | starts per second |", "| --- | ---: |"]
        for label, rate in rates.items():
            lines.append(f"| {label} | {rate:.2f} |")
        lines.append("")
    return "\n".join(lines) + ("\n" if lines else "")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("initramfs")
    p.add_argument("out")
    p.add_argument("busybox")
    p.add_argument("marker")
    p = sub.add_parser("oci-config")
    p.add_argument("config")
    p = sub.add_parser("measure")
    p.add_argument("--runs", type=int, required=True)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--hvc", required=True)
    p.add_argument("--hvc-oci", required=True, help="the hvc-oci runtime binary")
    p.add_argument("--accel", choices=["kvm", "tcg"], required=True)
    p.add_argument("--tmp", required=True)
    p.add_argument("--kernel", required=True)
    p.add_argument("--cloud-kernel", required=True)
    p.add_argument("--cloud-release", required=True)
    p.add_argument("--peer-initramfs", required=True)
    p.add_argument("--marker", required=True)
    p.add_argument("--bundle", required=True)
    p.add_argument("--runc-root", required=True)
    p.add_argument("--podman", required=True, help="podman command with its private storage options")
    p.add_argument("--podman-image", required=True)
    p.add_argument("--idle", type=int, default=20, help="idle containers for the memory and idle CPU figures (0: skip)")
    p.add_argument("--idle-cpu-seconds", type=int, default=30, help="how long idle CPU is measured")
    p.add_argument("--scale", type=int, default=200, help="idle containers for the scale figures (0: skip)")
    p.add_argument("--sustained-seconds", type=int, default=60, help="how long sustained starts run (0: skip)")
    p.add_argument("--facts", required=True)
    p.add_argument("--out", help="also write the report here")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda signo, frame: sys.exit(128 + signo))

    if args.command == "initramfs":
        make_initramfs(args.out, args.busybox, args.marker)
    elif args.command == "oci-config":
        oci_config(args.config)
    else:
        try:
            text = measure(args)
        except BenchError as e:
            print(f"bench: error: {e}", file=sys.stderr)
            return 1
        sys.stdout.write(text)
        if args.out:
            with open(args.out, "w") as f:
                f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
