#!/usr/bin/env python3
"""Holds many clients on hvcd at once and measures whether it still answers.

Usage: waiters.py SOCKET HVCD_PID WAITERS FOLLOWERS ID...

Opens WAITERS connections that each wait (POST /v1/containers/ID/wait) on one of the running
containers ID..., and FOLLOWERS connections, half following a container's log, half the event
stream. While they are all open it times `GET /v1/containers` (ps) and `POST /v1/containers`
(create) and reads hvcd's thread count; then it stops the containers and checks that every
waiter got its container's exit code, every log follower the container's output and the end
of the body, and every event follower each container's `die`. Prints one JSON object.
"""
import json
import os
import selectors
import socket
import sys
import time


def request(method, path, body=None):
    data = b"" if body is None else json.dumps(body).encode()
    head = f"{method} {path} HTTP/1.1\r\nHost: hvc\r\nConnection: close\r\nContent-Length: {len(data)}\r\nContent-Type: application/json\r\n\r\n"
    return head.encode() + data


def call(sock_path, method, path, body=None, timeout=30):
    """One request on a connection of its own; returns (status, body bytes, seconds)."""
    started = time.monotonic()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(sock_path)
    s.sendall(request(method, path, body))
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1]) if head else 0
    return status, rest, time.monotonic() - started


def threads(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return -1


def dechunk(data):
    """The body of a chunked response, and whether its last chunk arrived."""
    body, complete = b"", False
    while True:
        line, sep, rest = data.partition(b"\r\n")
        if not sep:
            break
        size = int(line.split(b";")[0], 16)
        if size == 0:
            complete = True
            break
        if len(rest) < size + 2:
            break
        body += rest[:size]
        data = rest[size + 2:]
    return body, complete


class Client:
    def __init__(self, kind, target, sock):
        self.kind, self.target, self.sock, self.data, self.closed = kind, target, sock, b"", False


def main():
    sock_path, hvcd_pid, waiters, followers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    ids = sys.argv[5:]
    report = {"threadsBefore": threads(hvcd_pid)}
    selector = selectors.DefaultSelector()
    clients = []

    def open_client(kind, target, path, method="GET"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(sock_path)
        s.sendall(request(method, path))
        s.setblocking(False)
        client = Client(kind, target, s)
        selector.register(s, selectors.EVENT_READ, client)
        clients.append(client)

    for n in range(waiters):
        cid = ids[n % len(ids)]
        open_client("wait", cid, f"/v1/containers/{cid}/wait", "POST")
    for n in range(followers):
        cid = ids[n % len(ids)]
        if n % 2 == 0:
            open_client("logs", cid, f"/v1/containers/{cid}/logs?follow=true")
        else:
            open_client("events", None, "/v1/events")

    def pump(seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for key, _ in selector.select(timeout=0.05):
                client = key.data
                try:
                    chunk = client.sock.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    chunk = b""
                if chunk:
                    client.data += chunk
                else:
                    client.closed = True
                    selector.unregister(client.sock)
                    client.sock.close()

    pump(2)
    report["opened"] = len(clients)
    report["waitersAnsweredEarly"] = sum(1 for c in clients if c.kind == "wait" and c.data)
    report["threadsWithClients"] = threads(hvcd_pid)

    ps, create = [], []
    for _ in range(5):
        status, _, seconds = call(sock_path, "GET", "/v1/containers")
        ps.append(seconds if status == 200 else 99)
        pump(0.1)
    created = []
    for _ in range(3):
        status, body, seconds = call(sock_path, "POST", "/v1/containers", {"image": "busybox", "cmd": ["true"], "networks": ["none"]})
        create.append(seconds if status == 201 else 99)
        if status == 201:
            created.append(json.loads(body)["id"])
        pump(0.1)
    for cid in created:
        call(sock_path, "DELETE", f"/v1/containers/{cid}")
    report["psSeconds"] = ps
    report["createSeconds"] = create

    for cid in ids:
        status, _, _ = call(sock_path, "POST", f"/v1/containers/{cid}/stop?timeout=1", timeout=60)
        report.setdefault("stopStatus", []).append(status)
    pump(1)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(not c.closed and c.kind != "events" for c in clients):
        pump(0.5)
    pump(1)

    exits = {}
    for cid in ids:
        _, body, _ = call(sock_path, "GET", f"/v1/containers/{cid}")
        exits[cid] = json.loads(body)["state"].get("exitCode")
    report["exitCodes"] = exits

    wrong_waits, logs_without_output, logs_unended, events_missing = 0, 0, 0, 0
    for c in clients:
        head, _, rest = c.data.partition(b"\r\n\r\n")
        if c.kind == "wait":
            try:
                answered = json.loads(rest.decode()).get("exitCode")
            except ValueError:
                answered = None
            if not head.startswith(b"HTTP/1.1 200") or answered != exits[c.target]:
                wrong_waits += 1
        elif c.kind == "logs":
            body, complete = dechunk(rest)
            if b"tick" not in body:
                logs_without_output += 1
            if not complete:
                logs_unended += 1
        else:
            body, _ = dechunk(rest)
            events = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
            died = {e["id"] for e in events if e.get("action") == "die"}
            if not set(ids) <= died:
                events_missing += 1
    report.update(waitsWrong=wrong_waits, logsWithoutOutput=logs_without_output, logsUnended=logs_unended,
                  eventStreamsMissingDie=events_missing,
                  waiters=sum(1 for c in clients if c.kind == "wait"),
                  logFollowers=sum(1 for c in clients if c.kind == "logs"),
                  eventFollowers=sum(1 for c in clients if c.kind == "events"))
    for c in clients:
        if not c.closed:
            c.sock.close()
    print(json.dumps(report, sort_keys=True))


if __name__ == "__main__":
    main()
