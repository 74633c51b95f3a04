"""The runner's `serve` mode run locally (not as PID 1, not in a container):
requests it refuses, and the one connection it accepts. The container-side
behaviour is in tests/integration/test_handoff.py."""

from __future__ import annotations

import marshal
import os
import pathlib
import signal
import socket
import struct
import subprocess
import sys
import time

import pytest

from services.spawner import handoff
from services.spawner.sandbox import STDERR, STDOUT

RUNNER = pathlib.Path(__file__).resolve().parents[2] / "images" / "runtime" / "runner.py"


@pytest.fixture
def runner(tmp_path, monkeypatch):
    monkeypatch.setattr(handoff, "SANDBOX_UID", os.getuid())
    socket_path = tmp_path / handoff.RUNNER_DIR / handoff.SOCKET_NAME
    process = subprocess.Popen([sys.executable, "-I", "-S", str(RUNNER), "serve", str(socket_path)])
    connection = handoff.connect(tmp_path, 10, lambda: process.poll() is None)
    yield connection, process, tmp_path
    connection.close()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=5) == 0


def raw(connection: handoff.RunnerConnection) -> socket.socket:
    return connection._socket


def test_a_program_runs_with_env_cwd_and_stdin(runner):
    connection, _, workspace = runner
    (workspace / "input").write_bytes(b"from stdin")
    program = connection.start(
        [sys.executable, "-c", "import os, sys; print(os.environ['X'], os.getcwd(), sys.stdin.read())"],
        {"X": "y"},
        str(workspace),
        str(workspace / "input"),
    )
    chunks = list(program.stream())
    assert b"".join(data for kind, data in chunks if kind == STDOUT) == f"y {workspace} from stdin\n".encode()
    assert program.exit_code() == 0


def test_a_missing_stdin_file_is_reported_like_a_missing_program(runner):
    connection, _, workspace = runner
    program = connection.start(["true"], {}, str(workspace), str(workspace / "absent"))
    chunks = list(program.stream())
    assert program.exit_code() == 127
    assert b"absent" in b"".join(data for kind, data in chunks if kind == STDERR)


def request(value: object) -> bytes:
    payload = marshal.dumps(value, 2)
    return struct.pack("!I", len(payload)) + payload


GOOD = {"argv": ["true"], "env": {}, "cwd": "/", "stdin": None}


@pytest.mark.parametrize(
    "message",
    [
        struct.pack("!I", 8) + b"not data",
        request([]),
        request({**GOOD, "argv": []}),
        request({**GOOD, "env": {"A": 1}}),
        request({**GOOD, "cwd": None}),
        request({**GOOD, "stdin": 5}),
        request({**GOOD, "argv": ["tr\0ue"]}),
        request({**GOOD, "env": {"A=B": "c"}}),
        request({**GOOD, "env": {"": "c"}}),
        request({**GOOD, "argv": [b"true"]}),
    ],
    ids=[
        "not-marshal",
        "not-dict",
        "empty-argv",
        "env-value",
        "cwd",
        "stdin",
        "nul",
        "env-name",
        "empty-name",
        "bytes",
    ],
)
def test_a_malformed_request_closes_the_connection(runner, message):
    connection, process, _ = runner
    raw(connection).sendall(message)
    raw(connection).settimeout(5)
    assert raw(connection).recv(1) == b""
    assert process.poll() is None  # back to holding


def test_an_oversized_request_closes_the_connection_without_being_read(runner):
    connection, process, _ = runner
    sock = raw(connection)
    sock.settimeout(10)
    sock.sendall(struct.pack("!I", 16 * 1024 * 1024 + 1))
    assert sock.recv(1) == b""
    assert process.poll() is None


def test_the_socket_is_gone_once_the_spawner_is_connected(runner):
    connection, _, workspace = runner
    program = connection.start(["true"], {}, str(workspace), None)
    list(program.stream())
    assert os.listdir(workspace / handoff.RUNNER_DIR) == []
    began = time.monotonic()
    with pytest.raises(handoff.HandoffError):
        handoff.connect(workspace, 0.2, lambda: True)
    assert time.monotonic() - began < 1
