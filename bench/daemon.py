#!/usr/bin/env python3
"""hvcd under waiting clients: `GET /v1/containers` (ps) latency with 0 and with N clients
waiting on containers (POST /v1/containers/ID/wait), interleaved round by round, and hvcd's
thread count with each. Prints a Markdown section.

Usage: daemon.py --hvc PATH --tmp DIR [--waiters N] [--runs N]
"""
import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time


def call(path, method, url, body=None):
    data = b"" if body is None else json.dumps(body).encode()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(60)
    s.connect(path)
    s.sendall(f"{method} {url} HTTP/1.1\r\nHost: hvc\r\nConnection: close\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data)
    reply = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        reply += chunk
    s.close()
    head, _, rest = reply.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), rest


def threads(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("Threads:"))


def ps_latency(path, samples):
    times = []
    for _ in range(samples):
        started = time.monotonic()
        status, _ = call(path, "GET", "/v1/containers")
        if status != 200:
            raise SystemExit(f"daemon bench: ps answered {status}")
        times.append((time.monotonic() - started) * 1000)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--hvc", required=True)
    parser.add_argument("--tmp", required=True)
    parser.add_argument("--waiters", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    hvcd = os.path.join(os.path.dirname(args.hvc), "hvcd")
    sock = os.path.join(args.tmp, "bench-hvcd.sock")
    tenants = os.path.join(args.tmp, "bench-tenants.json")
    with open(tenants, "w") as f:
        f.write("{}")
    daemon = subprocess.Popen([hvcd, "--socket", sock, "--tenants", tenants], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ids = []
    try:
        for _ in range(100):
            if os.path.exists(sock):
                break
            time.sleep(0.1)
        else:
            raise SystemExit("daemon bench: hvcd did not start")
        for _ in range(4):
            status, body = call(sock, "POST", "/v1/containers",
                                {"image": "busybox", "cmd": ["sleep", "100000"], "networks": ["none"], "start": True})
            if status != 201:
                raise SystemExit(f"daemon bench: create answered {status}: {body!r}")
            ids.append(json.loads(body)["id"])
        idle, loaded, idle_threads, loaded_threads = [], [], [], []
        for _ in range(args.runs):
            idle.append(ps_latency(sock, 20))
            idle_threads.append(threads(daemon.pid))
            waiters = []
            for n in range(args.waiters):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(sock)
                s.sendall(f"POST /v1/containers/{ids[n % len(ids)]}/wait HTTP/1.1\r\nHost: hvc\r\nContent-Length: 0\r\n\r\n".encode())
                waiters.append(s)
            time.sleep(0.5)
            loaded.append(ps_latency(sock, 20))
            loaded_threads.append(threads(daemon.pid))
            for s in waiters:
                s.close()
            time.sleep(0.5)
    finally:
        for cid in ids:
            call(sock, "DELETE", f"/v1/containers/{cid}?force=true")
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)
    a, b = statistics.median(idle), statistics.median(loaded)
    print("\n### hvcd under waiting clients (`bench/daemon.py`)\n")
    print(f"`GET /v1/containers` (ps, 4 running containers), median of {args.runs} rounds of 20 requests each, "
          f"with no waiter and with {args.waiters} clients waiting on the containers (`POST .../wait`), interleaved.\n")
    print("| hvcd | ps latency (ms) | hvcd threads |")
    print("| --- | ---: | ---: |")
    print(f"| 0 waiters | {a:.2f} | {statistics.median(idle_threads):.0f} |")
    print(f"| {args.waiters} waiters | {b:.2f} | {statistics.median(loaded_threads):.0f} |")
    print(f"| ratio | {b / a:.2f}x | |")


if __name__ == "__main__":
    main()
