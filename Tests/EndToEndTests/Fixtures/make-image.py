#!/usr/bin/env python3
"""Writes OCI image archives for hvc's end-to-end tests, well-formed or hostile.

usage: make-image.py SCENARIO OUT.tar [OUTSIDE_PATH [SALT]]

Scenarios: layers (three layers with a whiteout, an opaque directory, a hard link and a
symlink), dotdot, absolute, symlink-escape, hardlink-escape, bad-digest, bad-size, bomb,
truncated.
"""
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile

BUSYBOX = "/bin/busybox"


def tar_bytes(entries):
    """entries: (name, kind, payload) with kind file|dir|symlink|hardlink."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, payload in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1700000000
            if kind == "file":
                data = payload if isinstance(payload, bytes) else payload.encode()
                info.size = len(data)
                info.mode = 0o755 if name.endswith("busybox") else 0o644
                tar.addfile(info, io.BytesIO(data))
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            elif kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = payload
                tar.addfile(info)
            elif kind == "hardlink":
                info.type = tarfile.LNKTYPE
                info.linkname = payload
                tar.addfile(info)
    return out.getvalue()


def base_layer():
    entries = [("bin", "dir", None), ("bin/busybox", "file", open(BUSYBOX, "rb").read())]
    for applet in ["sh", "ls", "cat", "echo", "find", "stat", "readlink", "test", "true", "sleep"]:
        entries.append(("bin/" + applet, "symlink", "busybox"))
    entries += [("etc", "dir", None), ("etc/keep", "file", "keep\n"), ("etc/remove", "file", "remove\n"),
                ("opaque", "dir", None), ("opaque/lower", "file", "lower\n"), ("tmp", "dir", None)]
    return entries


def write_archive(out, layers, config_extra=None, corrupt=None):
    blobs = {}

    def add(data):
        digest = hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return {"digest": "sha256:" + digest, "size": len(data)}

    layer_descriptors, diff_ids = [], []
    for raw in layers:
        compressed = gzip.compress(raw, mtime=0)
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
        d = add(compressed)
        d["mediaType"] = "application/vnd.oci.image.layer.v1.tar+gzip"
        layer_descriptors.append(d)
    config = {"architecture": "amd64", "os": "linux",
              "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin", "FROM_IMAGE=yes"], "WorkingDir": "/etc"},
              "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    config.update(config_extra or {})
    config_descriptor = add(json.dumps(config).encode())
    config_descriptor["mediaType"] = "application/vnd.oci.image.config.v1+json"
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": config_descriptor, "layers": layer_descriptors}
    manifest_descriptor = add(json.dumps(manifest).encode())
    manifest_descriptor["mediaType"] = "application/vnd.oci.image.manifest.v1+json"
    manifest_descriptor["annotations"] = {"org.opencontainers.image.ref.name": "fixture:layers"}
    if corrupt == "bad-size":
        layer_descriptors[0]["size"] += 1
        manifest = {"schemaVersion": 2, "config": config_descriptor, "layers": layer_descriptors}
        manifest_descriptor.update(add(json.dumps(manifest).encode()))
    index = {"schemaVersion": 2, "manifests": [manifest_descriptor]}
    if corrupt == "bad-digest":
        digest = layer_descriptors[-1]["digest"][7:]
        blobs[digest] = blobs[digest][:-1] + bytes([blobs[digest][-1] ^ 0xFF])
    out_tar = io.BytesIO()
    with tarfile.open(fileobj=out_tar, mode="w") as tar:
        def put(name, data):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        put("oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
        put("index.json", json.dumps(index).encode())
        for digest, data in blobs.items():
            put("blobs/sha256/" + digest, data)
    data = out_tar.getvalue()
    if corrupt == "truncated":
        data = data[: len(data) // 2]
    with open(out, "wb") as f:
        f.write(data)


def main():
    scenario, out = sys.argv[1], sys.argv[2]
    outside = sys.argv[3] if len(sys.argv) > 3 else "/tmp/hvc-outside"
    salt = sys.argv[4] if len(sys.argv) > 4 else ""
    base = tar_bytes(base_layer())
    if scenario in ("layers", "bad-digest", "bad-size", "truncated"):
        second = tar_bytes([("etc/.wh.remove", "file", ""), ("etc/added", "file", "added\n"),
                            ("opaque/.wh..wh..opq", "file", ""), ("opaque/upper", "file", "upper\n")])
        third = tar_bytes([("etc/hard", "hardlink", "etc/keep"), ("etc/soft", "symlink", "/etc/keep")]
                          + ([("etc/salt", "file", salt)] if salt else []))
        write_archive(out, [base, second, third], corrupt=None if scenario == "layers" else scenario)
    elif scenario == "dotdot":
        write_archive(out, [base, tar_bytes([("etc/../../escaped", "file", "x")])])
    elif scenario == "absolute":
        write_archive(out, [base, tar_bytes([(outside + "/absolute", "file", "x")])])
    elif scenario == "symlink-escape":
        write_archive(out, [base, tar_bytes([("escape", "symlink", outside)]),
                            tar_bytes([("escape/planted", "file", "x")])])
    elif scenario == "hardlink-escape":
        write_archive(out, [base, tar_bytes([("etc/shadow-link", "hardlink", "../../../../etc/shadow")])])
    elif scenario == "bomb":
        write_archive(out, [base, tar_bytes([("zeros", "file", bytes(64 << 20))])])
    else:
        sys.exit("unknown scenario " + scenario)


if __name__ == "__main__":
    main()
