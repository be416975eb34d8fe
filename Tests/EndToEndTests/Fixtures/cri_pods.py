#!/usr/bin/env python3
"""Pods through containerd's CRI: a private containerd, one scenario, one JSON object on stdout.

usage: cri_pods.py --base DIR [--runtime-wrapper PATH] --image-tar PATH [--image-name NAME]
                   [--containerd-log FILE] [--also-measure STRING] SCENARIO ARGS...
       cri_pods.py --base DIR [--image-name NAME] make-image OUTPUT_TAR

NAME defaults to docker.io/hvctest/pod:1 (what make-image names it); it is also the sandbox
(pause) image. Without --runtime-wrapper there is no hvc handler. --containerd-log keeps
containerd's log in FILE (otherwise it is in DIR and goes with it). --also-measure (bench): also
report processes outside the pod whose command line contains STRING (say, hvc's root, for
template keepers).

Scenarios:
  pod HANDLER          a pod of two containers (busybox httpd "web" and a sleeping "client") on a
                       CNI bridge: what each container sees (boot id, kernel, hostname, its pid 1),
                       the page fetched by the client over localhost and by the host over the pod's
                       IP, the statuses, the stop and remove times and what remains after removal
  bad-member HANDLER   error paths: a 64 GiB member in a pod of 256 MiB (pod resources, which
                       containerd passes on as io.kubernetes.cri.sandbox-memory), a member created
                       after StopPodSandbox, and (only when HVC_KILL_VMM_CMD is set: a shell command
                       run with the sandbox id as $1, CRI_PODS_BASE, CRI_PODS_SOCKET and
                       CRI_PODS_SANDBOX_PID in its environment) a member's status until it leaves
                       RUNNING (30 s at most) after that command killed the pod's VMM
  bench HANDLER N      N pods one after another: time to a running pod of two sleepers, the host
                       memory (PSS) of the pod's processes, the stop and remove times
  make-image OUTPUT    a docker-archive of static busybox with applet links and /www/index.html,
                       Cmd ["/bin/sleep","1000000"] so that it is the pause image too (podman)

HANDLER is `runc` (the default runtime of the private containerd) or `hvc` (io.containerd.runc.v2
with BinaryName = --runtime-wrapper, a script that runs hvc-oci with hvc's paths).

Everything lives under DIR (created if missing, which must otherwise be empty): containerd's root,
state, socket and log, the CNI conflist and host-local's leases, runc's state, the pods' logs and
network namespaces. The pods' cgroups sit under a parent of the run's own (/hvcpod-RUNID), the CNI
bridge is named after the run, the subnet is one no host route uses. At the end, failed or not,
every pod left is stopped and removed through CRI, containerd is stopped (TERM, then KILL), any
process of the run still alive (the shims' trees, the pods' cgroups, anything naming the socket or
the runtime roots) is killed, DIR's mounts are unmounted, the cgroups, bridge, CNI cache files and
shim sockets go, and DIR is emptied (and removed if this made it). What that teardown had to do is
in the JSON's "teardown" key; every key in it but "routine" (containerd's stop, the bridge, libcni's
empty cache directories when no other run is going) is something the scenario left behind. A
process outside everything above (say, a VMM that left the shim's tree and cgroups and does not name
the sandbox id) is not found: the caller's own leak checks see it.

The JSON holds raw observations, not judgements. Exit status: 0 when the scenario ran to its end
(its CRI calls may have failed: the errors are in the JSON), 1 when it was cut short ("error"), 2
for bad usage. Env: HVC_KILL_VMM_CMD (bad-member), CRI_PODS_CONTAINERD (default
/usr/bin/containerd), CRI_PODS_CTR (default /usr/bin/ctr).
"""
import argparse
import atexit
import ctypes
import fcntl
import hashlib
import ipaddress
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
import traceback
import urllib.request

# grpc's fork handlers only warn when this script runs a subprocess while its channel is open.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

PAGE = "served-from-a-pod\n"
DEFAULT_IMAGE = "docker.io/hvctest/pod:1"
APPLETS = ["sh", "echo", "cat", "ls", "uname", "sleep", "id", "httpd", "wget", "hostname", "tty", "ip", "wc",
           "nc", "printf", "kill", "ps", "mount", "grep"]
SLEEPER = ["/bin/sleep", "1000000"]
WEB = ["/bin/httpd", "-f", "-p", "8080", "-h", "/www"]
# In the client: the page from web over the pod's loopback. No -T: Debian 12's static busybox
# wget dies of SIGSEGV with a timeout option (exit 139, in a runc container and in a chroot
# alike); without it, and with a numeric address (no NSS), it works. ExecSync's timeout bounds it.
FETCH = ["/bin/wget", "-q", "-O", "-", "http://127.0.0.1:8080/"]
PROBES = {
    "boot_id": ["/bin/cat", "/proc/sys/kernel/random/boot_id"],
    "uname_r": ["/bin/uname", "-r"],
    "hostname": ["/bin/hostname"],
    "pid1_cmdline": ["/bin/cat", "/proc/1/cmdline"],
}
BIG_MEMORY = 64 << 30
POD_MEMORY = 256 << 20  # bad-member's pod: LinuxPodSandboxConfig.resources.memory_limit_in_bytes
CONTAINERD = os.environ.get("CRI_PODS_CONTAINERD", "/usr/bin/containerd")
CTR = os.environ.get("CRI_PODS_CTR", "/usr/bin/ctr")
CNI_BIN = "/usr/lib/cni"
CNI_CACHE = "/var/lib/cni"
SHIM_SOCKETS = "/run/containerd/s"
NAMESPACE = "k8s.io"
MNT_DETACH = 2


class Failure(Exception):
    """The scenario cannot go on; the message goes to the JSON's "error"."""


def ms(seconds):
    return round(seconds * 1000.0, 1)


def say(message):
    print(f"cri_pods: {message}", file=sys.stderr, flush=True)


def text(data):
    return data.decode(errors="replace") if isinstance(data, bytes) else data


def run_command(argv, timeout=120.0, env=None):
    """(returncode, stdout, stderr); a missing binary or a timeout is a Failure."""
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise Failure(f"`{' '.join(argv[:3])} ...` timed out after {timeout:.0f}s") from None
    except OSError as e:
        raise Failure(f"cannot run {argv[0]}: {e.strerror}") from None
    return proc.returncode, text(proc.stdout), text(proc.stderr)


def read(path, default=None):
    try:
        with open(path, "rb") as f:
            return text(f.read())
    except OSError:
        return default


# ---------------------------------------------------------------------------------------------
# the image


def make_image(directory, output, name=DEFAULT_IMAGE):
    """Writes a docker-archive of static busybox (applet links), /www/index.html holding PAGE and
    Cmd ["/bin/sleep","1000000"], made by podman with private storage in `directory`/mi (removed
    again). Returns what podman said."""
    work = os.path.join(directory, "mi")
    # podman 4.3 refuses a runroot longer than 50 characters.
    if len(f"{work}/rr") > 50:
        raise Failure(f"podman's runroot {work}/rr would be longer than 50 characters: give a shorter directory")
    os.makedirs(work)
    podman = ["/usr/bin/podman", "--root", f"{work}/root", "--runroot", f"{work}/rr", "--tmpdir", f"{work}/libpod",
              "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "none"]
    env = dict(os.environ, TMPDIR=f"{work}/tmp")
    os.makedirs(env["TMPDIR"])
    try:
        tree = f"{work}/tree"
        for d in ["bin", "etc", "proc", "sys", "dev", "tmp", "www", "root"]:
            os.makedirs(f"{tree}/{d}")
        os.chmod(f"{tree}/tmp", 0o1777)
        shutil.copy("/bin/busybox", f"{tree}/bin/busybox")
        for applet in APPLETS:
            os.symlink("busybox", f"{tree}/bin/{applet}")
        with open(f"{tree}/www/index.html", "w") as f:
            f.write(PAGE)

        def owned_by_root(info):
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            return info
        with tarfile.open(f"{work}/tree.tar", "w") as tar:
            tar.add(tree, arcname=".", filter=owned_by_root)
        rc, out, err = run_command(podman + ["import", "--change", 'CMD ["/bin/sleep","1000000"]',
                                             "--change", "ENV PATH=/bin", f"{work}/tree.tar", name], env=env)
        if rc != 0:
            raise Failure(f"podman import exited {rc}: {err.strip()}")
        if os.path.exists(output):
            os.unlink(output)
        rc, out2, err = run_command(podman + ["save", "--format", "docker-archive", "-o", output, name], env=env)
        if rc != 0:
            raise Failure(f"podman save exited {rc}: {err.strip()}")
        return {"image_tar": output, "image_name": name, "image_id": out.strip()}
    finally:
        subprocess.run(podman + ["rmi", "-af"], stdin=subprocess.DEVNULL, capture_output=True, env=env)
        unmount_under(work)
        if not mounts_under(work):
            shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# the host: processes, mounts, cgroups


def processes():
    """{pid: {"ppid", "comm", "cmdline", "cgroup"}} for every process readable now."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = read(f"/proc/{entry}/stat")
        if stat is None:
            continue
        comm = stat[stat.find("(") + 1:stat.rfind(")")]
        ppid = int(stat[stat.rfind(")") + 2:].split()[1])
        cmdline = (read(f"/proc/{entry}/cmdline") or "").replace("\0", " ").strip()
        table[int(entry)] = {"ppid": ppid, "comm": comm, "cmdline": cmdline,
                             "cgroup": read(f"/proc/{entry}/cgroup") or ""}
    return table


def alive(pid):
    """Running or sleeping: not gone and not a zombie waiting for its parent."""
    stat = read(f"/proc/{pid}/stat")
    return stat is not None and stat[stat.rfind(")") + 2:][:1] != "Z"


def start_time(pid):
    """The process's start (clock ticks after boot): tells a pid from its reuse."""
    stat = read(f"/proc/{pid}/stat")
    return int(stat[stat.rfind(")") + 2:].split()[19]) if stat else None


def descendants(table, roots):
    children = {}
    for pid, p in table.items():
        children.setdefault(p["ppid"], []).append(pid)
    found, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        for child in children.get(pid, []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def ancestors_of_self():
    mine, pid = {os.getpid()}, os.getpid()
    while pid > 1:
        stat = read(f"/proc/{pid}/stat")
        if stat is None:
            break
        pid = int(stat[stat.rfind(")") + 2:].split()[1])
        mine.add(pid)
    return mine


def smaps_rollup(pid):
    """Pss and its parts in KiB (empty when the process is gone)."""
    figures = {}
    for line in (read(f"/proc/{pid}/smaps_rollup") or "").splitlines():
        key, _, value = line.partition(":")
        if key in ("Rss", "Pss", "Pss_Anon", "Pss_File", "Pss_Shmem", "SwapPss"):
            figures[key.lower() + "_kib"] = int(value.split()[0])
    return figures


def _unescape_mount(field):
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def mountinfo():
    """[(mount point, fstype, root)] of this mount namespace."""
    out = []
    for line in (read("/proc/self/mountinfo") or "").splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        out.append((_unescape_mount(fields[4]), right.split()[0], _unescape_mount(fields[3])))
    return out


def mounts_under(directory):
    directory = directory.rstrip("/")
    return [m for m, _, _ in mountinfo() if m == directory or m.startswith(directory + "/")]


def unmount_under(directory):
    """Lazily unmounts everything at or under directory, deepest first; returns what it unmounted."""
    libc = ctypes.CDLL(None, use_errno=True)
    done = []
    for _ in range(8):
        found = mounts_under(directory)
        if not found:
            break
        for m in sorted(found, key=lambda p: p.count("/"), reverse=True):
            if libc.umount2(m.encode(), MNT_DETACH) == 0:
                done.append(m)
    return done


def cgroup_dirs(relative):
    """The directories of cgroup `relative` (like /hvcpod-x) in every mounted hierarchy."""
    dirs = []
    for point, fstype, root in mountinfo():
        if fstype in ("cgroup", "cgroup2") and root == "/":
            path = point + relative
            if os.path.isdir(path) and path not in dirs:
                dirs.append(path)
    return dirs


def cgroup_tree(top):
    """top and every cgroup under it, deepest first."""
    found = []
    for dirpath, dirnames, _ in os.walk(top):
        found.append(dirpath)
    return sorted(found, key=lambda p: p.count("/"), reverse=True)


def cgroup_pids(top):
    pids = set()
    for d in cgroup_tree(top):
        for line in (read(f"{d}/cgroup.procs") or "").split():
            pids.add(int(line))
    return pids


_RUN_LOCK = None


def join_runs():
    """Holds a shared lock on this script's file for the life of the run (no file of its own)."""
    global _RUN_LOCK
    _RUN_LOCK = os.open(os.path.abspath(__file__), os.O_RDONLY | os.O_CLOEXEC)
    fcntl.flock(_RUN_LOCK, fcntl.LOCK_SH)


def sole_run():
    """True when no other run of this script holds its lock (ours becomes exclusive)."""
    if _RUN_LOCK is None:
        return False
    try:
        fcntl.flock(_RUN_LOCK, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


def routes_and_addresses():
    """IPv4 networks the host already uses: every route of every table, every address."""
    nets = []
    for argv in (["ip", "-j", "-4", "route", "show", "table", "all"], ["ip", "-j", "-4", "addr", "show"]):
        rc, out, _ = run_command(argv, timeout=10)
        if rc != 0:
            raise Failure(f"{' '.join(argv)} exited {rc}")
        for entry in json.loads(out or "[]"):
            if "dst" in entry:
                dst = entry["dst"]
                if dst == "default":
                    continue
                try:
                    nets.append(ipaddress.ip_network(dst, strict=False))
                except ValueError:
                    pass
            for a in entry.get("addr_info", []):
                nets.append(ipaddress.ip_network(f"{a['local']}/{a.get('prefixlen', 32)}", strict=False))
    return nets


def free_subnet():
    used = routes_and_addresses()
    rng = random.SystemRandom()
    for _ in range(500):
        candidate = ipaddress.ip_network(f"10.{rng.randrange(64, 250)}.{rng.randrange(0, 256)}.0/24")
        if not any(candidate.overlaps(n) for n in used):
            return candidate
    raise Failure("no free 10.x.y.0/24 subnet found")


# ---------------------------------------------------------------------------------------------
# a private containerd and its CRI client


class Cluster:
    """One containerd under `base`, its CNI network, and what is needed to take it all down."""

    def __init__(self, base, wrapper, image_tar, image_name, containerd_log=None):
        self.base = base
        self.wrapper = wrapper
        self.image_tar = image_tar
        self.image_name = image_name
        self.run_id = secrets.token_hex(4)
        self.sock = f"{base}/containerd.sock"
        self.log_path = containerd_log or f"{base}/containerd.log"
        self.bridge = f"hvcp{self.run_id}"  # 12 characters: IFNAMSIZ is 16
        self.network = f"hvcpod-{self.run_id}"
        self.cgroup_parent = f"/hvcpod-{self.run_id}"
        self.leases = f"{base}/cni-leases"
        self.runc_roots = [f"{base}/runc-root", f"{base}/hvc-runc-root"]
        self.bundles = f"{base}/state/io.containerd.runtime.v2.task/{NAMESPACE}"
        self.process = None
        self.channel = None
        self.runtime = None
        self.images = None
        self.api = None
        self.ids = set()  # every sandbox and container id seen
        self.subnet = None
        self.runtime_logs = {}
        self._tap_stop = threading.Event()
        self._tap = None
        self.torn_down = None
        self.also_measure = None

    # --- setup ------------------------------------------------------------------------------

    def config(self):
        q = json.dumps  # a JSON string is a TOML basic string for these paths
        hvc = ""
        if self.wrapper:
            hvc = f"""
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.hvc]
      runtime_type = "io.containerd.runc.v2"
      pod_annotations = ["io.hvc.*"]
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.hvc.options]
        BinaryName = {q(self.wrapper)}
        Root = {q(self.runc_roots[1])}
"""
        return f"""version = 2
root = {q(self.base + "/root")}
state = {q(self.base + "/state")}
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = {q(self.sock)}
[plugins."io.containerd.internal.v1.opt"]
  path = {q(self.base + "/opt")}
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = {q(self.image_name)}
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = {q(CNI_BIN)}
    conf_dir = {q(self.base + "/cni")}
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = {q(self.runc_roots[0])}
{hvc}"""

    def conflist(self):
        return {
            "cniVersion": "0.4.0",
            "name": self.network,
            "plugins": [{
                "type": "bridge",
                "bridge": self.bridge,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {"type": "host-local", "dataDir": self.leases,
                         "ranges": [[{"subnet": str(self.subnet)}]], "routes": [{"dst": "0.0.0.0/0"}]},
            }],
        }

    def start(self):
        for path in (self.sock + ".ttrpc",):
            if len(path) >= 108:
                raise Failure(f"socket path too long for a unix socket ({len(path)} bytes): {path}")
        for d in ["cni", "logs", self.leases, *self.runc_roots]:
            os.makedirs(os.path.join(self.base, d), exist_ok=True)
        self.subnet = free_subnet()
        with open(f"{self.base}/cni/10-{self.network}.conflist", "w") as f:
            json.dump(self.conflist(), f, indent=2)
        with open(f"{self.base}/config.toml", "w") as f:
            f.write(self.config())
        log = open(self.log_path, "ab")
        try:
            self.process = subprocess.Popen([CONTAINERD, "--config", f"{self.base}/config.toml"], stdin=subprocess.DEVNULL,
                                            stdout=log, stderr=log, start_new_session=True)
        finally:
            log.close()
        self.connect()
        deadline = time.monotonic() + 30
        while True:
            if self.process.poll() is not None:
                raise Failure(f"containerd exited {self.process.returncode} at start: {self.log_tail(5)}")
            if os.path.exists(self.sock):
                try:
                    version = self.runtime.Version(self.api.VersionRequest(), timeout=2)
                    break
                except Exception:  # grpc.RpcError while the CRI plugin comes up
                    pass
            if time.monotonic() > deadline:
                raise Failure(f"containerd's CRI did not answer on {self.sock} in 30 s: {self.log_tail(5)}")
            time.sleep(0.1)
        self._tap = threading.Thread(target=self._watch_runtime_logs, daemon=True)
        self._tap.start()
        return {"runtime_name": version.runtime_name, "runtime_version": version.runtime_version,
                "runtime_api_version": version.runtime_api_version}

    def connect(self):
        import grpc
        from cri_api.v1 import api_pb2, api_pb2_grpc
        self.grpc = grpc
        self.api = api_pb2
        self.channel = grpc.insecure_channel(f"unix://{self.sock}", options=[("grpc.enable_http_proxy", 0)])
        self.runtime = api_pb2_grpc.RuntimeServiceStub(self.channel)
        self.images = api_pb2_grpc.ImageServiceStub(self.channel)

    def import_image(self):
        rc, out, err = run_command([CTR, "-a", self.sock, "-n", NAMESPACE, "images", "import", self.image_tar], timeout=300)
        result = {"ctr_exit": rc, "ctr_stdout": out, "ctr_stderr": err}
        if rc != 0:
            raise Failure(f"ctr images import exited {rc}: {err.strip()}")
        status = self.images.ImageStatus(self.api.ImageStatusRequest(image=self.api.ImageSpec(image=self.image_name)), timeout=30)
        if not status.image.id:
            raise Failure(f"{self.image_name} is not in containerd's k8s.io images after the import: {out.strip()}")
        result.update(image_id=status.image.id, repo_tags=list(status.image.repo_tags))
        return result

    def _watch_runtime_logs(self):
        """Keeps the end of each bundle's log.json as it grows: containerd removes a failed bundle
        tens of milliseconds after the runtime wrote its error there."""
        sizes = {}
        while not self._tap_stop.wait(0.02):
            try:
                entries = list(os.scandir(self.bundles))
            except OSError:
                continue
            for entry in entries:
                try:
                    with open(f"{entry.path}/log.json", "rb") as f:
                        size = os.fstat(f.fileno()).st_size
                        if size == sizes.get(entry.name) or size == 0:
                            continue
                        sizes[entry.name] = size
                        f.seek(max(0, size - 6000))
                        self.runtime_logs[entry.name] = text(f.read())
                except OSError:
                    pass

    def log_tail(self, lines=40, only_problems=False):
        content = read(self.log_path, "") or ""
        rows = content.splitlines()
        if only_problems:
            rows = [r for r in rows if "level=error" in r or "level=warning" in r or "level=fatal" in r or "panic" in r]
        return "\n".join(rows[-lines:])

    # --- CRI calls ----------------------------------------------------------------------------

    def call(self, method, request, timeout=120.0, service=None):
        """(response, None) or (None, {"code", "details"}); the time is in the third item (ms)."""
        stub = service or self.runtime
        started = time.monotonic()
        try:
            response = getattr(stub, method)(request, timeout=timeout)
            return response, None, ms(time.monotonic() - started)
        except self.grpc.RpcError as e:
            return None, {"code": e.code().name, "details": e.details()}, ms(time.monotonic() - started)

    def pod_config(self, name, memory=0):
        """As kubelet makes it; `memory` (bytes) becomes LinuxPodSandboxConfig.resources, which
        containerd passes on as the io.kubernetes.cri.sandbox-memory annotation."""
        a = self.api
        os.makedirs(f"{self.base}/logs/{name}", exist_ok=True)
        namespaces = a.NamespaceOption(network=a.NamespaceMode.Value("POD"), pid=a.NamespaceMode.Value("CONTAINER"),
                                       ipc=a.NamespaceMode.Value("POD"))
        return a.PodSandboxConfig(
            metadata=a.PodSandboxMetadata(name=name, uid=f"uid-{name}-{self.run_id}", namespace="default", attempt=0),
            hostname=name,
            log_directory=f"{self.base}/logs/{name}",
            labels={"hvc-test-run": self.run_id},
            linux=a.LinuxPodSandboxConfig(cgroup_parent=self.cgroup_parent,
                                          security_context=a.LinuxSandboxSecurityContext(namespace_options=namespaces),
                                          resources=a.LinuxContainerResources(memory_limit_in_bytes=memory) if memory else None))

    def run_pod(self, name, handler, memory=0):
        config = self.pod_config(name, memory)
        response, error, took = self.call("RunPodSandbox", self.api.RunPodSandboxRequest(config=config, runtime_handler=handler),
                                          timeout=300)
        if response:
            self.ids.add(response.pod_sandbox_id)
        return (response.pod_sandbox_id if response else None), config, error, took

    def container_config(self, name, argv, memory=0):
        a = self.api
        namespaces = a.NamespaceOption(network=a.NamespaceMode.Value("POD"), pid=a.NamespaceMode.Value("CONTAINER"),
                                       ipc=a.NamespaceMode.Value("POD"))
        return a.ContainerConfig(
            metadata=a.ContainerMetadata(name=name, attempt=0),
            image=a.ImageSpec(image=self.image_name),
            command=argv,
            log_path=f"{name}.log",
            linux=a.LinuxContainerConfig(resources=a.LinuxContainerResources(memory_limit_in_bytes=memory),
                                         security_context=a.LinuxContainerSecurityContext(namespace_options=namespaces)))

    def create(self, sandbox_id, pod_config, name, argv, memory=0):
        request = self.api.CreateContainerRequest(pod_sandbox_id=sandbox_id, config=self.container_config(name, argv, memory),
                                                  sandbox_config=pod_config)
        response, error, took = self.call("CreateContainer", request, timeout=300)
        if response:
            self.ids.add(response.container_id)
        return (response.container_id if response else None), error, took

    def start_container(self, container_id):
        _, error, took = self.call("StartContainer", self.api.StartContainerRequest(container_id=container_id), timeout=300)
        return error, took

    def create_and_start(self, sandbox_id, pod_config, name, argv, memory=0):
        """{"id", "create_ms", "create_error", "start_ms", "start_error"}."""
        record = {"name": name}
        cid, error, took = self.create(sandbox_id, pod_config, name, argv, memory)
        record.update(id=cid, create_ms=took, create_error=error)
        if cid:
            error, took = self.start_container(cid)
            record.update(start_ms=took, start_error=error)
        return record

    def container_status(self, container_id):
        response, error, _ = self.call("ContainerStatus", self.api.ContainerStatusRequest(container_id=container_id, verbose=True),
                                       timeout=30)
        if error:
            return {"error": error}
        s = response.status
        info = {}
        try:
            info = json.loads(response.info.get("info", "{}"))
        except ValueError:
            pass
        return {"state": self.api.ContainerState.Name(s.state), "pid": info.get("pid"), "exit_code": s.exit_code,
                "reason": s.reason, "message": s.message, "started_at": s.started_at, "finished_at": s.finished_at}

    def wait_state(self, container_ids, leave=None, want=None, bound=30.0):
        """Polls ContainerStatus until every container is in `want` (or has left `leave`); the last
        statuses and the seconds it took (None when the bound passed first)."""
        started = time.monotonic()
        while True:
            statuses = {cid: self.container_status(cid) for cid in container_ids}
            states = [s.get("state") for s in statuses.values()]
            if want and all(s == want for s in states):
                return statuses, time.monotonic() - started
            if leave and all(s is not None and s != leave for s in states):
                return statuses, time.monotonic() - started
            if time.monotonic() - started > bound:
                return statuses, None
            time.sleep(0.05)

    def exec_sync(self, container_id, argv, timeout=10):
        response, error, took = self.call("ExecSync", self.api.ExecSyncRequest(container_id=container_id, cmd=argv, timeout=timeout),
                                          timeout=timeout + 30)
        if error:
            return {"error": error, "ms": took}
        return {"exit_code": response.exit_code, "stdout": text(response.stdout), "stderr": text(response.stderr), "ms": took}

    def sandbox_status(self, sandbox_id):
        response, error, _ = self.call("PodSandboxStatus", self.api.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id, verbose=True),
                                       timeout=30)
        if error:
            return {"error": error}
        info = {}
        try:
            info = json.loads(response.info.get("info", "{}"))
        except ValueError:
            pass
        netns = None
        for ns in ((info.get("runtimeSpec") or {}).get("linux") or {}).get("namespaces") or []:
            if ns.get("type") == "network":
                netns = ns.get("path")
        s = response.status
        return {"state": self.api.PodSandboxState.Name(s.state), "ip": s.network.ip,
                "additional_ips": [x.ip for x in s.network.additional_ips], "pid": info.get("pid"),
                "netns": netns, "runtime_handler": info.get("runtimeHandler"), "cgroups_path":
                ((info.get("runtimeSpec") or {}).get("linux") or {}).get("cgroupsPath")}

    def stop_and_remove(self, sandbox_id):
        _, stop_error, stop_ms = self.call("StopPodSandbox", self.api.StopPodSandboxRequest(pod_sandbox_id=sandbox_id), timeout=180)
        _, remove_error, remove_ms = self.call("RemovePodSandbox", self.api.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id),
                                               timeout=180)
        return {"stop_ms": stop_ms, "stop_error": stop_error, "remove_ms": remove_ms, "remove_error": remove_error}

    def remaining(self):
        """containerd's view after removal: pods and containers it still lists."""
        pods, e1, _ = self.call("ListPodSandbox", self.api.ListPodSandboxRequest(), timeout=30)
        containers, e2, _ = self.call("ListContainers", self.api.ListContainersRequest(), timeout=30)
        return {
            "pod_sandboxes": [{"id": p.id, "state": self.api.PodSandboxState.Name(p.state)} for p in pods.items] if pods else e1,
            "containers": [{"id": c.id, "name": c.metadata.name, "state": self.api.ContainerState.Name(c.state)}
                           for c in containers.containers] if containers else e2,
        }

    def lease_files(self):
        """host-local's leases: files named after an address (not its lock or last_reserved_ip)."""
        found = []
        for dirpath, _, files in os.walk(self.leases):
            for f in files:
                if f != "lock" and not f.startswith("last_reserved_ip"):
                    found.append(os.path.relpath(os.path.join(dirpath, f), self.leases))
        return sorted(found)

    # --- the pod's processes ------------------------------------------------------------------

    def shims(self, table):
        return {pid for pid, p in table.items()
                if "containerd-shim" in p["comm"] + p["cmdline"] and f"-address {self.sock}" in p["cmdline"]}

    def pod_processes(self, sandbox_id):
        """The host processes of one pod: the tree of its containerd shim (a subreaper, so the
        containers' processes and a VMM they started stay in it), every process whose cgroup path
        names the sandbox id or the run's cgroup parent, and every process whose command line names
        the sandbox id. Each with its PSS (smaps_rollup) and how it was found."""
        table = processes()
        excluded = ancestors_of_self()
        shims = {pid for pid in self.shims(table) if f"-id {sandbox_id}" in table[pid]["cmdline"]}
        how = {}
        for pid in shims:
            how.setdefault(pid, set()).add("shim")
        for pid in descendants(table, shims):
            how.setdefault(pid, set()).add("shim-tree")
        for pid, p in table.items():
            if sandbox_id in p["cgroup"] or self.cgroup_parent + "/" in p["cgroup"]:
                how.setdefault(pid, set()).add("cgroup")
            if sandbox_id in p["cmdline"]:
                how.setdefault(pid, set()).add("cmdline")
        out = []
        for pid in sorted(how):
            if pid in excluded:
                continue
            p = table[pid]
            out.append({"pid": pid, "ppid": p["ppid"], "comm": p["comm"], "cmdline": p["cmdline"][:300],
                        "found_by": sorted(how[pid]), **smaps_rollup(pid)})
        return out

    # --- teardown -----------------------------------------------------------------------------

    def teardown(self):
        """Idempotent; returns what it found and did."""
        if self.torn_down is not None:
            return self.torn_down
        for signo in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signo, signal.SIG_IGN)
        report = {}
        self.torn_down = report

        def step(name, fn):
            try:
                value = fn()
                if value:
                    report[name] = value
            except Exception as e:  # keep going: every later step still has to run
                report.setdefault("errors", []).append(f"{name}: {type(e).__name__}: {e}")

        routine = {}
        step("pods_removed", self._remove_pods)
        step("containerd", lambda: routine.update(containerd=self._stop_containerd()))
        self._tap_stop.set()
        step("shims_exited_late", self._await_shims)
        step("killed", self._kill_leftovers)
        step("unmounted", lambda: unmount_under(self.base))
        step("cgroups_removed", self._remove_cgroups)
        step("bridge", lambda: routine.update(bridge_deleted=self._delete_bridge()))
        step("cni_cache_removed", self._remove_cni_cache)
        step("cni_cache_dirs", lambda: routine.update(cni_cache_dirs_removed=self._remove_cni_cache_dirs()))
        step("shim_sockets_removed", self._remove_shim_sockets)
        report["routine"] = routine
        return report

    def _remove_pods(self):
        if not (self.runtime and self.process and self.process.poll() is None):
            return None
        pods, error, _ = self.call("ListPodSandbox", self.api.ListPodSandboxRequest(), timeout=30)
        if error:
            return [{"list_error": error}]
        done = []
        for p in pods.items:
            self.ids.add(p.id)
            done.append({"id": p.id, **self.stop_and_remove(p.id)})
        return done

    def _stop_containerd(self):
        if self.channel:
            self.channel.close()
            self.channel = None
        if not self.process or self.process.poll() is not None:
            return None
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
            return {"stopped_by": "TERM", "exit": self.process.returncode}
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return {"stopped_by": "KILL", "exit": self.process.returncode}

    def _await_shims(self):
        """Shims of removed pods exit on their own, a moment after the remove returns."""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if not self.shims(processes()):
                return None
            time.sleep(0.1)
        return sorted(self.shims(processes()))

    def _kill_leftovers(self):
        """The run's processes still alive: first TERM (a runtime's supervisor may then end its VM
        and undo its own state), then KILL. Once found, a process stays a target even after its
        parent's end has moved it out of the tree it was found in."""
        excluded = ancestors_of_self()
        targets = {}  # pid -> (start time, comm, cmdline)
        signalled = {}
        for signo in (signal.SIGTERM, signal.SIGKILL, signal.SIGKILL):
            table = processes()
            marks = [self.sock, *self.runc_roots, self.bundles]
            roots = {pid for pid, p in table.items() if any(m in p["cmdline"] for m in marks)}
            roots |= self.shims(table)
            for top in cgroup_dirs(self.cgroup_parent):
                roots |= cgroup_pids(top)
            for pid in (roots | descendants(table, roots)) - excluded:
                if pid in table and pid not in targets:
                    targets[pid] = (start_time(pid), table[pid]["comm"], table[pid]["cmdline"][:200])
            victims = [pid for pid, (started, _, _) in targets.items() if alive(pid) and start_time(pid) == started]
            if not victims:
                break
            for pid in victims:
                try:
                    os.kill(pid, signo)
                    signalled[pid] = signal.Signals(signo).name
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + (10 if signo == signal.SIGTERM else 5)
            while time.monotonic() < deadline and any(alive(pid) for pid in victims):
                time.sleep(0.05)
        return [{"pid": pid, "comm": targets[pid][1], "cmdline": targets[pid][2], "signal": name}
                for pid, name in sorted(signalled.items())]

    def _remove_cgroups(self):
        removed = []
        for top in cgroup_dirs(self.cgroup_parent):
            for d in cgroup_tree(top):
                for attempt in range(50):
                    try:
                        os.rmdir(d)
                        if d != top:
                            removed.append(d)
                        break
                    except FileNotFoundError:
                        break
                    except OSError:  # EBUSY while a killed process is still leaving
                        time.sleep(0.1)
        left = [d for d in cgroup_dirs(self.cgroup_parent)]
        if left:
            removed.append({"left": left})
        return removed  # the run's own parent cgroup is not listed: the runtime never removes it

    def _delete_bridge(self):
        if not os.path.exists(f"/sys/class/net/{self.bridge}"):
            return None
        rc, _, err = run_command(["ip", "link", "del", self.bridge], timeout=30)
        return self.bridge if rc == 0 else f"{self.bridge}: ip link del exited {rc}: {err.strip()}"

    def _remove_cni_cache(self):
        """libcni's cached results of this run's network and pods (/var/lib/cni/results/NET-ID-IF);
        a pod removed through CRI leaves none."""
        removed = []
        results = f"{CNI_CACHE}/results"
        if os.path.isdir(results):
            for f in os.listdir(results):
                if f.startswith(self.network + "-") or any(f"-{i}-" in f for i in self.ids):
                    os.unlink(f"{results}/{f}")
                    removed.append(f)
        return removed

    def _remove_cni_cache_dirs(self):
        """/var/lib/cni/results and /var/lib/cni when empty (libcni makes them as it needs them)."""
        removed = []
        results = f"{CNI_CACHE}/results"
        # libcni makes the directories again before each write, but a run between its mkdir and
        # its write would fail: only the last run of this script that is still going removes them.
        if sole_run():
            for d in (results, CNI_CACHE):
                try:
                    os.rmdir(d)
                    removed.append(d)
                except OSError:  # not empty, or not there
                    pass
            fcntl.flock(_RUN_LOCK, fcntl.LOCK_UN)
        return removed

    def _remove_shim_sockets(self):
        """The runc.v2 shim listens on /run/containerd/s/sha256(ADDRESS/NAMESPACE/ID); a shim that
        is killed leaves it there."""
        removed = []
        for i in self.ids:
            path = f"{SHIM_SOCKETS}/{hashlib.sha256(f'{self.sock}/{NAMESPACE}/{i}'.encode()).hexdigest()}"
            if os.path.lexists(path):
                os.unlink(path)
                removed.append(path)
        return removed


# ---------------------------------------------------------------------------------------------
# scenarios


def host_facts():
    return {"boot_id": (read("/proc/sys/kernel/random/boot_id") or "").strip(), "uname_r": os.uname().release}


def fetch_from_host(url, bound=30.0):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    started, attempts, last = time.monotonic(), 0, None
    while True:
        attempts += 1
        try:
            body = opener.open(url, timeout=3).read().decode(errors="replace")
            return {"body": body, "attempts": attempts, "ms": ms(time.monotonic() - started)}
        except Exception as e:
            last = f"{type(e).__name__}: {e}"
        if time.monotonic() - started > bound:
            return {"error": last, "attempts": attempts, "ms": ms(time.monotonic() - started)}
        time.sleep(0.2)


def fetch_in_container(cluster, container_id, bound=30.0):
    started, attempts = time.monotonic(), 0
    while True:
        attempts += 1
        result = cluster.exec_sync(container_id, FETCH, timeout=10)
        if result.get("exit_code") == 0 or time.monotonic() - started > bound:
            return dict(result, attempts=attempts, total_ms=ms(time.monotonic() - started))
        time.sleep(0.2)


def pod(cluster, args, out):
    handler = args[0]
    out["host"] = host_facts()
    sid, config, error, took = cluster.run_pod("pod", handler)
    out["run_pod_sandbox"] = {"id": sid, "ms": took, "error": error}
    if not sid:
        raise Failure(f"RunPodSandbox failed: {error}")
    out["sandbox_status"] = cluster.sandbox_status(sid)
    members = {"web": WEB, "client": SLEEPER}
    out["containers"] = {name: cluster.create_and_start(sid, config, name, argv) for name, argv in members.items()}
    ids = {name: r["id"] for name, r in out["containers"].items() if r["id"]}
    statuses, seconds = cluster.wait_state(list(ids.values()), want="CONTAINER_RUNNING")
    out["running_after_ms"] = ms(seconds) if seconds is not None else None
    if "client" in ids:
        out["client_fetch"] = fetch_in_container(cluster, ids["client"])
    ip = out["sandbox_status"].get("ip")
    out["host_fetch"] = fetch_from_host(f"http://{ip}:8080/") if ip else {"error": "no pod IP"}
    out["probes"] = {name: {key: cluster.exec_sync(cid, argv) for key, argv in PROBES.items()} for name, cid in ids.items()}
    out["container_status"] = {name: cluster.container_status(cid) for name, cid in ids.items()}
    out["sandbox_status_before_stop"] = cluster.sandbox_status(sid)
    out["pod_processes"] = [{k: p[k] for k in ("pid", "ppid", "comm", "cmdline", "found_by")} for p in cluster.pod_processes(sid)]
    out["logs"] = {name: read(f"{cluster.base}/logs/pod/{name}.log") for name in ids}
    out["stop_remove"] = cluster.stop_and_remove(sid)
    out["after_remove"] = cluster.remaining()
    out["after_remove"]["lease_files"] = cluster.lease_files()
    netns = out["sandbox_status"].get("netns")
    out["after_remove"]["netns"] = netns
    out["after_remove"]["netns_exists"] = os.path.exists(netns) if netns else None
    out["after_remove"]["netns_mounted"] = (netns in mounts_under(os.path.dirname(netns))) if netns else None
    out["after_remove"]["pod_processes"] = [{k: p[k] for k in ("pid", "comm", "cmdline", "found_by")}
                                            for p in cluster.pod_processes(sid)]


def bad_member(cluster, args, out):
    handler = args[0]
    # 1. A member whose memory limit is larger than the pod can hold.
    sid, config, error, took = cluster.run_pod("big", handler, memory=POD_MEMORY)
    out["big"] = {"run_pod_sandbox": {"id": sid, "ms": took, "error": error}, "pod_memory_limit_in_bytes": POD_MEMORY}
    if not sid:
        raise Failure(f"RunPodSandbox failed: {error}")
    big = cluster.create_and_start(sid, config, "big", SLEEPER, memory=BIG_MEMORY)
    big["memory_limit_in_bytes"] = BIG_MEMORY
    if big["id"]:
        big["status"] = cluster.container_status(big["id"])
    out["big"]["member"] = big
    # 2. A member created after StopPodSandbox.
    _, stop_error, stop_ms = cluster.call("StopPodSandbox", cluster.api.StopPodSandboxRequest(pod_sandbox_id=sid), timeout=180)
    late = {"stop_ms": stop_ms, "stop_error": stop_error}
    late.update(cluster.create_and_start(sid, config, "late", SLEEPER))
    if late["id"]:
        late["status"] = cluster.container_status(late["id"])
    late["sandbox_status"] = cluster.sandbox_status(sid)
    out["after_stop"] = late
    out["big"]["stop_remove"] = cluster.stop_and_remove(sid)
    # 3. A pod whose VMM is killed.
    command = os.environ.get("HVC_KILL_VMM_CMD")
    if not command:
        out["vmm_killed"] = None
        return
    sid, config, error, took = cluster.run_pod("killed", handler)
    record = {"run_pod_sandbox": {"id": sid, "ms": took, "error": error}, "command": command}
    out["vmm_killed"] = record
    if not sid:
        raise Failure(f"RunPodSandbox failed: {error}")
    member = cluster.create_and_start(sid, config, "sleeper", SLEEPER)
    record["member"] = member
    if not member["id"]:
        raise Failure(f"the member of the pod to kill was not created: {member}")
    statuses, seconds = cluster.wait_state([member["id"]], want="CONTAINER_RUNNING")
    record["before"] = statuses[member["id"]]
    record["sandbox_before"] = cluster.sandbox_status(sid)
    env = dict(os.environ, CRI_PODS_BASE=cluster.base, CRI_PODS_SOCKET=cluster.sock,
               CRI_PODS_SANDBOX_PID=str(record["sandbox_before"].get("pid") or ""))
    killed_at = time.monotonic()
    rc, stdout, stderr = run_command(["/bin/sh", "-c", command, "sh", sid], timeout=30, env=env)
    record["kill"] = {"exit_code": rc, "stdout": stdout, "stderr": stderr}
    statuses, _ = cluster.wait_state([member["id"]], leave="CONTAINER_RUNNING", bound=30.0)
    left = statuses[member["id"]].get("state") != "CONTAINER_RUNNING"
    record["after"] = statuses[member["id"]]
    record["left_running_after_ms"] = ms(time.monotonic() - killed_at) if left else None
    record["sandbox_after"] = cluster.sandbox_status(sid)
    record["member_log"] = read(f"{cluster.base}/logs/killed/sleeper.log")
    record["pod_processes_after"] = [{k: p[k] for k in ("pid", "ppid", "comm", "cmdline", "found_by")}
                                     for p in cluster.pod_processes(sid)]
    record["stop_remove"] = cluster.stop_and_remove(sid)
    record["after_remove"] = cluster.remaining()


def bench(cluster, args, out):
    handler, count = args[0], int(args[1])
    also = cluster.also_measure
    out["runs"] = []
    out["memory_method"] = ("PSS (smaps_rollup) of the pod's host processes: the tree of its containerd shim, "
                            "processes whose cgroup names the sandbox id or the run's cgroup parent, and processes "
                            "whose command line names the sandbox id; the shim itself counted apart")
    for i in range(count):
        record = {}
        out["runs"].append(record)
        started = time.monotonic()
        sid, config, error, took = cluster.run_pod(f"bench{i}", handler)
        record.update(sandbox_id=sid, run_pod_ms=took, run_pod_error=error)
        if not sid:
            raise Failure(f"RunPodSandbox failed: {error}")
        members = [cluster.create_and_start(sid, config, f"sleeper{n}", SLEEPER) for n in (1, 2)]
        record["members"] = members
        ids = [m["id"] for m in members if m["id"]]
        if len(ids) != 2 or any(m.get("start_error") for m in members):
            raise Failure(f"a member failed: {members}")
        statuses, seconds = cluster.wait_state(ids, want="CONTAINER_RUNNING")
        if seconds is None:
            raise Failure(f"the members were not running after 30 s: {statuses}")
        record["to_running_ms"] = ms(time.monotonic() - started)
        time.sleep(1.0)  # let the pod settle before its memory is read
        found = cluster.pod_processes(sid)
        record["processes"] = found
        shims = [p for p in found if "shim" in p["found_by"]]
        record["memory_kib"] = sum(p.get("pss_kib", 0) for p in found if p not in shims)
        record["shim_kib"] = sum(p.get("pss_kib", 0) for p in shims)
        if also:
            pod_pids = {p["pid"] for p in found}
            record["outside_pod"] = [{"pid": pid, "comm": p["comm"], "cmdline": p["cmdline"][:300], **smaps_rollup(pid)}
                                     for pid, p in processes().items() if also in p["cmdline"] and pid not in pod_pids
                                     and pid not in ancestors_of_self()]
        record.update(cluster.stop_and_remove(sid))
        if record["stop_error"] or record["remove_error"]:
            raise Failure(f"stop/remove failed: {record['stop_error'] or record['remove_error']}")


SCENARIOS = {"pod": (pod, 1), "bad-member": (bad_member, 1), "bench": (bench, 2)}


# ---------------------------------------------------------------------------------------------


def parse():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="the run's directory (created if missing, else empty)")
    parser.add_argument("--runtime-wrapper", help="BinaryName of the hvc handler (without it, no hvc handler)")
    parser.add_argument("--image-tar", help="a docker-archive or OCI archive for `ctr images import`")
    parser.add_argument("--image-name", default=DEFAULT_IMAGE, help="the image's name in that archive (also the pause image)")
    parser.add_argument("--containerd-log", help="containerd's log here (kept) instead of in DIR")
    parser.add_argument("--also-measure", help="bench: also report processes outside the pod whose command line has this")
    parser.add_argument("scenario", choices=[*SCENARIOS, "make-image"])
    parser.add_argument("args", nargs="*")
    args = parser.parse_args()
    if args.scenario == "make-image":
        if len(args.args) != 1:
            parser.error("make-image takes OUTPUT_TAR")
        return args
    if len(args.args) != SCENARIOS[args.scenario][1]:
        parser.error(f"{args.scenario} takes {'HANDLER N' if args.scenario == 'bench' else 'HANDLER'}")
    if args.args[0] not in ("runc", "hvc"):
        parser.error(f"HANDLER is runc or hvc, not {args.args[0]!r}")
    if args.args[0] == "hvc" and not args.runtime_wrapper:
        parser.error("the hvc handler needs --runtime-wrapper")
    if args.scenario == "bench" and not (args.args[1].isdigit() and int(args.args[1]) > 0):
        parser.error("N is a positive integer")
    if not args.image_tar:
        parser.error("--image-tar is required")
    for option in ("image_tar", "runtime_wrapper"):
        value = getattr(args, option)
        if value:
            setattr(args, option, os.path.abspath(value))
            if not os.path.isfile(value):
                parser.error(f"--{option.replace('_', '-')} {value}: no such file")
    return args


def prepare_base(path):
    """The run's directory, absolute and real; True when this made it."""
    base = os.path.realpath(path)
    if os.path.exists(base):
        if not os.path.isdir(base) or os.listdir(base):
            raise Failure(f"--base {base} must be an empty directory or not exist")
        return base, False
    os.makedirs(base)
    return base, True


def empty_base(base, made):
    """Removes what the run made under base (base too if it made it), unless something is still
    mounted there: rm -r through a mount would reach outside the run."""
    if mounts_under(base):
        return f"not removed: still mounted: {mounts_under(base)}"
    if made:
        shutil.rmtree(base, ignore_errors=True)
    else:
        for entry in os.listdir(base):
            path = os.path.join(base, entry)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)
    return None


def main():
    args = parse()
    result = {"scenario": args.scenario, "args": args.args}

    def interrupted(signo, frame):
        raise SystemExit(128 + signo)
    for signo in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signo, interrupted)

    cluster = None
    base, made = None, False
    status = 0
    try:
        base, made = prepare_base(args.base)
        if args.scenario == "make-image":
            result.update(make_image(base, os.path.abspath(args.args[0]), args.image_name))
        else:
            join_runs()
            cluster = Cluster(base, args.runtime_wrapper, args.image_tar, args.image_name, args.containerd_log)
            atexit.register(cluster.teardown)
            result["run_id"] = cluster.run_id
            result["containerd"] = cluster.start()
            result["network"] = {"name": cluster.network, "bridge": cluster.bridge, "subnet": str(cluster.subnet),
                                 "cgroup_parent": cluster.cgroup_parent}
            result["image"] = cluster.import_image()
            cluster.also_measure = args.also_measure
            started = time.monotonic()
            SCENARIOS[args.scenario][0](cluster, args.args, result)
            result["scenario_ms"] = ms(time.monotonic() - started)
    except Failure as e:
        result["error"] = str(e)
        status = 1
    except SystemExit as e:
        result["error"] = f"interrupted (exit {e.code})"
        status = e.code if isinstance(e.code, int) else 1
    except BaseException as e:
        result["error"] = f"{type(e).__name__}: {e}"
        result["traceback"] = traceback.format_exc()
        status = 1
    finally:
        if cluster:
            result["teardown"] = cluster.teardown()
            result["runtime_logs"] = cluster.runtime_logs
            result["containerd_log_problems"] = cluster.log_tail(40, only_problems=True)
        if base:
            problem = empty_base(base, made)
            if problem:
                result.setdefault("teardown", {})["base"] = problem
        print(json.dumps(result, indent=1, sort_keys=True), flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
