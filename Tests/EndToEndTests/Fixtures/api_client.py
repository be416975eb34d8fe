#!/usr/bin/env python3
"""A client of hvcd's API for hvc's end-to-end tests: runs one scenario over the Unix socket,
checks every response's status and validates its body against Specs/api.yaml.

usage: api_client.py SOCKET SPEC SCENARIO [ARG...]   (exits non-zero with a message on failure)
"""
import http.client
import json
import socket
import sys

import jsonschema
import yaml


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=300)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(300)
        self.sock.connect(self.path)


class Client:
    def __init__(self, path, spec_path):
        self.path = path
        with open(spec_path) as f:
            self.spec = yaml.safe_load(f)

    def call(self, method, url, body=None, expect=None, raw=False):
        connection = UnixConnection(self.path)
        headers = {}
        if body is not None and not raw:
            body = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        connection.request(method, url, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
        connection.close()
        if expect is not None and response.status != expect:
            fail(f"{method} {url}: status {response.status}, expected {expect}: {data[:300]!r}")
        self.validate(method, url, response.status, response.getheader("Content-Type", ""), data)
        if response.getheader("Content-Type", "").startswith("application/json") and data:
            return response.status, json.loads(data)
        return response.status, data.decode(errors="replace")

    def validate(self, method, url, status, content_type, data):
        """Finds the spec's response for this request and checks the body against its schema."""
        path = url.split("?")[0]
        for template, item in self.spec["paths"].items():
            t_parts, u_parts = template.strip("/").split("/"), path.strip("/").split("/")
            if len(t_parts) != len(u_parts):
                continue
            if all(t == u or t.startswith("{") for t, u in zip(t_parts, u_parts)) and method.lower() in item:
                responses = item[method.lower()]["responses"]
                if str(status) not in responses:
                    fail(f"{method} {url}: status {status} is not in the spec ({sorted(responses)})")
                response = responses[str(status)]
                if "$ref" in response:
                    response = self.resolve(response["$ref"])
                content = response.get("content")
                if not content:
                    if data:
                        fail(f"{method} {url}: {status} should have no body")
                    return
                if "application/json" in content:
                    if not content_type.startswith("application/json"):
                        fail(f"{method} {url}: content type {content_type}, expected JSON")
                    schema = dict(content["application/json"]["schema"])
                    schema["components"] = self.spec["components"]
                    try:
                        jsonschema.validate(json.loads(data), schema)
                    except jsonschema.ValidationError as error:
                        fail(f"{method} {url}: body does not match the spec: {error.message}")
                return
        fail(f"{method} {url}: not in the spec")

    def resolve(self, ref):
        node = self.spec
        for part in ref.lstrip("#/").split("/"):
            node = node[part]
        return node


def fail(message):
    print(message, file=sys.stderr)
    sys.exit(1)


def main():
    client = Client(sys.argv[1], sys.argv[2])
    scenario, args = sys.argv[3], sys.argv[4:]
    if scenario == "lifecycle":
        client.call("GET", "/v1/version", expect=200)
        client.call("GET", "/v1/info", expect=200)
        _, created = client.call("POST", "/v1/containers", {"image": "busybox", "cmd": ["sh", "-c", "echo hi; sleep 1000"],
                                                             "name": "api-one", "memory": "256m", "cpus": 1, "start": True}, expect=201)
        cid = created["id"]
        _, listed = client.call("GET", "/v1/containers", expect=200)
        if cid not in [c["config"]["id"] for c in listed]:
            fail("created container not listed")
        _, record = client.call("GET", f"/v1/containers/{cid[:12]}", expect=200)
        if record["state"]["status"] != "running":
            fail(f"state {record['state']['status']}")
        for _ in range(100):
            _, logs = client.call("GET", f"/v1/containers/{cid}/logs", expect=200)
            if logs == "hi\n":
                break
        else:
            fail(f"logs {logs!r}")
        client.call("POST", f"/v1/containers/{cid}/kill?signal=9", expect=204)
        _, waited = client.call("POST", f"/v1/containers/{cid}/wait", expect=200)
        if waited["exitCode"] != 137:
            fail(f"exit code {waited}")
        client.call("DELETE", f"/v1/containers/{cid}", expect=204)
        client.call("GET", f"/v1/containers/{cid}", expect=404)
        # A second one stopped with a grace period, and removed by force while running.
        _, created = client.call("POST", "/v1/containers", {"image": "busybox", "cmd": ["sleep", "1000"], "start": True}, expect=201)
        client.call("POST", f"/v1/containers/{created['id']}/stop?timeout=1", expect=200)
        client.call("DELETE", f"/v1/containers/{created['id']}", expect=204)
        _, created = client.call("POST", "/v1/containers", {"image": "busybox", "cmd": ["sleep", "1000"], "start": True}, expect=201)
        client.call("DELETE", f"/v1/containers/{created['id']}", expect=409)
        client.call("DELETE", f"/v1/containers/{created['id']}?force=true", expect=204)
        # Errors are JSON with the right status.
        client.call("POST", "/v1/containers", {"image": "no-such-image", "cmd": ["true"]}, expect=404)
        client.call("POST", "/v1/containers", {"cmd": ["true"]}, expect=400)
        client.call("POST", "/v1/containers", b"{not json", expect=400, raw=True)
        client.call("POST", "/v1/containers", b"x" * (2 << 20), expect=413, raw=True)
        _, images = client.call("GET", "/v1/images", expect=200)
        if not any("busybox:latest" in i["references"] for i in images):
            fail("busybox not listed")
        if args:
            with open(args[0], "rb") as f:
                client.call("POST", "/v1/images/load", f.read(), expect=201, raw=True)
            client.call("DELETE", "/v1/images/fixture:layers", expect=200)
        print("ok")
    elif scenario == "streams":
        # Events of this tenant as they happen, read on a thread from one long response.
        import threading
        events = []
        connection = UnixConnection(client.path)
        connection.request("GET", "/v1/events")
        stream = connection.getresponse()
        if stream.status != 200 or not stream.getheader("Content-Type", "").startswith("application/x-ndjson"):
            fail(f"events: {stream.status} {stream.getheader('Content-Type')}")
        event_schema = dict(client.spec["components"]["schemas"]["Event"])

        def read_events():
            for line in stream:
                if line.strip():
                    event = json.loads(line)
                    jsonschema.validate(event, event_schema)
                    events.append(event)
        reader = threading.Thread(target=read_events, daemon=True)
        reader.start()
        _, created = client.call("POST", "/v1/containers", {"image": "busybox", "cmd": ["sh", "-c", "echo one; sleep 1; echo two; exit 3"],
                                                             "start": True}, expect=201)
        cid = created["id"]
        # Following the log streams it to the end, which comes when the container exits.
        status, text = client.call("GET", f"/v1/containers/{cid}/logs?follow=true", expect=200)
        if text != "one\ntwo\n":
            fail(f"followed logs {text!r}")
        _, waited = client.call("POST", f"/v1/containers/{cid}/wait", expect=200)
        client.call("DELETE", f"/v1/containers/{cid}", expect=204)
        import time
        deadline = time.time() + 10
        wanted = ["create", "start", "die", "destroy"]
        while time.time() < deadline:
            mine = [e for e in events if e["id"] == cid]
            if [e["action"] for e in mine] == wanted:
                break
            time.sleep(0.1)
        mine = [e for e in events if e["id"] == cid]
        if [e["action"] for e in mine] != wanted:
            fail(f"events {[(e['action'], e['id'][:12]) for e in events]}")
        if mine[2].get("exitCode") != 3:
            fail(f"die event {mine[2]}")
        connection.close()
        # A pull with progress that fails says so in the stream.
        connection = UnixConnection(client.path)
        connection.request("POST", "/v1/images/pull?progress=true", body=json.dumps({"reference": "127.0.0.1:9/nothing:here"}),
                           headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        lines = [json.loads(line) for line in response.read().splitlines() if line.strip()]
        if response.status != 200 or not lines or "code" not in lines[-1] or "message" not in lines[-1]:
            fail(f"pull progress: {response.status} {lines}")
        print("ok")
    elif scenario == "pull-progress":
        connection = UnixConnection(client.path)
        connection.request("POST", "/v1/images/pull?progress=true", body=json.dumps({"reference": args[0]}),
                           headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        lines = [json.loads(line) for line in response.read().splitlines() if line.strip()]
        if response.status != 200 or len(lines) < 2 or "id" not in lines[-1]:
            fail(f"pull progress: {response.status} {lines}")
        if not all("status" in line for line in lines[:-1]):
            fail(f"progress lines: {lines[:-1]}")
        jsonschema.validate(lines[-1], dict(client.spec["components"]["schemas"]["Pulled"]))
        print(lines[-1]["id"])
    elif scenario == "version":
        client.call("GET", "/v1/version", expect=200)
        print("ok")
    elif scenario == "create":
        _, created = client.call("POST", "/v1/containers", {"image": "busybox", "cmd": ["sleep", "1000"], "name": args[0], "start": True}, expect=201)
        print(created["id"])
    elif scenario == "quota":
        status, body = client.call("POST", "/v1/containers", {"image": "busybox", "cmd": ["sleep", "1000"], "start": True})
        if status != 403 or body["code"] != "quota":
            fail(f"quota: {status} {body}")
        print("ok")
    elif scenario == "cannot-touch":
        cid = args[0]
        tried = 0
        for method, url in [("GET", f"/v1/containers/{cid}"), ("GET", f"/v1/containers/{cid}/logs"),
                            ("POST", f"/v1/containers/{cid}/stop"), ("POST", f"/v1/containers/{cid}/kill"),
                            ("POST", f"/v1/containers/{cid}/wait"), ("DELETE", f"/v1/containers/{cid}?force=true")]:
            client.call(method, url, expect=404)
            tried += 1
        _, listed = client.call("GET", "/v1/containers", expect=200)
        if cid in [c["config"]["id"] for c in listed]:
            fail("another tenant's container is listed")
        client.call("DELETE", "/v1/images/busybox", expect=403)
        print(f"tried {tried} routes and the list")
        print("ok")
    elif scenario == "sees":
        _, listed = client.call("GET", "/v1/containers", expect=200)
        ids = [c["config"]["id"] for c in listed]
        missing = [a for a in args if a not in ids]
        if missing:
            fail(f"not listed: {missing}")
        print("ok")
    elif scenario == "churn":
        # Many clients at once, each creating and deleting containers; one in four is started.
        import threading
        errors = []
        finished = []

        def worker(n):
            # Any exception, not only a failed check, fails the client: a thread that dies
            # silently must not pass for one that did its work.
            try:
                for i in range(3):
                    start = (n + i) % 4 == 0
                    _, created = client.call("POST", "/v1/containers", {"image": "busybox", "cmd": ["sleep", "1000"],
                                                                         "name": f"churn-{n}-{i}", "start": start}, expect=201)
                    client.call("GET", f"/v1/containers/{created['id']}", expect=200)
                    client.call("DELETE", f"/v1/containers/{created['id']}?force=true", expect=204)
                finished.append(n)
            except BaseException as error:  # noqa: B902 - reported below, whatever it was
                errors.append(f"{n}: {error!r}")

        count = int(args[0])
        threads = [threading.Thread(target=worker, args=(n,)) for n in range(count)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            fail(f"clients failed: {errors}")
        if sorted(finished) != list(range(count)):
            fail(f"only {len(finished)} of {count} clients finished")
        _, listed = client.call("GET", "/v1/containers", expect=200)
        if any(c["config"]["name"].startswith("churn-") for c in listed):
            fail("containers left behind")
        print("ok")
    elif scenario == "networks":
        # A network, a container on it with a published port, and the errors, each response
        # checked against the spec.
        _, network = client.call("POST", "/v1/networks", {"name": "api-net", "internal": False}, expect=201)
        client.call("POST", "/v1/networks", {"name": "api-net"}, expect=409)
        client.call("POST", "/v1/networks", {"name": "bad/name"}, expect=400)
        client.call("POST", "/v1/networks", {"name": "bad-subnet", "subnet": "10.210.0.1/24"}, expect=400)
        _, listed = client.call("GET", "/v1/networks", expect=200)
        if network["id"] not in [n["id"] for n in listed]:
            fail("created network not listed")
        _, created = client.call("POST", "/v1/containers", {"image": "busybox", "cmd": ["sleep", "1000"], "start": True,
                                                             "networks": ["api-net"], "ports": ["127.0.0.1::80/udp"]}, expect=201)
        _, record = client.call("GET", f"/v1/containers/{created['id']}", expect=200)
        endpoint = record["state"].get("endpoint") or fail("no endpoint in the container's state")
        port = endpoint["ports"][0]
        if endpoint["network"] != "api-net" or port["hostIP"] != "127.0.0.1" or port["hostPort"] == 0 or port["protocol"] != "udp":
            fail(f"endpoint {endpoint}")
        _, details = client.call("GET", "/v1/networks/api-net", expect=200)
        if [c["id"] for c in details["containers"]] != [created["id"]]:
            fail(f"network members {details['containers']}")
        client.call("DELETE", "/v1/networks/api-net", expect=409)
        client.call("POST", "/v1/containers", {"image": "busybox", "cmd": ["true"], "networks": ["a", "b"]}, expect=400)
        client.call("POST", "/v1/containers", {"image": "busybox", "cmd": ["true"], "networks": ["no-such-net"]}, expect=404)
        client.call("POST", "/v1/containers", {"image": "busybox", "cmd": ["true"], "ports": ["99999:80"]}, expect=400)
        client.call("DELETE", f"/v1/containers/{created['id']}?force=true", expect=204)
        client.call("DELETE", "/v1/networks/api-net", expect=204)
        client.call("GET", "/v1/networks/api-net", expect=404)
        _, pruned = client.call("POST", "/v1/networks/prune", expect=200)
        print("ok")
    elif scenario == "volumes":
        # A volume, a container mounting it, a host folder and a tmpfs, and the errors, each
        # response checked against the spec. args: a host folder.
        folder = args[0]
        _, volume = client.call("POST", "/v1/volumes", {"name": "api-vol"}, expect=201)
        client.call("POST", "/v1/volumes", {"name": "api-vol"}, expect=409)
        client.call("POST", "/v1/volumes", {"name": "../up"}, expect=400)
        client.call("GET", "/v1/volumes/..", expect=400)
        _, listed = client.call("GET", "/v1/volumes", expect=200)
        if "api-vol" not in [v["name"] for v in listed]:
            fail("created volume not listed")
        mounts = [{"type": "volume", "source": "api-vol", "target": "/v"},
                  {"type": "bind", "source": folder, "target": "/host", "readOnly": True},
                  {"type": "tmpfs", "target": "/scratch", "tmpfsSize": 1048576}]
        _, created = client.call("POST", "/v1/containers", {"image": "busybox", "cmd": ["sleep", "1000"], "start": True,
                                                             "networks": ["none"], "mounts": mounts, "readOnly": True}, expect=201)
        _, record = client.call("GET", f"/v1/containers/{created['id']}", expect=200)
        got = {m["target"]: m for m in record["config"]["mounts"]}
        if got["/v"]["source"] != "api-vol" or not got["/host"]["readOnly"] or got["/scratch"]["type"] != "tmpfs" \
                or "/tmp" not in got or not record["config"].get("readOnlyRoot"):
            fail(f"mounts {record['config']['mounts']}")
        _, details = client.call("GET", "/v1/volumes/api-vol", expect=200)
        if details["containers"] != [record["config"]["name"]]:
            fail(f"volume users {details['containers']}")
        client.call("DELETE", "/v1/volumes/api-vol", expect=409)
        for bad in [{"type": "bind", "source": folder + "/no-such-dir", "target": "/x"},
                    {"type": "bind", "source": "relative/dir", "target": "/x"},
                    {"type": "volume", "source": "v", "target": "relative"},
                    {"type": "volume", "source": "v", "target": "/proc/sys"},
                    {"type": "volume", "source": "a/b", "target": "/x"},
                    {"type": "tmpfs", "source": "x", "target": "/x"}]:
            client.call("POST", "/v1/containers", {"image": "busybox", "cmd": ["true"], "mounts": [bad]}, expect=400)
        client.call("POST", "/v1/containers", {"image": "busybox", "cmd": ["true"],
                                               "mounts": [{"type": "tmpfs", "target": "/x"}, {"type": "tmpfs", "target": "/x/"}]}, expect=400)
        client.call("DELETE", f"/v1/containers/{created['id']}?force=true", expect=204)
        client.call("DELETE", "/v1/volumes/api-vol", expect=204)
        client.call("GET", "/v1/volumes/api-vol", expect=404)
        client.call("POST", "/v1/volumes/prune", expect=200)
        print("ok")
    elif scenario == "bind-forbidden":
        # A tenant's bind mount outside its bind roots: 403, and nothing made. args: a host folder.
        _, before = client.call("GET", "/v1/containers", expect=200)
        status, body = client.call("POST", "/v1/containers", {"image": "busybox", "cmd": ["true"],
                                                               "mounts": [{"type": "bind", "source": args[0], "target": "/x"}]}, expect=403)
        if "bindRoots" not in body.get("message", ""):
            fail(f"403 without a clear message: {body}")
        _, after = client.call("GET", "/v1/containers", expect=200)
        if len(after) != len(before):
            fail("a refused create left a container")
        print("ok")
    elif scenario == "delete":
        client.call("DELETE", f"/v1/containers/{args[0]}?force=true", expect=204)
        print("ok")
    else:
        fail("unknown scenario " + scenario)


if __name__ == "__main__":
    main()
