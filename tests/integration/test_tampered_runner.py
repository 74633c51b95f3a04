"""A tampered runner is data about its own execution, never a fact about the
service (THREATS.md, Lies): the code runs with the runner's privileges and
may kill it, squat its socket's path or print what looks like its protocol.
Runs on both hand-offs (the session spawner is parametrised)."""

from __future__ import annotations

import pytest

from sandbox.common.v1 import execution_pb2 as common
from sandbox.spawner.v1 import spawner_pb2 as pb
from tests.integration.helpers import execute, request

pytestmark = pytest.mark.integration

KILL_THE_RUNNER = "import os, signal, time\nprint('x', flush=True)\nos.kill(1, signal.SIGTERM)\ntime.sleep(20)\n"

SQUAT_THE_SOCKET = """
import os, socket
os.makedirs('/workspace/.runner', exist_ok=True)
for name in ('runner.sock', 'other.sock'):
    path = '/workspace/.runner/' + name
    if os.path.lexists(path):
        os.unlink(path)
squatter = socket.socket(socket.AF_UNIX)
squatter.bind('/workspace/.runner/runner.sock')
squatter.listen()
os.symlink('/workspace/.runner/runner.sock', '/workspace/.runner/other.sock')
print('squatted', flush=True)
"""

# What the runner's exit frame looks like (kind 3, length 4, code 0),
# printed by the program itself, then a real exit code of 7.
FRAME = b"\x03\x00\x00\x00\x04\x00\x00\x00\x00"
FORGED_FRAMES = f"import sys\nsys.stdout.buffer.write({FRAME!r} * 3)\nsys.exit(7)\n"


def test_code_that_kills_its_runner_fails_only_itself(stub, spawner_server):
    failures_before = spawner_server.spawner.cleanup_failures
    outcome = execute(stub, request({"main.py": KILL_THE_RUNNER}, timeout_ms=15_000))
    assert outcome.result.status == common.EXECUTION_STATUS_FAILED, outcome.result
    assert outcome.result.error_code != common.ERROR_CODE_SPAWNER_UNAVAILABLE, outcome.result
    assert outcome.result.usage.wall_ms < 10_000  # ended with its container, not at the timeout
    assert spawner_server.spawner.provisioner.wait_removed(10)
    assert spawner_server.spawner.cleanup_failures == failures_before
    after = execute(stub, request({"main.py": "print('next')"}))
    assert after.result.status == common.EXECUTION_STATUS_COMPLETED and after.stdout == b"next\n"


def test_a_squatted_socket_path_never_gets_the_spawner_s_programs(stub):
    req = request({"squat.py": SQUAT_THE_SOCKET, "second.py": "print('second step, through the first connection')"})
    req.ClearField("entry")
    req.steps.extend([common.Step(path="squat.py"), common.Step(path="second.py")])
    outcome = execute(stub, req)
    assert outcome.result.status == common.EXECUTION_STATUS_COMPLETED, outcome.result
    assert outcome.stdout == b"squatted\nsecond step, through the first connection\n"
    assert [s.status for s in outcome.result.steps] == [common.EXECUTION_STATUS_COMPLETED] * 2


def test_output_that_looks_like_the_protocol_is_only_output(stub):
    outcome = execute(stub, request({"main.py": FORGED_FRAMES}))
    assert outcome.stdout == FRAME * 3
    assert outcome.result.exit_code == 7
    assert outcome.result.error_code == common.ERROR_CODE_RUNTIME_ERROR
    assert [event.WhichOneof("event") for event in outcome.events].count("step") == 1
    assert outcome.phases()[-1] == pb.PHASE_FINISHING
