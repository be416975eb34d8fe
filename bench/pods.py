#!/usr/bin/env python3
"""Pods through containerd's CRI, hvc against runc, and a Markdown section on stdout.

Each run is one `cri_pods.py bench KIND 1` (Tests/EndToEndTests/Fixtures): a containerd of its own
(1.6.20's CRI plugin), the same busybox image imported, then RunPodSandbox on a CNI bridge and
CreateContainer + StartContainer of two sleeping members, until ContainerStatus says both run;
then the host memory of the pod's processes; then StopPodSandbox and RemovePodSandbox. KIND is
the runtime handler: `hvc` (hvc-oci through a wrapper that gives it hvc's paths: one VM per pod)
or `runc`. One warm-up round not counted, then --runs rounds, hvc and runc alternating which goes
first; medians, and ratios of hvc's median to runc's. A failed run of either fails the bench.

Usage: pods.py --hvc-oci PATH --python PY --tmp DIR [--runs N]
PY is a Python with the CRI client (container-runtime-interface-api, grpcio, protobuf): the
venv that `make fuzz-deps` builds. Everything is made in a directory under DIR, removed at the end.
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
DRIVER = os.path.join(HERE, "..", "Tests", "EndToEndTests", "Fixtures", "cri_pods.py")
DEFAULT_ASSETS = os.path.join(HERE, "..", "build", "share", "hvc")
IMAGE = "docker.io/hvctest/pod:1"
KINDS = ("hvc", "runc")
RUN_TIMEOUT = 600.0


class BenchError(Exception):
    pass


def say(message):
    print(f"bench: {message}", file=sys.stderr, flush=True)


class Driver:
    """Runs cri_pods.py and gives its JSON; a TERM to this script reaches the child, whose own
    teardown is then waited for."""

    def __init__(self, python, workdir):
        self.python = python
        self.workdir = workdir
        self.child = None
        self.serial = 0

    def run(self, label, *argv, extra=()):
        self.serial += 1
        base = os.path.join(self.workdir, f"r{self.serial}")  # short: podman's runroot (make-image) takes 50 at most
        command = [self.python, DRIVER, "--base", base, *extra, *argv]
        self.child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, errors="replace")
        try:
            out, err = self.child.communicate(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.stop()
            self.child = None
            raise BenchError(f"{label}: cri_pods.py took over {RUN_TIMEOUT:.0f} s") from None
        # (interrupted, the child stays here for stop())
        code = self.child.returncode
        self.child = None
        try:
            result = json.loads(out)
        except ValueError:
            last = (err.strip().splitlines() or ["no output"])[-1]
            raise BenchError(f"{label}: cri_pods.py exited {code} without JSON: {last}") from None
        if code != 0 or result.get("error"):
            raise BenchError(f"{label}: {result.get('error') or f'cri_pods.py exited {code}'}")
        return result

    def stop(self):
        """TERM, and time for the child's teardown (CRI removal, containerd's stop, the sweep)."""
        child = self.child
        if child is None or child.poll() is not None:
            return
        child.terminate()
        try:
            child.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()


def leftovers(result):
    """What the driver's teardown had to clean besides its routine: the runtime's leaks."""
    return {k: v for k, v in (result.get("teardown") or {}).items() if k != "routine"}


def measure(driver, args, wrapper, image_tar, hvc_root):
    samples = {kind: [] for kind in KINDS}
    leaks = []
    for round_no in range(1 + args.runs):
        warm = round_no == 0
        order = KINDS if round_no % 2 == 0 else tuple(reversed(KINDS))
        parts = []
        for kind in order:
            extra = ["--runtime-wrapper", wrapper, "--image-tar", image_tar, "--image-name", IMAGE]
            if kind == "hvc":
                extra += ["--also-measure", hvc_root]
            result = driver.run(f"{kind} pod", "bench", kind, "1", extra=extra)
            run = result["runs"][0]
            left = leftovers(result)
            if left:
                leaks.append((kind, left))
                say(f"warning: {kind}: the driver's teardown found leftovers: {json.dumps(left)[:400]}")
            parts.append(f"{kind} {run['to_running_ms']:.0f}ms {run['memory_kib'] / 1024:.1f}MiB")
            if not warm:
                samples[kind].append(run)
        say(f"pods: {'warm-up' if warm else f'run {round_no}/{args.runs}'}: {', '.join(parts)}")
    return samples, leaks


def figure(runs, key):
    return [r[key] for r in runs]


def stop_remove(runs):
    return [r["stop_ms"] + r["remove_ms"] for r in runs]


def processes_seen(run):
    """`comm ×count` of the pod's processes in one run (the shim apart)."""
    counts = {}
    for p in run["processes"]:
        if "shim" not in p["found_by"]:
            counts[p["comm"]] = counts.get(p["comm"], 0) + 1
    return ", ".join(f"{comm} ×{n}" for comm, n in sorted(counts.items()))


def report(args, samples, leaks):
    hvc, runc = samples["hvc"], samples["runc"]
    rows = [
        ("time to a running pod of two containers (ms): RunPodSandbox → both members RUNNING",
         figure(hvc, "to_running_ms"), figure(runc, "to_running_ms"), "{:.0f}"),
        ("of which RunPodSandbox (ms)", figure(hvc, "run_pod_ms"), figure(runc, "run_pod_ms"), "{:.0f}"),
        ("memory per pod (MiB): PSS of the pod's processes, the shim apart",
         [v / 1024 for v in figure(hvc, "memory_kib")], [v / 1024 for v in figure(runc, "memory_kib")], "{:.1f}"),
        ("containerd-shim-runc-v2 of the pod (MiB PSS)", [v / 1024 for v in figure(hvc, "shim_kib")],
         [v / 1024 for v in figure(runc, "shim_kib")], "{:.1f}"),
        ("StopPodSandbox + RemovePodSandbox (ms)", stop_remove(hvc), stop_remove(runc), "{:.0f}"),
    ]
    lines = ["", "### Pods under containerd's CRI: hvc against runc", "",
             f"A pod of two sleeping busybox containers through containerd {args.containerd}'s CRI plugin, each run "
             f"with a containerd of its own; medians of {args.runs} runs (after one warm-up round), hvc and runc "
             "alternating which goes first. hvc is the `hvc` runtime handler (io.containerd.runc.v2 with hvc-oci as "
             "its binary: one VM per pod); runc is containerd's default. Last column: hvc's median ÷ runc's.", "",
             "| Figure | hvc median (min–max) | runc median (min–max) | hvc / runc |", "| --- | ---: | ---: | ---: |"]
    for label, mine, theirs, fmt in rows:
        a, b = statistics.median(mine), statistics.median(theirs)
        ratio = f"{a / b:.2f}×" if b > 0 else "n/a"
        lines.append(f"| {label} | {fmt.format(a)} ({fmt.format(min(mine))}–{fmt.format(max(mine))}) | "
                     f"{fmt.format(b)} ({fmt.format(min(theirs))}–{fmt.format(max(theirs))}) | {ratio} |")
    lines += ["", "Memory is read 1 s after both members run, from `/proc/PID/smaps_rollup` (PSS: shared pages divided "
              "among their users): the processes of the pod's containerd shim's tree (the shim is a subreaper, so a "
              "VMM a runtime starts stays in it), every process whose cgroup names the sandbox id or the run's cgroup "
              "parent, and every process whose command line names the sandbox id. "
              f"Found in the last run: hvc: {processes_seen(hvc[-1])}; runc: {processes_seen(runc[-1])}."]
    outside = [sum(p.get("pss_kib", 0) for p in r.get("outside_pod", [])) for r in hvc]
    if any(outside):
        lines.append(f"Besides, hvc processes of the bench's hvc root outside any pod (template keepers and the like): "
                     f"{statistics.median(outside) / 1024:.1f} MiB PSS (median), not counted above.")
    if leaks:
        kinds = sorted({k for k, _ in leaks})
        lines.append(f"The driver's teardown found things left after removal in {len(leaks)} run(s) "
                     f"({', '.join(kinds)}): see the bench's stderr.")
    return "\n".join(lines) + "\n"


def kill_leftovers(workdir):
    """A process still naming the private directory (left by an interrupted driver) is ours."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().decode(errors="replace")
        except OSError:
            continue
        if workdir + "/" in cmdline and int(pid) != os.getpid():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass


def unmount_under(workdir):
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in sorted((p for p in points if p.startswith(workdir + "/")), key=lambda p: p.count("/"), reverse=True):
        subprocess.run(["umount", "-l", point], stdin=subprocess.DEVNULL, capture_output=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hvc-oci", required=True, help="the hvc-oci binary")
    parser.add_argument("--python", default=os.environ.get("HVC_FUZZ_PYTHON", sys.executable),
                        help="a Python with the CRI client (default: $HVC_FUZZ_PYTHON, else this one)")
    parser.add_argument("--tmp", required=True, help="directory for the private state")
    parser.add_argument("--runs", type=int, default=7, help="counted runs of each kind (default 7)")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    # A TERM (from run.sh's cleanup) unwinds through the finally blocks like an error.
    signal.signal(signal.SIGTERM, lambda signo, frame: sys.exit(128 + signo))

    # make-image's podman takes a runroot of 50 characters at most: TMP/pods.XXXXXXXX/r1/mi/rr.
    if len(os.path.abspath(args.tmp)) + len("/pods.XXXXXXXX/r1/mi/rr") > 50:
        parser.error(f"--tmp {args.tmp} is too long a path for podman's runroot (make-image)")
    workdir = tempfile.mkdtemp(prefix="pods.", dir=os.path.abspath(args.tmp))
    driver = Driver(args.python, workdir)
    try:
        probe = subprocess.run([args.python, "-c", "import grpc, cri_api.v1.api_pb2_grpc"], stdin=subprocess.DEVNULL,
                               capture_output=True, text=True)
        if probe.returncode != 0:
            raise BenchError(f"{args.python} has no CRI client (make fuzz-deps builds the venv that has it): "
                             f"{(probe.stderr.strip().splitlines() or ['?'])[-1]}")
        version = subprocess.run(["containerd", "--version"], capture_output=True, text=True).stdout.split()
        args.containerd = version[2] if len(version) > 2 else "?"
        assets = os.path.abspath(os.environ.get("HVC_ASSETS", DEFAULT_ASSETS))
        hvc_root = os.path.join(workdir, "hvc-root")
        wrapper = os.path.join(workdir, "hvc-oci-wrapper")
        with open(wrapper, "w") as f:
            f.write("#!/bin/sh\n"
                    f"exec {os.path.abspath(args.hvc_oci)} --hvc-root={hvc_root} --hvc-run-root={workdir}/hvc-run "
                    f"--hvc-assets={assets} \"$@\"\n")
        os.chmod(wrapper, 0o755)
        image_tar = os.path.join(workdir, "pod.tar")
        driver.run("the image", "make-image", image_tar, extra=["--image-name", IMAGE])

        samples, leaks = measure(driver, args, wrapper, image_tar, hvc_root)
        sys.stdout.write(report(args, samples, leaks))
        return 0
    except BenchError as e:  # either kind failing is a failed bench: a figure without its peer is no ratio
        print(f"bench: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: error: interrupted", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # finish cleaning up
        driver.stop()
        kill_leftovers(workdir)
        unmount_under(workdir)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
