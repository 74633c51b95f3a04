"""The README's grpcurl lines for control, run as written: its `call`
function (grpcurl with the headers services.control.sign prints) against a
real control server, once for every RPC of sandbox.control.v1.Control and
sandbox.control.v1.Artifacts."""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

from sandbox.control.v1 import artifacts_pb2, control_pb2
from tests.integration.control.conftest import TENANT_KEYS

pytestmark = pytest.mark.integration

ROOT = pathlib.Path(__file__).resolve().parents[3]
BIN = pathlib.Path(sys.executable).parent
TENANT = "tenant-a"
CALL = re.compile(r"^call (\w+/\w+) '(.*)'$")


def _readme_calls() -> tuple[str, list[str]]:
    """The `call` function and the call lines of the README's shell block that defines it."""
    blocks = re.findall(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
    [block] = [b for b in blocks if "call() {" in b]
    function = block[block.index("call() {") : block.index("\n}\n") + 2]
    return function, [line for line in block.splitlines() if line.startswith("call ")]


def _objects(out: str) -> list[dict]:
    """grpcurl's output: one JSON object per message (several for a stream)."""
    decoder, objects, position = json.JSONDecoder(), [], 0
    while position < len(out):
        if out[position].isspace():
            position += 1
            continue
        value, position = decoder.raw_decode(out, position)
        objects.append(value)
    return objects


def _field(message: dict, name: str):
    """A field by its proto name, whichever JSON spelling grpcurl used."""
    camel = re.sub(r"_(\w)", lambda m: m.group(1).upper(), name)
    return message[name] if name in message else message[camel]


@pytest.mark.parametrize("control_server", ["sqlite"], indirect=True)
def test_every_control_rpc_through_grpcurl_as_the_readme_writes_it(control_server):
    function, lines = _readme_calls()
    function = (
        function.replace(".venv/bin/grpcurl", str(BIN / "grpcurl"))
        .replace(".venv/bin/python", sys.executable)
        .replace("127.0.0.1:50061", f"127.0.0.1:{control_server.port}")
        .replace("sign demo ", f"sign {TENANT} ")
    )
    env = {**os.environ, "SANDBOX_TENANT_KEY": TENANT_KEYS[TENANT]}
    ids: dict[str, str] = {}
    called = []
    for line in lines:
        method = CALL.match(line).group(1)
        for placeholder, value in ids.items():
            line = line.replace(placeholder, value)
        script = f"{function}\n{line}"
        done = subprocess.run(
            ["bash", "-c", script], check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, (line, done.stderr)
        answer = _objects(done.stdout)
        called.append(method)
        if method == "Control/Execute":
            finished = _field(answer[-1], "finished")
            assert finished["status"] == "EXECUTION_STATUS_COMPLETED", answer
            ids["EXECUTION_ID"] = _field(finished, "execution_id")
        elif method == "Artifacts/CreateArtifact":
            ids["ARTIFACT_ID"] = _field(answer[0], "artifact_id")
        elif method == "Artifacts/RunArtifact":
            finished = _field(answer[-1], "finished")
            assert _field(finished, "execution")["status"] == "EXECUTION_STATUS_COMPLETED", answer
            ids["RUN_ID"] = _field(finished, "run_id")
        elif method == "Control/RunCell" and json.loads(CALL.match(line).group(2))["code"] == "x":
            values = _field(_field(answer[-1], "result"), "values")
            assert [_field(value, "data") for value in values] == ["NDI="], answer  # "42"
        elif method in ("Control/GetOutputFile", "Control/GetSessionFile"):
            assert [_field(chunk, "data") for chunk in answer] == ["aGk="], answer  # "hi"
        elif method == "Artifacts/GetRunOutputFile":
            assert [_field(chunk, "data") for chunk in answer] == ["YWdhaW4="], answer  # "again"
    every = [
        f"{service.name}/{rpc.name}"
        for module in (control_pb2, artifacts_pb2)
        for service in module.DESCRIPTOR.services_by_name.values()
        for rpc in service.methods
    ]
    assert set(called) == set(every), set(every) - set(called)
