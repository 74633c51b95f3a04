"""A session's cells without a container (docs/sessions.md): the runner's
relay of a kernel driver's frames (images/runtime/cellrelay.py, with a fake
driver), the spawner's parsing of them (handoff.RunnerCell), and the checks
both sides share."""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import signal
import socket
import struct
import subprocess
import sys
import textwrap

import pytest

from sandbox.common.v1 import session_pb2 as cells
from services.common.contract.errors import InvalidArgument
from services.common.contract.sessions import MAX_LIFETIME_SECONDS, check_code, check_lifetimes
from services.spawner import handoff

FOLDER = pathlib.Path(__file__).resolve().parents[2] / "images" / "runtime"
HEADER = struct.Struct("!BI")


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, FOLDER / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


cellrelay = load("cellrelay")
runner = load("runner")


class NoReaper:
    """Statuses as the runner's Reaper keeps them (here: Popen's own)."""

    def __init__(self) -> None:
        self.processes: dict[int, subprocess.Popen] = {}

    def expect(self) -> None:
        pass

    def watch(self, pid) -> None:
        pass

    def forget(self, pid: int) -> None:
        pass

    def status(self, pid: int):
        process = self.processes.get(pid)
        return None if process is None or process.poll() is None else process.returncode


def relay_with(driver_source: str) -> tuple[object, list[tuple[int, bytes]], list[subprocess.Popen]]:
    """A CellRelay whose driver is `driver_source` (Python), and what it sends."""
    sent: list[tuple[int, bytes]] = []
    started: list[subprocess.Popen] = []
    reaper = NoReaper()
    relay = cellrelay.CellRelay(reaper, lambda kind, payload: sent.append((kind, payload)))

    def start_driver():
        process = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(driver_source)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        reaper.processes[process.pid] = process
        started.append(process)
        return process

    relay.start_driver = start_driver
    return relay, sent, started


ECHO_DRIVER = """
import json, struct, sys
for line in sys.stdin.buffer:
    cell = json.loads(line)
    out = sys.stdout.buffer
    def frame(kind, payload):
        out.write(struct.pack("!BI", kind, len(payload)) + payload)
    frame(1, cell["code"].encode())
    frame(7, b"text/plain\\0" + b"42")
    if cell["code"] == "die":
        frame(6, json.dumps({"status": "kernel_died", "execution_count": 0}).encode())
        out.flush()
        sys.exit(0)
    if cell["code"] == "huge":
        out.write(struct.pack("!BI", 1, 2 * 1024 * 1024))
        out.flush()
        continue
    frame(6, json.dumps({"status": "ok", "execution_count": 1}).encode())
    out.flush()
"""


def test_parse_cell_takes_only_a_well_formed_cell():
    good = {"kind": "cell", "code": "1", "timeout_ms": 5}
    assert runner.parse_cell(good) == good
    for bad in (
        {**good, "kind": "program"},
        {**good, "code": 1},
        {**good, "timeout_ms": 0},
        {**good, "timeout_ms": True},
        {**good, "timeout_ms": "5"},
    ):
        assert runner.parse_cell(bad) is None


def test_the_relay_passes_frames_until_the_cells_end_and_keeps_its_driver():
    relay, sent, started = relay_with(ECHO_DRIVER)
    try:
        relay.run({"kind": "cell", "code": "a", "timeout_ms": 1000})
        relay.run({"kind": "cell", "code": "b", "timeout_ms": 1000})
        assert [kind for kind, _ in sent] == [1, 7, 6, 1, 7, 6]
        assert sent[3] == (1, b"b")
        assert len(started) == 1
    finally:
        relay.stop_driver()


def test_a_dead_kernel_gets_a_new_driver_on_the_next_cell():
    relay, sent, started = relay_with(ECHO_DRIVER)
    try:
        relay.run({"kind": "cell", "code": "die", "timeout_ms": 1000})
        assert json.loads(sent[-1][1])["status"] == "kernel_died"
        relay.run({"kind": "cell", "code": "again", "timeout_ms": 1000})
        assert json.loads(sent[-1][1])["status"] == "ok"
        assert len(started) == 2
    finally:
        relay.stop_driver()


def test_a_frame_over_the_bound_kills_the_driver_and_ends_the_cell():
    relay, sent, started = relay_with(ECHO_DRIVER)
    relay.run({"kind": "cell", "code": "huge", "timeout_ms": 1000})
    assert sent[-1] == (6, cellrelay.KERNEL_DIED)
    _, status = os.waitpid(started[0].pid, 0)  # the relay never waits: the runner's reaper does
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert relay.driver is None


def test_the_spawner_reads_a_cells_frames_within_bounds():
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(HEADER.pack(2, 3) + b"err" + HEADER.pack(4, 5) + b"a\0bcd" + HEADER.pack(6, 2) + b"{}")
        cell = handoff.RunnerCell(ours, lambda completed: None)
        assert list(cell.frames()) == [(2, b"err"), (4, b"a\0bcd")]
        assert cell.end == b"{}" and cell.violation is None

        theirs.sendall(HEADER.pack(9, 1) + b"x")
        ended: list[bool] = []
        cell = handoff.RunnerCell(ours, ended.append)
        assert list(cell.frames()) == []
        assert cell.violation is not None and cell.end is None and ended == [False]


def test_lifetimes_and_code_are_checked_alike_on_both_sides():
    assert check_lifetimes(0, 0) == (15 * 60, MAX_LIFETIME_SECONDS)
    assert check_lifetimes(0, 60) == (60, 60)
    with pytest.raises(InvalidArgument, match="idle_timeout_seconds"):
        check_lifetimes(61, 60)
    with pytest.raises(InvalidArgument, match="max_lifetime_seconds"):
        check_lifetimes(0, MAX_LIFETIME_SECONDS + 1)
    with pytest.raises(InvalidArgument, match="code"):
        check_code("x" * (128 * 1024), "node")
    with pytest.raises(InvalidArgument, match="NUL"):
        check_code("\0", "node")
    assert check_code("\0", "python") == "\0"


def test_cell_statuses_are_the_protos():
    assert cells.CellStatus.Name(cells.CELL_STATUS_KERNEL_DIED) == "CELL_STATUS_KERNEL_DIED"
