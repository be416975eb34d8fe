#!/usr/bin/env bash
# Benchmarks `hvc run --rm busybox true`, cold and cloned from its template, against its peers:
# a bare QEMU boot of the same kernel to a busybox /init, a QEMU q35 boot of Debian's cloud kernel
# to the same /init, `runc run`, `podman --runtime runc run --rm` and `podman --runtime hvc-oci run --rm`
# of a busybox rootfs; then the
# PSS of idle containers, templated and cold, and the CPU the templated ones use while idle; 200
# idle containers at once; and back-to-back starts per second, templated and pooled; then container
# networking, hvc against podman (bench/net.py); then shared folders, hvc against podman
# (bench/volumes.py); then a second-level VM in a nested container (bench/nested.py); then hvcd's
# ps latency with and without a thousand waiting clients (bench/daemon.py); then a pod of two
# containers through containerd's CRI, hvc-oci (one VM per pod) against runc (bench/pods.py); then
# `docker run --rm` through hvcd's Docker API against dockerd with runc (bench/docker.py); then
# `ctr run --rm` and `docker run --rm` with hvc-oci as their runtime against runc (bench/callers.py).
# Prints a Markdown report to stdout and writes it to bench/results.md, which bench/quote.py then
# copies into README.md's marked block (`make test` checks the two agree).
#
# Usage: bench/run.sh PATH_TO_HVC
# Env:   BENCH_RUNS   timed runs of each benchmark (default 10)
#        BENCH_IDLE   idle containers for the memory and idle-CPU figures (default 20; 0 skips them)
#        BENCH_SCALE  idle containers started one after another for the scale figures (default 200; 0 skips)
#        BENCH_SUSTAINED  seconds of back-to-back starts, templated and pooled (default 60; 0 skips)
#        BENCH_NET    TCP throughput and HTTP round trips, hvc against podman (default 1; 0 skips)
#        BENCH_VOLUMES  shared-folder I/O, hvc against podman (default 1; 0 skips)
#        BENCH_NESTED  a second-level VM's boot and a workload at L1 and L2 (default 1; 0 skips)
#        BENCH_DAEMON  hvcd's ps latency with 0 and 1,000 waiting clients (default 1; 0 skips)
#        BENCH_PODS   a pod of two containers under containerd's CRI, hvc against runc (default 1;
#                     0 skips); needs the venv of `make fuzz-deps` (HVC_FUZZ_PYTHON names its python)
#        BENCH_DOCKER `docker run --rm` through hvcd's Docker API against dockerd + runc (default 1; 0 skips)
#        BENCH_CALLERS `ctr run` and `docker run` with hvc-oci as their runtime, against runc (default 1; 0 skips)
#        BENCH_SECTION_RUNS  timed runs of each figure in the sections after the main table:
#                     network, shared folders, nesting, hvcd, pods, docker, callers (default 7)
#        HVC_ASSETS   guest kernel and initramfs (default: build/share/hvc in this repo)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)

die() { echo "bench: error: $*" >&2; exit 1; }
say() { echo "bench: $*" >&2; }

[ $# -eq 1 ] || die "usage: bench/run.sh PATH_TO_HVC"
hvc=$1
[ -x "$hvc" ] && [ -f "$hvc" ] || die "hvc binary '$hvc' is missing or not executable (run: make build)"
case $hvc in /*) ;; *) hvc=$(cd "$(dirname "$hvc")" && pwd)/$(basename "$hvc") ;; esac

runs=${BENCH_RUNS:-10}
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer, not '$runs'"
idle=${BENCH_IDLE:-20}
[[ $idle =~ ^[0-9]+$ ]] || die "BENCH_IDLE must be a number, not '$idle'"
scale=${BENCH_SCALE:-200}
[[ $scale =~ ^[0-9]+$ ]] || die "BENCH_SCALE must be a number, not '$scale'"
sustained=${BENCH_SUSTAINED:-60}
[[ $sustained =~ ^[0-9]+$ ]] || die "BENCH_SUSTAINED must be a number, not '$sustained'"
net=${BENCH_NET:-1}
[[ $net =~ ^[01]$ ]] || die "BENCH_NET must be 0 or 1, not '$net'"
volumes=${BENCH_VOLUMES:-1}
nested=${BENCH_NESTED:-1}
daemon=${BENCH_DAEMON:-1}
[[ $daemon =~ ^[01]$ ]] || die "BENCH_DAEMON must be 0 or 1, not '$daemon'"
[[ $volumes =~ ^[01]$ ]] || die "BENCH_VOLUMES must be 0 or 1, not '$volumes'"
section_runs=${BENCH_SECTION_RUNS:-7}
[[ $section_runs =~ ^[1-9][0-9]*$ ]] || die "BENCH_SECTION_RUNS must be a positive integer, not '$section_runs'"
pods=${BENCH_PODS:-1}
[[ $pods =~ ^[01]$ ]] || die "BENCH_PODS must be 0 or 1, not '$pods'"
docker_section=${BENCH_DOCKER:-1}
[[ $docker_section =~ ^[01]$ ]] || die "BENCH_DOCKER must be 0 or 1, not '$docker_section'"
callers=${BENCH_CALLERS:-1}
[[ $callers =~ ^[01]$ ]] || die "BENCH_CALLERS must be 0 or 1, not '$callers'"

export HVC_ASSETS=${HVC_ASSETS:-$repo/build/share/hvc}
for f in vmlinux initramfs.cpio kernel-release; do
  [ -s "$HVC_ASSETS/$f" ] || die "guest asset $HVC_ASSETS/$f is missing (run: make assets, or set HVC_ASSETS)"
done

# --- packages the benchmark and its peers need --------------------------------------------------
packages=(qemu-system-x86 busybox-static runc podman python3 erofs-utils file linux-image-cloud-amd64)
if [ "$net" -eq 1 ]; then packages+=(iperf3); fi
if [ "$docker_section" -eq 1 ] || [ "$callers" -eq 1 ]; then packages+=(docker.io containerd); fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || die "missing packages (${missing[*]}); run as root or apt-get install them"
  say "installing: ${missing[*]}"
  apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi
[ "$(id -u)" -eq 0 ] || die "runc and hvc need root: run as root"

# The pods' CRI client (grpc and the CRI stubs) lives in the fuzz test's venv, which the Makefile
# names by its requirements' hash: checked now rather than after the other benchmarks.
if [ "$pods" -eq 1 ]; then
  pods_python=${HVC_FUZZ_PYTHON:-/var/cache/hvc/fuzz-venv-$(sha256sum "$repo/Tests/EndToEndTests/Fixtures/fuzz-requirements.txt" | cut -c1-12)/bin/python}
  "$pods_python" -c 'import grpc, cri_api.v1.api_pb2_grpc' 2>/dev/null ||
    die "BENCH_PODS needs a Python with the CRI client at $pods_python (run: make fuzz-deps, or set BENCH_PODS=0)"
  [ -x "$(dirname "$hvc")/hvc-oci" ] || die "BENCH_PODS needs hvc-oci next to $hvc (run: make build)"
  # Not installed here: installing containerd would start the host's own (make deps keeps it stopped).
  for f in /usr/bin/containerd /usr/bin/ctr /usr/lib/cni/bridge /usr/lib/cni/host-local /usr/lib/cni/loopback; do
    [ -x "$f" ] || die "BENCH_PODS needs $f (run: make deps, which installs containerd and containernetworking-plugins)"
  done
fi

busybox=/bin/busybox
file -L "$busybox" 2>/dev/null | grep -q 'statically linked' ||
  die "$busybox is not the static busybox (apt-get install busybox-static)"
cloud_kernel=$(ls /boot/vmlinuz-*-cloud-amd64 2>/dev/null | sort -V | tail -n 1 || true)
[ -n "$cloud_kernel" ] || die "no /boot/vmlinuz-*-cloud-amd64 (apt-get install linux-image-cloud-amd64)"
cloud_release=${cloud_kernel#/boot/vmlinuz-}

# --- private state, removed on exit -----------------------------------------------------------
tmp=$(mktemp -d /tmp/hvc-bench.XXXXXX)
cleanup() {
  set +e
  if [ -n "${bench_pid:-}" ] && kill -TERM "$bench_pid" 2>/dev/null; then
    wait "$bench_pid" 2>/dev/null
  fi
  [ -n "${tmp:-}" ] && [ -d "$tmp" ] || return 0
  # hvc's containers first, so that their network attachments (leases, port rules) are undone.
  if [ -d "$tmp/root/containers" ]; then
    "$hvc" ps -aq 2>/dev/null | xargs -r "$hvc" rm -f >/dev/null 2>&1
  fi
  if [ -d "$tmp/podman-root" ]; then
    $podman rm -af >/dev/null 2>&1
    $podman rmi -af >/dev/null 2>&1
  fi
  if [ -d "$tmp/runc-state" ]; then
    for id in $(runc --root "$tmp/runc-state" list -q 2>/dev/null); do
      runc --root "$tmp/runc-state" delete --force "$id" >/dev/null 2>&1
    done
  fi
  # Any QEMU, hvc or runc left over from an interrupted run names our private directory.
  local pid cmd killed=0
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    [ "$pid" = "$$" ] && continue
    cmd=$(tr '\0' ' ' <"$d/cmdline" 2>/dev/null) || continue
    case $cmd in *"$tmp/"*) kill -KILL "$pid" 2>/dev/null && killed=1 ;; esac
  done
  [ $killed -eq 1 ] && sleep 0.3
  # Networks live on the host beyond the state directory: their bridges and rules go too.
  local f b
  for f in "$tmp"/root/networks/*/*.json; do
    b=$(sed -n 's/.*"bridge" : "\([^"]*\)".*/\1/p' "$f" 2>/dev/null)
    [ -n "$b" ] && ip link del "$b" 2>/dev/null
  done
  nft delete table inet "hvc_$(printf %s "$tmp/root/networks" | sha256sum | cut -c1-8)" 2>/dev/null
  # Podman's overlay mounts and any template keeper's files live under $tmp too.
  grep -o " $tmp/[^ ]*" /proc/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

export HVC_ROOT=$tmp/root HVC_RUN_ROOT=$tmp/run
mkdir -p "$HVC_ROOT" "$HVC_RUN_ROOT"

say "importing the busybox image into $HVC_ROOT"
"$here/../rootfs/images/busybox/build.sh" "$hvc" >/dev/null ||
  die "importing the busybox image failed"

# Peer initramfs: /bin/busybox and an /init that prints a marker and reboots; with reboot=t and
# QEMU -no-reboot the reset makes QEMU exit (microvm with acpi=off cannot power off).
marker="hvc-bench-init-$$"
python3 "$here/bench.py" initramfs "$tmp/peer-initramfs.cpio" "$busybox" "$marker"

# Peer OCI bundle for runc: the same busybox rootfs as the image (busybox plus applet links).
bundle=$tmp/bundle
mkdir -p "$bundle/rootfs"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,root}
cp "$busybox" "$bundle/rootfs/bin/busybox"
for applet in $("$busybox" --list-full); do
  [ -e "$bundle/rootfs/$applet" ] || ln -s /bin/busybox "$bundle/rootfs/$applet"
done
(cd "$bundle" && runc spec)
python3 "$here/bench.py" oci-config "$bundle/config.json"
mkdir -p "$tmp/runc-state"

# Podman with private storage, importing the same rootfs; runc as its runtime.
podman="podman --root $tmp/podman-root --runroot $tmp/podman-run --runtime runc --cgroup-manager cgroupfs --events-backend none"
tar -C "$bundle/rootfs" -cf "$tmp/rootfs.tar" .
$podman import "$tmp/rootfs.tar" localhost/hvc-bench-busybox:latest >/dev/null ||
  die "podman import of the busybox rootfs failed"

# --- machine facts --------------------------------------------------------------------------
info=$("$hvc" info 2>&1 || true)
accel=$(sed -n 's/^accelerator:[[:space:]]*\([a-z]*\).*/\1/p' <<<"$info" | head -n 1)
case $accel in kvm | tcg) ;; *) die "could not read the accelerator from 'hvc info':
$info" ;; esac
qemu_version=$(qemu-system-x86_64 --version | sed -n '1s/^QEMU emulator version \([^ ]*\).*/\1/p')
cpu_model=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n 1)
runc_version=$(runc --version | sed -n '1s/^runc version //p')
podman_version=$(podman --version | sed -n 's/^podman version //p')
facts="nproc $(nproc), ${cpu_model:-unknown CPU}, accelerator $accel, QEMU ${qemu_version:-?},"
facts+=" guest kernel $(cat "$HVC_ASSETS/kernel-release"), peer kernel $cloud_release, runc ${runc_version:-?}, podman ${podman_version:-?},"
facts+=" host kernel $(uname -r)"
commit=$(git -C "$repo" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
[ -z "$(git -C "$repo" status --porcelain -- Sources rootfs bench 2>/dev/null)" ] || commit+=" with uncommitted changes"
facts+="; run $(date -u '+%Y-%m-%d %H:%M') UTC at commit $commit with BENCH_RUNS=$runs BENCH_IDLE=$idle BENCH_SCALE=$scale"
facts+=" BENCH_SUSTAINED=$sustained BENCH_NET=$net BENCH_VOLUMES=$volumes BENCH_NESTED=$nested BENCH_DAEMON=$daemon BENCH_PODS=$pods BENCH_DOCKER=$docker_section BENCH_CALLERS=$callers"
facts+=" BENCH_SECTION_RUNS=$section_runs"
say "$facts"
say "$runs runs of each benchmark"

# In the background, so that a signal runs the cleanup at once rather than after the benchmark.
python3 "$here/bench.py" measure --runs "$runs" --hvc "$hvc" --hvc-oci "$(dirname "$hvc")/hvc-oci" --accel "$accel" --tmp "$tmp" \
  --kernel "$HVC_ASSETS/vmlinux" --cloud-kernel "$cloud_kernel" --cloud-release "$cloud_release" \
  --peer-initramfs "$tmp/peer-initramfs.cpio" --marker "$marker" \
  --bundle "$bundle" --runc-root "$tmp/runc-state" --podman "$podman" \
  --podman-image localhost/hvc-bench-busybox:latest --idle "$idle" --scale "$scale" --sustained-seconds "$sustained" \
  --facts "$facts" --out "$here/results.md" &
bench_pid=$!
wait "$bench_pid"
bench_pid=

# One section after the main table: NAME COMMAND... runs COMMAND in the background (so that a
# signal runs the cleanup at once), its Markdown in $tmp/NAME.md, then appended to results.md.
section() {
  local name=$1
  shift
  "$@" >"$tmp/$name.md" &
  bench_pid=$!
  wait "$bench_pid"
  bench_pid=
  tee -a "$here/results.md" <"$tmp/$name.md"
}

# --- networking: iperf3 and HTTP through a published port, hvc against podman (runc) ----------
if [ "$net" -eq 1 ]; then
  say "network: iperf3 and HTTP round trips, hvc and podman"
  section net python3 "$here/net.py" --hvc "$hvc" --podman "$podman" --tmp "$tmp" --runs "$section_runs"
fi

# --- shared folders: I/O in a bind-mounted host folder, hvc against podman (runc) -------------
if [ "$volumes" -eq 1 ]; then
  say "shared folders: sequential and small-file I/O, hvc and podman"
  section volumes python3 "$here/volumes.py" --hvc "$hvc" --podman "$podman" --podman-image localhost/hvc-bench-busybox:latest \
    --tmp "$tmp" --runs "$section_runs"
fi

# --- nesting: a second-level VM's boot, a workload at L1 and at L2 ----------------------------
if [ "$nested" -eq 1 ]; then
  say "nesting: second-level boot and a workload at L1 and L2"
  section nested python3 "$here/nested.py" --hvc "$hvc" --tmp "$tmp" --runs "$section_runs"
fi

# --- hvcd: ps latency with and without a thousand clients waiting ------------------------------
if [ "$daemon" -eq 1 ]; then
  say "hvcd: ps latency with 0 and 1000 waiting clients"
  section daemon python3 "$here/daemon.py" --hvc "$hvc" --tmp "$tmp" --waiters 1000 --runs "$section_runs"
fi

# --- pods: two containers in a pod through containerd's CRI, hvc-oci against runc -------------
if [ "$pods" -eq 1 ]; then
  say "pods: containerd's CRI, a pod of two containers, hvc against runc"
  section pods "$pods_python" "$here/pods.py" --hvc-oci "$(dirname "$hvc")/hvc-oci" --python "$pods_python" --tmp "$tmp" \
    --runs "$section_runs"
fi

# --- the Docker API: docker run --rm through hvcd against dockerd with runc --------------------
if [ "$docker_section" -eq 1 ]; then
  say "docker: docker run --rm through hvcd's Docker API against dockerd + runc"
  section docker python3 "$here/docker.py" --hvc "$hvc" --tmp "$tmp" --runs "$section_runs"
fi

# --- callers of hvc-oci: ctr run and docker run --runtime, hvc-oci against runc ---------------
if [ "$callers" -eq 1 ]; then
  say "callers: ctr run and docker run with hvc-oci as their runtime, against runc"
  section callers python3 "$here/callers.py" --hvc "$hvc" --tmp "$tmp" --runs "$section_runs"
fi

python3 "$here/quote.py" "$here/results.md" "$repo/README.md"
