"""Interrupts and restarts of a session's calls without a container
(docs/sessions.md): the runner kills a running program's process group on
the spawner's "interrupt" and ignores one that arrives after the end; the
cell relay passes an interrupt to its driver as SIGUSR1 and a restart as a
request line (or a new driver when the old one is gone)."""

from __future__ import annotations

import json
import marshal
import os
import signal
import socket
import sys
import time

from services.spawner import handoff
from services.spawner.sandbox import STDOUT
from tests.unit.test_cells import relay_with
from tests.unit.test_cells import runner as runner_script
from tests.unit.test_runner_serve import runner  # noqa: F401 (a fixture)

# A group leader with a child of its own, as `timeout` runs node.
LEADER = (
    "import os, subprocess, time; os.setpgid(0, 0); subprocess.Popen(['sleep', '60']); "
    "print('up', flush=True); time.sleep(60)"
)


def stdout_of(program) -> bytes:
    return b"".join(data for kind, data in program.stream() if kind == STDOUT)


def test_an_interrupt_kills_the_programs_group_and_the_connection_goes_on(runner):  # noqa: F811
    connection, _, workspace = runner
    program = connection.start([sys.executable, "-c", LEADER], {}, str(workspace), None)
    stream = program.stream()
    seen = b""
    while b"up\n" not in seen:
        seen += next(stream)[1]
    started = time.monotonic()
    assert connection.interrupt()
    assert list(stream) == []
    assert program.exit_code() == 128 + signal.SIGKILL
    assert time.monotonic() - started < 5  # not the sleeps' 60 s: the child went with its group
    assert connection.interrupt()  # nothing runs now: ignored
    after = connection.start(["echo", "next"], {}, str(workspace), None)
    assert stdout_of(after) == b"next\n" and after.exit_code() == 0


def test_a_malformed_request_during_a_program_ends_the_connection_after_it(runner):  # noqa: F811
    connection, _, _ = runner
    program = connection.start([sys.executable, "-c", "import time; time.sleep(0.5); print('done')"], {}, "/", None)
    connection._socket.sendall(b"\x00\x00\x00\x01x")
    assert stdout_of(program) == b"done\n" and program.exit_code() == 0
    assert connection._socket.recv(1) == b""  # closed by the runner


WAITING_DRIVER = """
import json, signal, struct, sys, time
interrupted = []
signal.signal(signal.SIGUSR1, lambda *_: interrupted.append(1))
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})  # blocked by the relay until now
for line in sys.stdin.buffer:
    request = json.loads(line)
    out = sys.stdout.buffer
    def frame(kind, payload):
        out.write(struct.pack("!BI", kind, len(payload)) + payload)
        out.flush()
    if request["kind"] == "restart":
        frame(6, json.dumps({"status": "ok", "execution_count": 0, "restarted": True}).encode())
        continue
    frame(8, b"")
    frame(1, b"waiting\\n")
    deadline = time.monotonic() + 10
    while not interrupted and time.monotonic() < deadline:
        time.sleep(0.01)
    frame(6, json.dumps({"status": "error" if interrupted else "ok", "execution_count": 1}).encode())
"""


class Requests:
    """The spawner's side of the relay: one socket end, read as the runner does."""

    def __init__(self, ours: socket.socket):
        self.ours = ours
        self.fd = ours.fileno()

    def read(self):
        header = self.ours.recv(4)
        payload = self.ours.recv(int.from_bytes(header, "big")) if header else b""

        return marshal.loads(payload) if payload else None


def test_the_relay_passes_an_interrupt_to_its_driver_while_a_cell_runs():
    relay, sent, started = relay_with(WAITING_DRIVER)
    ours, theirs = socket.socketpair()
    with ours, theirs:
        relay.requests = Requests(ours)
        theirs_connection = handoff.RunnerConnection(theirs)
        # Sent before the cell's first frame: read by the relay while it waits.
        theirs_connection.interrupt()
        begun = time.monotonic()
        relay.run({"kind": "cell", "code": "x", "timeout_ms": 1000})
        assert time.monotonic() - begun < 5
        assert json.loads(sent[-1][1])["status"] == "error"
        relay.restart()
        assert json.loads(sent[-1][1]).get("restarted") is True  # the live driver's own restart
        assert len(started) == 1
        os.killpg(started[0].pid, signal.SIGKILL)
        started[0].wait()
        relay.restart()  # a dead driver: a new one, started with an empty cell
        assert len(started) == 2
        relay.stop_driver()


def test_the_runner_reads_interrupt_and_restart_requests_only_in_their_form():
    assert runner_script.parse_request(marshal.dumps({"kind": "interrupt"}, 2)) == {"kind": "interrupt"}
    assert runner_script.parse_request(marshal.dumps({"kind": "restart"}, 2)) == {"kind": "restart"}
    assert runner_script.parse_request(marshal.dumps({"kind": "interrupt", "x": 1}, 2)) is None


def test_an_interrupt_without_a_driver_does_nothing():
    relay, _, started = relay_with(WAITING_DRIVER)
    relay.interrupt()
    assert started == []
