#!/usr/bin/env python3
"""Shared folders and volumes, hvc against podman with runc, and a Markdown section on stdout.

Measures, for each runtime, in a host folder bind-mounted at /data (`-v DIR:/data`), and for hvc
also in a block volume at /work (`hvc volume create -d block`, the tarball still read from
/data), from inside a busybox container:
  - sequential write and read of a 256 MiB file (busybox dd, 1 MiB blocks; the write ends with
    fsync; in a host folder the read comes from the host's page cache, which both runtimes read
    through; in the block volume, through the guest's page cache and loop device);
  - a small-file workload: unpacking a tar of 3000 files of 1-4 KiB in 100 directories, then
    `ls -lR` of the tree (times from the container's own clock);
and for hvc alone, the templated start (`run --rm busybox true`) with and without a host folder.

Usage: volumes.py --hvc PATH --podman "PODMAN CMD" --image-podman NAME --tmp DIR [--runs N]
hvc works in the HVC_ROOT its environment names (the busybox image imported there); podman uses
the storage its command line names. Everything made here is removed at the end.
"""
import argparse
import io
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

FILES, DIRECTORIES = 3000, 100
BIG_MIB = 256
# Each step prints its name and the container's clock before and after, in microseconds
# (busybox's adjtimex reads the clock; its date has no sub-second format). A kernel whose NTP
# status has STA_NANO (8192) set reports nanoseconds in tv_usec.
SCRIPT = r"""
t() { adjtimex | awk '/status:/ { n = int($2 / 8192) %% 2 } /tv_sec/ { s = $2 } /tv_usec/ { u = $2 }
  END { if (n) u = int(u / 1000); printf "%%s%%06d", s, u }'; }
cd %(dir)s
a=$(t); dd if=/dev/zero of=big bs=1M count=%(mib)d conv=fsync 2>/dev/null; echo write $a $(t)
a=$(t); dd if=big of=/dev/null bs=1M 2>/dev/null; echo read $a $(t)
rm -f big
mkdir tree
a=$(t); tar -xf /data/files.tar -C tree; echo untar $a $(t)
a=$(t); ls -lR tree >/dev/null; echo lsR $a $(t)
rm -rf tree
"""


def script(directory):
    return SCRIPT % {"mib": BIG_MIB, "dir": directory}


class BenchError(Exception):
    pass


def say(message):
    print(f"bench: {message}", file=sys.stderr, flush=True)


def run(argv, env=None, timeout=600.0, shown=None):
    shown = " ".join((shown or argv)[:4])
    try:
        proc = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout,
                              text=True, errors="replace")
    except subprocess.TimeoutExpired:
        raise BenchError(f"`{shown} ...` timed out after {timeout:.0f}s") from None
    except OSError as e:
        raise BenchError(f"cannot run `{shown} ...`: {e.strerror}: {argv[0]}") from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise BenchError(f"`{shown} ...` exited {proc.returncode}: {last}")
    return proc.stdout


def make_tarball(path):
    """FILES small files of random sizes in DIRECTORIES directories, seeded: the same every run."""
    rng = random.Random(13)
    with tarfile.open(path, "w") as tar:
        for i in range(FILES):
            data = bytes(rng.getrandbits(8) for _ in range(rng.randint(1024, 4096)))
            info = tarfile.TarInfo(f"d{i % DIRECTORIES:03d}/f{i:05d}")
            info.size = len(data)
            info.mtime = 1_700_000_000
            tar.addfile(info, io.BytesIO(data))


def parse(output):
    """`NAME BEFORE AFTER` lines (microseconds) into seconds by name."""
    figures = {}
    for line in output.splitlines():
        m = re.fullmatch(r"(write|read|untar|lsR) (\d+) (\d+)", line.strip())
        if m:
            figures[m.group(1)] = (int(m.group(3)) - int(m.group(2))) / 1e6
    if set(figures) != {"write", "read", "untar", "lsR"}:
        raise BenchError(f"the workload printed {output!r}")
    return figures


def workload(commands, runs):
    """{label: figures}: medians over runs of each step, the commands run round-robin (one run of
    each in turn, so that drift hits all alike); throughputs in MiB/s, the small-file steps in s."""
    samples = {label: [] for label in commands}
    for i in range(runs):
        for label, (command, env) in commands.items():
            samples[label].append(parse(run(command, env=env)))
            say(f"shared folders: {label} run {i + 1}/{runs}: {samples[label][-1]}")
    figures = {}
    for label, taken in samples.items():
        median = {key: statistics.median(s[key] for s in taken) for key in taken[0]}
        figures[label] = {
            "write": BIG_MIB / max(median["write"], 1e-6),
            "read": BIG_MIB / max(median["read"], 1e-6),
            "untar": median["untar"],
            "lsR": median["lsR"],
        }
    return figures


def starts(hvc, env, folder, runs):
    """Median wall times of `hvc run --rm busybox true` without and with a host folder, in turn."""
    run([hvc, "run", "--rm", "busybox", "true"], env=env)  # the template, made once
    plain, shared = [], []
    for _ in range(runs):
        for times, argv in ((plain, [hvc, "run", "--rm", "busybox", "true"]),
                            (shared, [hvc, "run", "--rm", "-v", folder + ":/data", "busybox", "true"])):
            begin = time.monotonic()
            run(argv, env=env)
            times.append((time.monotonic() - begin) * 1000)
    return statistics.median(plain), statistics.median(shared)


def report(runs, hvc, before, block, podman, start):
    lines = ["", "### Shared folders and block volumes (`bench/volumes.py`)", "",
             f"From inside a busybox container; medians of {runs} runs, "
             + ("hvc, hvc with the guest CPU it had before (`HVC_GUEST_ERMS=on`: ERMS and FSRM shown, so the "
                "guest copies a byte per TCG step; each guest's /proc/cpuinfo checked), hvc with a block volume "
                "and podman in turn. " if before else "hvc, hvc with a block volume and podman in turn. ")
             + "A host folder bind-mounted at `/data`: hvc shares it over virtio-9p, served by the VM's own (jailed) "
               "QEMU; podman bind-mounts it. The block volume (`hvc volume create -d block`) is an ext4 image "
               "on that share which the guest's kernel mounts through a loop device: the file system runs in "
               "the guest, and only its blocks cross to the host (loop with direct I/O: a request is one 9P read "
               "or write). Large files pay for that: their bytes pass the guest's page cache and loop device, "
               "copies that TCG runs, and a 256 MiB file does not fit beside the guest's other memory (256 MiB), "
               "so the read goes to the host; a host folder's sequential I/O is one copy per 500 KB message.", ""]
    columns = [("hvc, host folder", hvc)] + ([("hvc, guest CPU with ERMS (before)", before)] if before else []) \
        + [("hvc, block volume", block), ("podman (runc), host folder", podman)]
    ratios = ([("hvc / before", hvc, before)] if before else []) + [("block / host folder", block, hvc),
                                                                    ("block / podman", block, podman)]
    lines += ["| workload | " + " | ".join(c[0] for c in columns) + " | " + " | ".join(r[0] for r in ratios) + " |",
              "| --- |" + " ---: |" * (len(columns) + len(ratios))]
    rows = [("sequential write, 256 MiB + fsync (MiB/s)", "write", "{:.0f}"),
            ("sequential read, 256 MiB, page cache (MiB/s)", "read", "{:.0f}"),
            (f"unpack {FILES} files of 1-4 KiB (s)", "untar", "{:.2f}"),
            (f"`ls -lR` of those {FILES} files (s)", "lsR", "{:.2f}")]
    for label, key, fmt in rows:
        cells = [fmt.format(figures[key]) for _, figures in columns]
        # Throughputs: higher is better; times: the ratio is of the times.
        quotients = [f"{a[key] / b[key]:.2f}" if b[key] else "n/a" for _, a, b in ratios]
        lines.append(f"| {label} | {' | '.join(cells)} | {' | '.join(quotients)} |")
    faster = {key: hvc[key] / block[key] for key in ("untar", "lsR")}
    lines += ["", f"The block volume against the host folder: unpacking {faster['untar']:.1f}x faster, "
                  f"`ls -lR` {faster['lsR']:.1f}x faster."]
    plain, shared = start
    lines += ["", f"Templated start, `hvc run --rm busybox true`: {plain:.1f} ms without a host folder, "
                  f"{shared:.1f} ms with `-v DIR:/data` (+{shared - plain:.1f} ms; medians of {runs * 2} runs, in turn).", ""]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hvc", required=True)
    parser.add_argument("--podman", required=True, help="podman command with its private storage options")
    parser.add_argument("--podman-image", required=True, help="a busybox image in podman's storage")
    parser.add_argument("--tmp", required=True)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    signal.signal(signal.SIGTERM, lambda signo, frame: sys.exit(128 + signo))
    workdir = tempfile.mkdtemp(prefix="volumes.", dir=os.path.abspath(args.tmp))
    made = []
    try:
        folder = os.path.join(workdir, "data")
        os.makedirs(folder)
        make_tarball(os.path.join(folder, "files.tar"))
        env = dict(os.environ)
        # The host's hard RLIMIT_NOFILE is below podman's default, which runc then fails to set.
        limits = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
        hvc = [args.hvc, "run", "--rm", "--network", "none", "-v", folder + ":/data", "busybox", "sh", "-c", script("/data")]
        volume = "bench-block-" + os.path.basename(workdir).split(".")[-1].lower()
        run([args.hvc, "volume", "create", "--driver", "block", "--opt", "size=2g", volume])
        made.append(volume)
        # The block column's figures hold only where /work is the volume's ext4 on a loop device.
        block = [args.hvc, "run", "--rm", "--network", "none", "-v", folder + ":/data", "-v", volume + ":/work",
                 "busybox", "sh", "-c", "grep -q '^/dev/loop[0-9]* /work ext4 ' /proc/mounts || exit 3\n" + script("/work")]
        # The old guest CPU (ERMS and FSRM shown) beside hvc's, where the two differ (TCG): each
        # guest's /proc/cpuinfo, read once with the environment its runs use.
        probe = [args.hvc, "run", "--rm", "--network", "none", "busybox", "sh", "-c", "grep -cw erms /proc/cpuinfo; true"]
        new, old = (int(run(probe, env=e).strip() or 0) for e in (None, dict(os.environ, HVC_GUEST_ERMS="on")))
        if new and not old:
            raise BenchError("hvc's own guest shows ERMS and the one with HVC_GUEST_ERMS=on does not")
        compare = bool(old) and not new
        commands = {
            "hvc": (hvc, None),
            **({"hvc (ERMS shown)": (hvc, dict(os.environ, HVC_GUEST_ERMS="on"))} if compare else {}),
            "hvc block volume": (block, None),
            "podman (runc)": (args.podman.split() + ["run", "--rm", "--network", "none", *limits, "-v", folder + ":/data",
                                                     args.podman_image, "sh", "-c", script("/data")], None),
        }
        say("shared folders: hvc, hvc with a block volume and podman (runc), round-robin")
        # A failure of either fails the bench: a figure without its peer is no ratio.
        figures = workload(commands, args.runs)
        say("shared folders: templated starts with and without a folder")
        start = starts(args.hvc, env, folder, args.runs * 2)
        sys.stdout.write(report(args.runs, figures["hvc"], figures.get("hvc (ERMS shown)"), figures["hvc block volume"],
                                figures["podman (runc)"], start))
        return 0
    except BenchError as e:
        print(f"bench: error: {e}", file=sys.stderr)
        return 1
    finally:
        for volume in made:
            subprocess.run([args.hvc, "volume", "rm", volume], capture_output=True)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
