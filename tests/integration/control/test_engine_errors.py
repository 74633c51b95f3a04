"""Docker's error text never reaches a tenant (issue 11, point 8): a real
spawner whose engine fails every sandbox (its image does not exist), behind
a real control. The tenant is told a fixed sentence; the engine's words are
in the spawner's log, with the execution's id."""

from __future__ import annotations

import logging
import secrets

import pytest

from sandbox.common.v1 import execution_pb2 as common
from sandbox.control.v1 import control_pb2_grpc
from services.common.contract import failures
from services.control.server import start as start_control
from services.spawner.server import start as start_spawner
from tests.integration.conftest import assert_nothing_left, make_settings
from tests.integration.control.conftest import control_channel, control_settings
from tests.integration.control.helpers import request, run

pytestmark = pytest.mark.integration

MISSING_IMAGE = f"sandbox-mesh/no-such-image-{secrets.token_hex(4)}:never"


@pytest.fixture
def broken_engine_spawner(docker_api, tmp_path):
    name = f"broken-{secrets.token_hex(4)}"
    root = tmp_path / "workspaces"
    root.mkdir()
    running = start_spawner(make_settings(name, root, python_image=MISSING_IMAGE))
    yield running
    running.stop(grace_seconds=5)
    assert_nothing_left(docker_api, name, root, running.spawner.cgroups)


def test_the_tenant_sees_a_stable_message_and_no_engine_text(broken_engine_spawner, tmp_path, caplog):
    settings = control_settings(broken_engine_spawner.port, tmp_path, f"sqlite:///{tmp_path}/control.db")
    control = start_control(settings)
    try:
        with control_channel(control.port, "tenant-a") as channel, caplog.at_level(logging.ERROR):
            stub = control_pb2_grpc.ControlStub(channel)
            stream = run(stub, request({"main.py": "print(1)"}, execution_id="engine-fails"))
            key = control.executions.store.get("tenant-a", "engine-fails").key
    finally:
        control.stop(grace_seconds=5)
    done = stream.finished
    assert (done.status, done.error_code) == (common.EXECUTION_STATUS_FAILED, common.ERROR_CODE_SPAWNER_UNAVAILABLE)
    assert done.error_message == failures.SANDBOX_NOT_STARTED
    seen = " ".join(
        [done.error_message, done.stdout_preview.decode(), done.stderr_preview.decode(), stream.stdout.decode()]
    )
    for engine_word in (
        "docker",
        "Docker",
        "Server Error",
        "Client Error",
        "no-such-image",
        "No such image",
        str(tmp_path),
        "/var/lib",
        "http+",
    ):
        assert engine_word not in seen
    # The engine's own words are logged, with the execution's id.
    logged = [str(r.exc_info[1]) for r in caplog.records if key in r.getMessage() and r.exc_info]
    assert any(MISSING_IMAGE in text for text in logged), logged
