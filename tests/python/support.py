"""What the Python suites share: free ports, the capstan binary, API calls, client settings."""

import json
import os
import pathlib
import socket
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def binary():
    if os.environ.get("CAPSTAN_BIN"):
        return os.environ["CAPSTAN_BIN"]
    target = os.environ.get("CARGO_TARGET_DIR", str(pathlib.Path.home() / ".cache/capstan/target"))
    return str(pathlib.Path(target) / "debug/capstan")


def call(api, method, path, auth=None, body=None):
    request = urllib.request.Request(f"{api}{path}", method=method, data=json.dumps(body).encode() if body is not None else None)
    request.add_header("content-type", "application/json")
    if auth:
        request.add_header("authorization", auth)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def client_config(cluster, mechanism):
    return {
        "bootstrap.servers": cluster["tcp_endpoint"],
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": mechanism,
        "sasl.username": cluster["username"],
        "sasl.password": cluster["password"],
    }
