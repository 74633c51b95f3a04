"""A stopped runc sandbox ends by itself: the spawner kills its frozen
processes through its cgroup, so removing it costs the engine no kill
(services/spawner/cgroups.py, end_frozen). Whatever the program left running
dies with it, and nothing stays behind."""

from __future__ import annotations

import time

import pytest

from sandbox.common.v1 import execution_pb2 as common
from services.spawner import sandbox
from tests.integration.helpers import execute, request

pytestmark = pytest.mark.integration

# A child in a session of its own that ignores every signal it can, still
# running when the program returns.
IGNORE_AND_SLEEP = (
    "import signal, time\\n"
    "for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):\\n"
    "    signal.signal(s, signal.SIG_IGN)\\n"
    "time.sleep(600)"
)
LEAVE_A_CHILD = f"""
import subprocess
child = subprocess.Popen(['python3', '-c', '{IGNORE_AND_SLEEP}'], start_new_session=True)
print('left', child.pid, flush=True)
"""


def _actions(docker_api, execution_id: str, since: int) -> list[str]:
    events = docker_api.events(
        since=since,
        until=int(time.time()) + 1,
        decode=True,
        filters={"type": "container", "label": f"{sandbox.LABEL_EXECUTION}={execution_id}"},
    )
    return [event["Action"] for event in events]


def test_a_stopped_sandbox_ends_without_the_engines_kill(stub, spawner_server, docker_api):
    since = int(time.time()) - 1
    req = request({"main.py": LEAVE_A_CHILD})
    outcome = execute(stub, req)
    assert outcome.result.status == common.EXECUTION_STATUS_COMPLETED, outcome.result
    assert outcome.stdout.startswith(b"left ")
    assert spawner_server.spawner.provisioner.wait_removed(30)
    actions = _actions(docker_api, req.execution_id, since)
    assert "die" in actions and "destroy" in actions, actions
    if spawner_server.spawner.settings.default_runtime == "gvisor":
        return  # gVisor sandboxes are still killed by the engine
    assert "kill" not in actions, actions
