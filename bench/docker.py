#!/usr/bin/env python3
"""`docker run --rm busybox true` through hvcd's Docker socket (a VM per container) against the
same command through Debian's dockerd with runc, the docker CLI the same, run by run in turn.
Both without a network (dockerd here runs with --bridge=none). Prints a Markdown section.

Usage: docker.py --hvc PATH --tmp DIR [--runs N]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

DOCKER = "/usr/bin/docker"


def wait_for(path, seconds, what):
    deadline = time.monotonic() + seconds
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise SystemExit(f"docker bench: {what} did not come up ({path})")
        time.sleep(0.1)


def docker(socket, args, timeout=120, check=True):
    env = dict(os.environ, DOCKER_HOST="unix://" + socket, DOCKER_CONFIG=os.path.dirname(socket) + "/docker-config")
    started = time.monotonic()
    done = subprocess.run([DOCKER, *args], env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    elapsed = (time.monotonic() - started) * 1000
    if check and done.returncode != 0:
        raise SystemExit(f"docker bench: docker {' '.join(args)} exited {done.returncode}: {done.stderr.strip()[-400:]}")
    return elapsed, done


def busybox_tar(tmp):
    """A busybox root filesystem as a tar, for `docker import` (dockerd's image store is its own)."""
    root = os.path.join(tmp, "docker-busybox")
    os.makedirs(os.path.join(root, "bin"), exist_ok=True)
    shutil.copy("/bin/busybox", os.path.join(root, "bin/busybox"))
    for name in ("sh", "true"):
        link = os.path.join(root, "bin", name)
        if not os.path.lexists(link):
            os.symlink("busybox", link)
    archive = os.path.join(tmp, "docker-busybox.tar")
    subprocess.run(["tar", "-cf", archive, "-C", root, "."], check=True)
    return archive


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--hvc", required=True)
    parser.add_argument("--tmp", required=True)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    tmp = os.path.join(args.tmp, "docker-bench")
    os.makedirs(tmp, exist_ok=True)
    hvcd_socket = os.path.join(tmp, "hvc.sock")
    hvc_docker = os.path.join(tmp, "docker.sock")
    dockerd_socket = os.path.join(tmp, "dockerd.sock")
    hvcd = subprocess.Popen([os.path.join(os.path.dirname(args.hvc), "hvcd"), "--socket", hvcd_socket],
                            stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "hvcd.log"), "w"))
    dockerd = subprocess.Popen(["/usr/sbin/dockerd", "--data-root", os.path.join(tmp, "dockerd-root"),
                                "--exec-root", os.path.join(tmp, "dockerd-exec"), "--pidfile", os.path.join(tmp, "dockerd.pid"),
                                "-H", "unix://" + dockerd_socket, "--iptables=false", "--ip6tables=false", "--bridge=none",
                                "--containerd-namespace", "hvc-bench", "--containerd-plugins-namespace", "hvc-bench-plugins"],
                               stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "dockerd.log"), "w"))
    try:
        wait_for(hvc_docker, 30, "hvcd's Docker socket")
        wait_for(dockerd_socket, 60, "dockerd")
        deadline = time.monotonic() + 60
        while docker(dockerd_socket, ["version"], check=False)[1].returncode != 0:
            if time.monotonic() > deadline:
                raise SystemExit("docker bench: dockerd does not answer")
            time.sleep(0.5)
        docker(dockerd_socket, ["import", busybox_tar(tmp), "busybox:bench"])
        peers = [("hvc (hvcd's Docker API)", hvc_docker, "busybox"), ("dockerd + runc", dockerd_socket, "busybox:bench")]
        # Untimed first runs: hvc makes the image's template, dockerd warms its caches.
        for _, socket, image in peers:
            docker(socket, ["run", "--rm", "--network", "none", image, "true"])
        times = {label: [] for label, _, _ in peers}
        for _ in range(args.runs):
            for label, socket, image in peers:
                elapsed, _ = docker(socket, ["run", "--rm", "--network", "none", image, "true"])
                times[label].append(elapsed)
        hvc_median = statistics.median(times[peers[0][0]])
        runc_median = statistics.median(times[peers[1][0]])
        print("### `docker run --rm busybox true`: hvcd's Docker API against dockerd with runc\n")
        print(f"The docker CLI 20.10 against each daemon's socket, `--network none`, {args.runs} runs each, in turn "
              "(first runs untimed). hvc's runs are template clones.\n")
        print("| daemon | median ms | min | max | ratio to dockerd + runc |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for label, _, _ in peers:
            values = times[label]
            print(f"| {label} | {statistics.median(values):.1f} | {min(values):.1f} | {max(values):.1f} | "
                  f"{statistics.median(values) / runc_median:.2f}x |")
        print()
        print(f"hvc through the Docker API takes {hvc_median / runc_median:.2f}x dockerd + runc's time per `docker run --rm`.\n")
    finally:
        for process in (hvcd, dockerd):
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        subprocess.run(["umount", "-R", os.path.join(tmp, "dockerd-root")], stderr=subprocess.DEVNULL)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
