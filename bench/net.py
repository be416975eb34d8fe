#!/usr/bin/env python3
"""Container networking, hvc against podman with runc, and a Markdown section on stdout.

Measures, for each runtime, on the same image (static busybox plus iperf3 and its libraries):
  - TCP throughput from the host to a container and from one container to another (iperf3,
    5 s per run, median of --runs, default 7);
  - the round trip of a small HTTP GET through a published port (busybox httpd), a new
    connection each, median and p90 of 200.
Each phase runs round-robin: hvc, hvc with the guest CPU it had before (ERMS shown), podman, so
that drift hits all alike;
a failure of either fails the bench (a figure without its peer is no ratio).

Usage: net.py --hvc PATH --podman "PODMAN CMD" --tmp DIR [--runs N]
hvc works in a private root under DIR, removed at the end with its containers, templates and
network; podman uses the storage its command line names, and its containers and image go too.
"""
import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

IPERF_SECONDS = 5
GETS = 200
GET_PAUSE = 0.02
APPLETS = ["sh", "httpd", "mkdir", "echo", "sleep", "cat"]
DEFAULT_ASSETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build", "share", "hvc")


class BenchError(Exception):
    pass


class CommandFailed(BenchError):
    def __init__(self, message, stdout):
        super().__init__(message)
        self.stdout = stdout


def say(message):
    print(f"bench: {message}", file=sys.stderr, flush=True)


def run(argv, env=None, timeout=120.0, check=True, shown=None):
    """Runs argv; returns stdout. On failure raises BenchError with a one-line reason that names
    the command as `shown` (default argv): podman's storage options would hide the subcommand."""
    shown = " ".join((shown or argv)[:4])
    try:
        proc = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=timeout, text=True, errors="replace")
    except subprocess.TimeoutExpired:
        raise BenchError(f"`{shown} ...` timed out after {timeout:.0f}s") from None
    except OSError as e:  # a missing or unexecutable binary
        raise BenchError(f"cannot run `{shown} ...`: {e.strerror}: {argv[0]}") from None
    if check and proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise CommandFailed(f"`{shown} ...` exited {proc.returncode}: {last}", proc.stdout)
    return proc.stdout


# ---------------------------------------------------------------------------------------------
# the image


def build_tree(tree):
    """busybox with a few applets, iperf3 with every library ldd names, and /www/index.html."""
    os.makedirs(os.path.join(tree, "bin"))
    shutil.copy("/bin/busybox", os.path.join(tree, "bin/busybox"))
    for applet in APPLETS:
        os.symlink("busybox", os.path.join(tree, "bin", applet))
    for path in ["/usr/bin/iperf3"] + shared_libraries("/usr/bin/iperf3"):
        dest = tree + path
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copy(path, dest)  # follows symlinks: the library itself under the name ldd gives
    # iperf3 makes its send buffer with mkstemp in /tmp; without it every test fails.
    os.makedirs(os.path.join(tree, "tmp"))
    os.chmod(os.path.join(tree, "tmp"), 0o1777)
    os.makedirs(os.path.join(tree, "www"))
    with open(os.path.join(tree, "www/index.html"), "w") as f:
        f.write("ok\n")


def shared_libraries(binary):
    """Absolute paths in `ldd` output: the libraries and the dynamic loader (not the vDSO)."""
    paths = []
    for line in run(["ldd", binary]).splitlines():
        paths += [word for word in line.split() if word.startswith("/")]
    return paths


# ---------------------------------------------------------------------------------------------
# the runtimes: the same few verbs for both


class Hvc:
    image = "hvc-bench-net:latest"

    def __init__(self, path, workdir, label="hvc", key="hvc", env=None):
        """`env`: what else the environment sets, for a variant of hvc in the same store."""
        self.path, self.label, self.key = path, label, key
        self.env = dict(os.environ, HVC_ROOT=os.path.join(workdir, "hvc-root"),
                        HVC_RUN_ROOT=os.path.join(workdir, "hvc-run"),
                        HVC_ASSETS=os.environ.get("HVC_ASSETS", os.path.abspath(DEFAULT_ASSETS)), **(env or {}))
        self.names = []

    def hvc(self, *argv, timeout=120.0, check=True):
        return run([self.path, *argv], env=self.env, timeout=timeout, check=check, shown=["hvc", *argv])

    def load(self, tree, tarball):
        self.hvc("import", "--cmd", "sh", "--env", "PATH=/bin:/usr/bin", tree, self.image)

    def start(self, name, argv, publish=None):
        self.names.append(name)
        self.hvc("run", "-d", "--name", name, *(["-p", publish] if publish else []), self.image, *argv)

    def address(self, name):
        try:
            return json.loads(self.hvc("inspect", name))[0]["state"]["endpoint"]["address"]
        except (ValueError, LookupError, TypeError):
            raise BenchError(f"hvc inspect {name} shows no network endpoint address") from None

    def run(self, argv, timeout):
        return self.hvc("run", "--rm", self.image, *argv, timeout=timeout)

    def remove(self, name):
        self.hvc("rm", "-f", name, check=False)
        self.names.remove(name)

    def cleanup(self):
        if not os.path.isdir(self.env["HVC_ROOT"]):
            return  # hvc never ran
        for name in list(self.names):
            self.remove(name)
        # The template keeper and the network's bridge would outlive the private root otherwise.
        self.hvc("template", "rm", "--all", check=False)
        if "bridge" in self.hvc("network", "ls", check=False):
            self.hvc("network", "rm", "bridge", check=False)


class Podman:
    label, key = "podman (runc)", "podman"
    image = "localhost/hvc-bench-net:latest"
    # The host's hard RLIMIT_NOFILE is below podman's default, which runc then fails to set.
    limits = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]

    def __init__(self, command):
        self.command = command.split()
        self.names = []

    def podman(self, *argv, timeout=120.0, check=True):
        return run([*self.command, *argv], timeout=timeout, check=check, shown=["podman", *argv])

    def load(self, tree, tarball):
        self.podman("import", tarball, self.image)

    def start(self, name, argv, publish=None):
        self.names.append(name)
        self.podman("run", "-d", "--name", name, "--network", "bridge", *self.limits,
                    *(["-p", publish] if publish else []), self.image, *argv)

    def address(self, name):
        ip = self.podman("inspect", "-f", "{{.NetworkSettings.IPAddress}}", name).strip()
        if not ip:
            raise BenchError(f"podman inspect {name} shows no IP address (no bridge network?)")
        return ip

    def run(self, argv, timeout):
        return self.podman("run", "--rm", "--network", "bridge", *self.limits, self.image, *argv,
                           timeout=timeout)

    def remove(self, name):
        self.podman("rm", "-f", "-t", "0", name, check=False)
        self.names.remove(name)

    def cleanup(self):
        for name in list(self.names):
            self.remove(name)
        self.podman("rmi", "-f", self.image, check=False)

    def backend(self):
        return self.podman("info", "--format", "{{.Host.NetworkBackend}}", check=False).strip() or "?"


# ---------------------------------------------------------------------------------------------
# measurements


def iperf_bps(output):
    """bits_per_second received, from iperf3 -J output (which also carries its errors)."""
    try:
        result = json.loads(output)
    except ValueError:
        raise BenchError(f"iperf3 printed no JSON: {output.strip()[:200]!r}") from None
    if result.get("error"):
        raise BenchError(f"iperf3: {result['error']}")
    try:
        return result["end"]["sum_received"]["bits_per_second"]
    except (KeyError, TypeError):
        raise BenchError("iperf3's JSON has no end.sum_received.bits_per_second") from None


def iperf(client, wait=60.0):
    """One iperf3 run of client() (which returns its -J output); retries for up to `wait` s while
    the server does not listen or drops the control connection: it starts after `run -d`
    returns, and after each test it closes and reopens its socket, which takes a while in a TCG
    guest."""
    deadline = time.monotonic() + wait
    while True:
        try:
            out = client()
        except CommandFailed as e:  # iperf3 exits 1 on errors, which its JSON reports
            out = e.stdout
            if not out.lstrip().startswith("{"):
                raise
        try:
            return iperf_bps(out)
        except BenchError as e:
            transient = "unable to connect" in str(e) or "control message" in str(e)
            if not transient or time.monotonic() > deadline:
                raise
        time.sleep(0.5)


def http_get_ms(port):
    """One GET of /index.html on a new connection, in ms."""
    start = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/index.html")
        response = conn.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException) as e:
        raise BenchError(f"GET 127.0.0.1:{port}/index.html: {e}") from None
    finally:
        conn.close()
    elapsed = (time.monotonic() - start) * 1000.0
    if response.status != 200 or body != b"ok\n":
        raise BenchError(f"GET 127.0.0.1:{port}/index.html: {response.status} {body[:40]!r}")
    return elapsed


def wait_http(port, wait=60.0):
    """Until the published port answers: httpd starts after `run -d` returns."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return http_get_ms(port)
        except BenchError as e:
            if time.monotonic() > deadline:
                raise BenchError(f"127.0.0.1:{port} did not answer within {wait:.0f}s: {e}") from None
        time.sleep(0.5)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def shows_erms(rt):
    """Whether the guest's (or container's) CPU shows ERMS, from its /proc/cpuinfo."""
    cpuinfo = rt.run(["/bin/cat", "/proc/cpuinfo"], timeout=120)
    flags = [line for line in cpuinfo.splitlines() if line.startswith("flags")]
    if not flags:
        raise BenchError(f"{rt.label}: /proc/cpuinfo has no flags line")
    return "erms" in flags[0].split()


def measure(runtimes, runs):
    """The four figures of each runtime, {label: {figure: value}}. Every phase runs round-robin,
    one run of each runtime in turn, so that the machine's drift hits all of them alike; at most
    two containers of each runtime run at once."""
    prefix = f"hvc-bench-net-{os.getpid()}"
    servers, clients = {}, {}
    for rt in runtimes:
        servers[rt.label] = f"{prefix}-{rt.key}-iperf"
        rt.start(servers[rt.label], ["/usr/bin/iperf3", "-s"])
        clients[rt.label] = ["-c", rt.address(servers[rt.label]), "-t", str(IPERF_SECONDS), "-J"]
    host = {rt.label: [] for rt in runtimes}
    peer = {rt.label: [] for rt in runtimes}
    for i in range(runs):
        for rt in runtimes:
            client = clients[rt.label]
            host[rt.label].append(iperf(lambda: run(["iperf3", *client], timeout=IPERF_SECONDS + 60)))
            say(f"{rt.label}: host → container run {i + 1}/{runs}: {rate(host[rt.label][-1])}")
    for i in range(runs):
        for rt in runtimes:
            client = clients[rt.label]
            peer[rt.label].append(iperf(lambda: rt.run(["/usr/bin/iperf3", *client], timeout=IPERF_SECONDS + 120)))
            say(f"{rt.label}: container → container run {i + 1}/{runs}: {rate(peer[rt.label][-1])}")
    for rt in runtimes:
        rt.remove(servers[rt.label])

    webs, ports = {}, {}
    for rt in runtimes:
        webs[rt.label], ports[rt.label] = f"{prefix}-{rt.key}-httpd", free_port()
        rt.start(webs[rt.label], ["/bin/httpd", "-f", "-p", "80", "-h", "/www"], publish=f"{ports[rt.label]}:80")
        wait_http(ports[rt.label])
    gets = {rt.label: [] for rt in runtimes}
    for _ in range(GETS):
        for rt in runtimes:
            gets[rt.label].append(http_get_ms(ports[rt.label]))
            # What a server does after its answer (the handler's exit, the connection's close)
            # ends before the next runtime's GET, which it would otherwise slow on two cores.
            time.sleep(GET_PAUSE)
    figures = {}
    for rt in runtimes:
        rt.remove(webs[rt.label])
        p90 = statistics.quantiles(gets[rt.label], n=10)[8]
        say(f"{rt.label}: {GETS} GETs through port {ports[rt.label]}: median {statistics.median(gets[rt.label]):.2f} ms, p90 {p90:.2f} ms")
        figures[rt.label] = {"host": statistics.median(host[rt.label]), "peer": statistics.median(peer[rt.label]),
                             "get": statistics.median(gets[rt.label]), "get90": p90}
    return figures


# ---------------------------------------------------------------------------------------------
# report


def rate(bps):
    return f"{bps / 1e9:.2f} Gbit/s" if bps >= 1e9 else f"{bps / 1e6:.0f} Mbit/s"


def report(runs, hvc, before, podman, facts):
    rows = [("host", f"TCP host → container (iperf3, {IPERF_SECONDS} s, median of {runs})", rate),
            ("peer", f"TCP container → container (iperf3, {IPERF_SECONDS} s, median of {runs})", rate),
            ("get", f"HTTP GET via a published port, new connection each (median of {GETS})",
             lambda v: f"{v:.2f} ms"),
            ("get90", f"same, p90 of {GETS}", lambda v: f"{v:.2f} ms")]
    lines = ["### Network (`bench/net.py`)", ""]
    if before:
        lines += ["| Figure | hvc | hvc, guest CPU with ERMS (before) | podman (runc) | hvc / before | hvc / podman |",
                  "| --- | ---: | ---: | ---: | ---: | ---: |"]
    else:
        lines += ["| Figure | hvc | podman (runc) | hvc / podman |", "| --- | ---: | ---: | ---: |"]
    for key, label, fmt in rows:
        old = f" {fmt(before[key])} |" if before else ""
        versus = f" {hvc[key] / before[key]:.2f}× |" if before else ""
        lines.append(f"| {label} | {fmt(hvc[key])} |{old} {fmt(podman[key])} |{versus} {hvc[key] / podman[key]:.2f}× |")
    lines += ["", facts + "."]
    return "\n".join(lines) + "\n\n"


# ---------------------------------------------------------------------------------------------


def kill_leftovers(workdir):
    """Any process still naming our private directory (an hvc or QEMU left by a failure) is ours."""
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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hvc", required=True, help="the hvc binary")
    parser.add_argument("--podman", required=True, help="podman command with its private storage options")
    parser.add_argument("--tmp", required=True, help="directory for the private state")
    parser.add_argument("--runs", type=int, default=7, help="iperf3 runs of each kind (default 7)")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    # A TERM (from run.sh's cleanup) unwinds through the finally blocks like an error.
    signal.signal(signal.SIGTERM, lambda signo, frame: sys.exit(128 + signo))

    workdir = tempfile.mkdtemp(prefix="net.", dir=os.path.abspath(args.tmp))
    hvc, podman = Hvc(os.path.abspath(args.hvc), workdir), Podman(args.podman)
    # The same hvc with the guest CPU it had before ERMS and FSRM were hidden, in the same store.
    before = Hvc(os.path.abspath(args.hvc), workdir, label="hvc (ERMS shown)", key="erms", env={"HVC_GUEST_ERMS": "on"})
    try:
        tree, tarball = os.path.join(workdir, "tree"), os.path.join(workdir, "tree.tar")
        build_tree(tree)
        run(["tar", "-C", tree, "-cf", tarball, "."])
        version = run(["iperf3", "--version"]).splitlines()[0]

        say("network: hvc and podman (runc), round-robin")
        hvc.load(tree, tarball)
        # hvc hides ERMS from TCG guests only; the old CPU's column is there only where the two
        # guests' CPUs really differ.
        runtimes = [hvc, before, podman]
        new, old = shows_erms(hvc), shows_erms(before)
        if new == old:
            say("network: hvc's guest CPU is the same with HVC_GUEST_ERMS=on (KVM): no column for the old one")
            runtimes.remove(before)
        elif new:
            raise BenchError("hvc's own guest shows ERMS and the one with HVC_GUEST_ERMS=on does not")
        try:
            podman.load(tree, tarball)
        except BenchError as e:  # a figure without its peer is no ratio: the bench fails
            raise BenchError(f"podman (runc), the peer, failed: {e}")
        figures = measure(runtimes, args.runs)
        facts = (f"{version}, the same binary in both images; hvc's default network `bridge`; podman's default "
                 f"bridge network, network backend {podman.backend()}; each phase round-robin, "
                 + ("hvc, hvc with the old guest CPU (`HVC_GUEST_ERMS=on`: ERMS and FSRM shown, so the guest "
                    "copies a byte per TCG step; each guest's /proc/cpuinfo checked) and podman in turn"
                    if before in runtimes else "hvc and podman in turn"))
        sys.stdout.write(report(args.runs, figures[hvc.label], figures.get(before.label), figures[podman.label], facts))
        return 0
    except BenchError as e:
        print(f"bench: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: error: interrupted", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # finish cleaning up
        for cleanup in (before.cleanup, hvc.cleanup, podman.cleanup):
            try:
                cleanup()
            except BenchError as e:  # a hung command: carry on with the rest
                say(f"warning: cleanup: {e}")
        kill_leftovers(workdir)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
