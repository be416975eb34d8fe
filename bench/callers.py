#!/usr/bin/env python3
"""`ctr run --rm` and `docker run --rm` of busybox `true`, with hvc-oci as their runtime against
runc, and a Markdown section on stdout.

containerd (its own config and state, no CRI plugin) through `ctr run --runc-binary`, and dockerd
(its own data root, `--bridge=none`, hvc-oci added as the runtime `hvc`) through
`docker run --runtime`, both `--rm` without a network. hvc-oci takes its VMs from a warm pool of
two of its shape, which hvcd (started here on hvc's state) refills; before every timed run, of
either runtime, the pool is full again (untimed), so a refill never lands in a run. Each caller's
two rows run round-robin after one warm-up round.

Then where a run's time goes: the same `ctr run --rm` with each runtime behind a logging wrapper
(bash, the time read from $EPOCHREALTIME: the wrapper adds about the same to every call of both),
and per call the medians of create, start, the command's run as the caller sees it (start's
return to the first delete) and the deletes.

Usage: callers.py --hvc PATH --tmp DIR [--runs N]
HVC_ROOT, HVC_RUN_ROOT and HVC_ASSETS name hvc's state and guest assets, as for hvc itself.
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time

from docker import busybox_tar

POOL_IMAGE = "hvc-oci-base:1"
POOL_SIZE = 2
IMAGE = "docker.io/library/callers-busybox:1"


class BenchError(Exception):
    pass


def say(message):
    print(f"bench: {message}", file=sys.stderr, flush=True)


def run(argv, timeout=180, check=True, env=None):
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, env=env)
    if check and done.returncode != 0:
        raise BenchError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()[-400:]}")
    return done


def timed(argv, timeout=180):
    started = time.monotonic()
    done = run(argv, timeout=timeout, check=False)
    elapsed = (time.monotonic() - started) * 1000
    if done.returncode != 0:
        raise BenchError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()[-400:]}")
    return elapsed


def wait_until(check, seconds, what):
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise BenchError(f"{what} within {seconds} s")
        time.sleep(0.05)


class Callers:
    """hvcd, containerd and dockerd of this bench, and the runtimes they are given."""

    def __init__(self, args, base):
        self.args = args
        self.base = base
        self.daemons = []
        self.hvc_oci = os.path.join(os.path.dirname(args.hvc), "hvc-oci")
        self.wrapper = self.write_wrapper("hvc-oci", f"exec {self.hvc_oci} --hvc-root={os.environ['HVC_ROOT']} "
                                          f"--hvc-run-root={os.environ['HVC_RUN_ROOT']} "
                                          f"--hvc-assets={os.environ['HVC_ASSETS']} \"$@\"")
        self.ctr = ["ctr", "-a", os.path.join(base, "containerd", "containerd.sock"), "-n", "callers"]
        self.docker = ["docker", "-H", "unix://" + os.path.join(base, "docker.sock")]
        self.serial = 0

    def write_wrapper(self, name, body, shell="/bin/sh"):
        """What containerd and dockerd are given as a runtime: they pass it no flags of its own."""
        path = os.path.join(self.base, name)
        with open(path, "w") as f:
            f.write(f"#!{shell}\n{body}\n")
        os.chmod(path, 0o755)
        return path

    def logging_wrapper(self, name, binary, log):
        """`binary` behind a wrapper appending `VERB START_S END_S` per call to `log`."""
        return self.write_wrapper(name, f"""started=$EPOCHREALTIME
"{binary}" "$@"
status=$?
verb=
for a in "$@"; do case $a in create|start|delete|kill|state) verb=$a; break ;; esac; done
echo "$verb $started $EPOCHREALTIME" >>"{log}"
exit $status""", shell="/bin/bash")

    def daemon(self, argv, log):
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=open(os.path.join(self.base, log), "w"), start_new_session=True)
        self.daemons.append(process)
        return process

    def start(self):
        hvcd = os.path.join(os.path.dirname(self.args.hvc), "hvcd")
        self.daemon([hvcd, "--root", os.environ["HVC_ROOT"], "--run-root", os.environ["HVC_RUN_ROOT"],
                     "--assets", os.environ["HVC_ASSETS"], "--socket", os.path.join(self.base, "hvcd.sock")], "hvcd.log")
        service = os.path.join(os.environ["HVC_RUN_ROOT"], "keepers.sock")
        wait_until(lambda: os.path.exists(service), 30, "hvcd did not start its keeper service")
        containerd = os.path.join(self.base, "containerd")
        os.makedirs(containerd, exist_ok=True)
        with open(os.path.join(containerd, "config.toml"), "w") as f:
            f.write(f'version = 2\nroot = "{containerd}/root"\nstate = "{containerd}/state"\n'
                    f'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n[grpc]\n  address = "{containerd}/containerd.sock"\n')
        self.daemon(["containerd", "--config", os.path.join(containerd, "config.toml")], "containerd.log")
        self.daemon(["dockerd", "--data-root", os.path.join(self.base, "docker-data"),
                     "--exec-root", os.path.join(self.base, "docker-exec"), "--pidfile", os.path.join(self.base, "docker.pid"),
                     "-H", "unix://" + os.path.join(self.base, "docker.sock"), "--iptables=false", "--ip6tables=false",
                     "--bridge=none", "--add-runtime", "hvc=" + self.wrapper,
                     "--containerd-namespace", "callers-docker", "--containerd-plugins-namespace", "callers-docker-plugins"],
                    "dockerd.log")
        wait_until(lambda: run(self.ctr + ["version"], check=False).returncode == 0, 60, "containerd did not answer")
        wait_until(lambda: run(self.docker + ["version"], check=False).returncode == 0, 60, "dockerd did not answer")
        # One busybox image for both: imported into dockerd, saved, imported into containerd.
        run(self.docker + ["import", busybox_tar(self.base), IMAGE])
        run(self.docker + ["save", "-o", os.path.join(self.base, "image.tar"), IMAGE])
        run(self.ctr + ["image", "import", os.path.join(self.base, "image.tar")])
        self.set_pool(POOL_SIZE)

    def set_pool(self, size):
        run([self.args.hvc, "pool", "set", POOL_IMAGE, str(size), "--network", "none"])

    def pool_full(self):
        def waiting():
            pools = json.loads(run([self.args.hvc, "pool", "ls", "--format", "json"]).stdout)
            return sum(p.get("waiting", 0) for p in pools if p.get("image") == POOL_IMAGE)
        wait_until(lambda: waiting() >= POOL_SIZE, 60, "the hvc-oci pool was not full again")

    def ctr_run(self, runtime):
        self.serial += 1
        binary = ["--runc-binary", runtime] if runtime else []
        return self.ctr + ["run", "--rm", *binary, IMAGE, f"callers-{self.serial}", "true"]

    def docker_run(self, runtime):
        return self.docker + ["run", "--rm", "--network", "none", "--runtime", runtime, IMAGE, "true"]

    def stop(self):
        try:
            self.set_pool(0)
        except BenchError as error:
            say(f"callers: {error}")
        for process in reversed(self.daemons):
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        subprocess.run(["umount", "-R", os.path.join(self.base, "docker-data")], stderr=subprocess.DEVNULL)
        # containerd's runc shim keeps its runtime's state under /run, by namespace.
        shutil.rmtree("/run/containerd/runc/callers", ignore_errors=True)


def round_robin(callers, rows, runs, label):
    """`rows` (label → argv maker) in turn, one warm-up round first; the pool full before each run."""
    times = {name: [] for name in rows}
    for round_no in range(runs + 1):
        parts = []
        for name, argv in rows.items():
            callers.pool_full()
            elapsed = timed(argv())
            parts.append(f"{name} {elapsed:.0f}ms")
            if round_no > 0:
                times[name].append(elapsed)
        say(f"{label}, round {round_no + 1}: {', '.join(parts)}")
    return times


def call_phases(log, started, ended):
    """From a logging wrapper's lines for one run: create, start, start's return → first delete, the deletes."""
    calls = []
    with open(log) as f:
        for line in f:
            verb, begin, end = line.split()
            begin, end = float(begin), float(end)
            if started <= begin <= ended:
                calls.append((verb, begin, end))
    create = [c for c in calls if c[0] == "create"]
    start = [c for c in calls if c[0] == "start"]
    deletes = [c for c in calls if c[0] == "delete"]
    if len(create) != 1 or len(start) != 1 or not deletes:
        raise BenchError(f"unexpected runtime calls in one ctr run: {[c[0] for c in calls]}")
    return {"create": (create[0][2] - create[0][1]) * 1000, "start": (start[0][2] - start[0][1]) * 1000,
            "command": (deletes[0][1] - start[0][2]) * 1000, "delete": sum(d[2] - d[1] for d in deletes) * 1000,
            "deletes": len(deletes), "calls": sum(c[2] - c[1] for c in calls) * 1000}


def breakdown(callers, runs):
    logs = {name: os.path.join(callers.base, f"{name}-calls.log") for name in ("hvc-oci", "runc")}
    wrappers = {"hvc-oci": callers.logging_wrapper("hvc-oci-logged", callers.wrapper, logs["hvc-oci"]),
                "runc": callers.logging_wrapper("runc-logged", shutil.which("runc"), logs["runc"])}
    phases = {name: [] for name in wrappers}
    walls = {name: [] for name in wrappers}
    for round_no in range(runs + 1):
        for name, wrapper in wrappers.items():
            callers.pool_full()
            started = time.time()
            elapsed = timed(callers.ctr_run(wrapper))
            if round_no > 0:
                phases[name].append(call_phases(logs[name], started, time.time()))
                walls[name].append(elapsed)
    return phases, walls


def section(args, rows, phases, walls):
    def median(values):
        return statistics.median(values)

    lines = ["", "### `ctr run` and `docker run` with hvc-oci as their runtime", "",
             f"containerd {args.containerd} through `ctr run --rm --runc-binary`, and dockerd {args.dockerd} "
             "(`--bridge=none`, hvc-oci added with `--add-runtime`) through `docker run --rm --network none --runtime`, "
             "busybox `true`; each against runc under the same daemon. hvc-oci is given as a /bin/sh wrapper that passes "
             "it this bench's hvc paths (the daemons pass a runtime no flags), and takes VMs from a warm pool of "
             f"{POOL_SIZE} of its shape that hvcd refills; before every run, of either runtime, the pool is full again "
             f"(untimed). Medians of {args.runs} runs after one warm-up round, each caller's rows in turn.", "",
             "| caller and runtime | median (ms) | min | max | hvc-oci / runc |", "| --- | ---: | ---: | ---: | ---: |"]
    for caller, (hvc_label, runc_label) in (("ctr", ("ctr-hvc", "ctr-runc")), ("docker", ("docker-hvc", "docker-runc"))):
        for label, name in ((f"`{caller} run --rm`, hvc-oci (a VM from the pool)", hvc_label),
                            (f"`{caller} run --rm`, runc", runc_label)):
            values = rows[name]
            ratio = f"{median(values) / median(rows[runc_label]):.2f}x" if name == hvc_label else ""
            lines.append(f"| {label} | {median(values):.1f} | {min(values):.1f} | {max(values):.1f} | {ratio} |")
    lines += ["", f"`ctr run` with hvc-oci ÷ with runc = **{median(rows['ctr-hvc']) / median(rows['ctr-runc']):.2f}x**; "
              f"`docker run --runtime hvc` ÷ `--runtime runc` = **{median(rows['docker-hvc']) / median(rows['docker-runc']):.2f}x**.", ""]
    lines += ["Where a `ctr run --rm` goes, per runtime call: the same run with each runtime behind a logging wrapper "
              f"(bash; it adds about the same to every call of both), medians of {args.runs} runs after one warm-up round. "
              "\"The command's run\" is from start's return to the first delete: the command running and its exit "
              "reaching containerd's shim.", "",
              "| Phase (ms) | hvc-oci | runc | hvc-oci − runc |", "| --- | ---: | ---: | ---: |"]
    named = (("create", "create"), ("start", "start"), ("the command's run", "command"),
             ("delete (all calls of a run)", "delete"), ("all runtime calls", "calls"))
    for label, key in named:
        hvc = median([p[key] for p in phases["hvc-oci"]])
        runc = median([p[key] for p in phases["runc"]])
        lines.append(f"| {label} | {hvc:.1f} | {runc:.1f} | {hvc - runc:+.1f} |")
    hvc_wall, runc_wall = median(walls["hvc-oci"]), median(walls["runc"])
    lines.append(f"| wall time of the run | {hvc_wall:.1f} | {runc_wall:.1f} | {hvc_wall - runc_wall:+.1f} |")
    deletes = sorted({p["deletes"] for p in phases["hvc-oci"] + phases["runc"]})
    lines += ["", f"containerd's shim calls delete {' or '.join(map(str, deletes))} time(s) per run.", ""]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--hvc", required=True)
    parser.add_argument("--tmp", required=True)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    for variable in ("HVC_ROOT", "HVC_RUN_ROOT", "HVC_ASSETS"):
        if not os.environ.get(variable):
            raise SystemExit(f"callers bench: {variable} is not set")
    base = os.path.join(args.tmp, "callers")
    os.makedirs(base, exist_ok=True)
    args.containerd = (run(["containerd", "--version"]).stdout.split() + ["?"] * 3)[2]
    args.dockerd = run(["dockerd", "--version"]).stdout.split(",")[0].replace("Docker version ", "").strip()
    callers = Callers(args, base)
    # run.sh ends a section with TERM: the pool, the daemons and containerd's /run state go too.
    signal.signal(signal.SIGTERM, lambda signo, frame: sys.exit(128 + signo))
    try:
        callers.start()
        rows = round_robin(callers, {"ctr-hvc": lambda: callers.ctr_run(callers.wrapper), "ctr-runc": lambda: callers.ctr_run(None)},
                           args.runs, "ctr")
        rows.update(round_robin(callers, {"docker-hvc": lambda: callers.docker_run("hvc"),
                                          "docker-runc": lambda: callers.docker_run("runc")}, args.runs, "docker"))
        phases, walls = breakdown(callers, args.runs)
        print(section(args, rows, phases, walls))
    except BenchError as error:
        raise SystemExit(f"callers bench: {error}")
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # finish cleaning up
        callers.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
