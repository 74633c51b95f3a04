"""A session's packages, installed at CreateSession through an egress of the
suite's own, exactly as an execution's (tests/integration/egress/
test_packages.py): they import in every call, the session's code keeps no
way out afterwards, and a failed install fails the creation with the
execution's error code and leaves nothing behind (docs/sessions.md)."""

from __future__ import annotations

import secrets

import grpc
import pytest
from grpc_status import rpc_status

from sandbox.common.v1 import execution_pb2 as common
from sandbox.common.v1 import session_pb2 as cells
from sandbox.control.v1 import control_pb2 as cpb
from sandbox.control.v1 import control_pb2_grpc
from sandbox.spawner.v1 import spawner_pb2 as pb
from services.common.contract.install_failures import install_failure_of
from services.control.server import start as start_control
from services.spawner.errors import SessionInstallFailed, to_status
from services.spawner.server import start
from tests.integration.conftest import assert_nothing_left, labelled_containers, make_settings
from tests.integration.control.conftest import control_channel, control_settings
from tests.integration.egress.conftest import PROXY_PORT

pytestmark = pytest.mark.integration

TENANT = "tenant-p"
CAPACITY = 2


@pytest.fixture(scope="module")
def running_spawner(mesh, registry_egress, docker_api, tmp_path_factory):
    name = f"spkg-{secrets.token_hex(4)}"
    root = tmp_path_factory.mktemp("spkg-workspaces")
    running = start(
        make_settings(
            name,
            root,
            capacity=CAPACITY,
            egress_container=registry_egress.container.id,
            egress_proxy_port=PROXY_PORT,
            egress_secret=mesh.secret,
            egress_grpc=registry_egress.grpc_target,
            install_timeout_ms=240_000,
        )
    )
    try:
        yield running
    finally:
        running.stop(grace_seconds=5)
    assert running.spawner.cleanup_failures == 0
    assert_nothing_left(docker_api, name, root, running.spawner.cgroups)


@pytest.fixture(scope="module")
def session_spawner(running_spawner):
    return running_spawner.spawner


@pytest.fixture(scope="module")
def tenant(running_spawner, tmp_path_factory):
    """Control (on SQLite) in front of the spawner, as tenant-a."""
    data_dir = tmp_path_factory.mktemp("spkg-control")
    running = start_control(control_settings(running_spawner.port, data_dir, f"sqlite:///{data_dir}/control.db"))
    try:
        with control_channel(running.port, "tenant-a") as channel:
            yield control_pb2_grpc.ControlStub(channel)
    finally:
        running.stop(grace_seconds=5)


def create(spawner, key: str, language, packages: list[tuple[str, str]], **fields) -> pb.CreateSessionResponse:
    request = pb.CreateSessionRequest(session_key=key, tenant=TENANT, language=language, **fields)
    for name, version in packages:
        request.packages.add(name=name, version=version)
    return spawner.sessions.create(request)


def run(spawner, key: str, code: str) -> tuple[bytes, cells.CellResult]:
    events = list(spawner.sessions.run(pb.RunCellRequest(session_key=key, tenant=TENANT, code=code, timeout_ms=30_000)))
    stdout = b"".join(e.stdout for e in events if e.WhichOneof("event") == "stdout")
    return stdout, events[-1].result


def value(result: cells.CellResult) -> bytes:
    return next(p.data for p in result.values if p.last_value and p.mime_type == "text/plain")


def close(spawner, key: str) -> None:
    spawner.sessions.close(pb.CloseSessionRequest(session_key=key, tenant=TENANT))


def test_a_python_package_installed_at_creation_imports_in_every_call(session_spawner):
    created = create(session_spawner, "py", common.LANGUAGE_PYTHON, [("six", "==1.16.0")])
    try:
        assert created.install_ms > 0
        _, result = run(
            session_spawner, "py", "import six\nsix.__version__, six.__file__.startswith('/workspace/deps/')"
        )
        assert result.status == cells.CELL_STATUS_OK, result
        assert value(result) == b"('1.16.0', True)"
        _, result = run(session_spawner, "py", "import six, os\nsix.PY3, 'HTTPS_PROXY' in os.environ")
        assert value(result) == b"(True, False)"  # no proxy and no credentials for the code
        # The egress no longer knows the session's credentials: revoked
        # once the installer was done, before any call.
        assert session_spawner.network.revoke("py") is False
        # A fresh interpreter (after a crash) finds them too.
        _, result = run(session_spawner, "py", "import os\nos._exit(3)")
        assert result.status == cells.CELL_STATUS_KERNEL_DIED
        _, result = run(session_spawner, "py", "import six\nsix.__version__")
        assert value(result) == b"'1.16.0'"
    finally:
        close(session_spawner, "py")


def test_a_node_package_installed_at_creation_is_required_in_every_call(session_spawner):
    create(session_spawner, "js", common.LANGUAGE_NODE, [("is-number", "7.0.0")])
    try:
        for _ in range(2):
            stdout, result = run(session_spawner, "js", "console.log(require('is-number')(5))")
            assert result.status == cells.CELL_STATUS_OK, result
            assert stdout == b"true\n"
    finally:
        close(session_spawner, "js")


def test_a_failed_install_fails_the_creation_and_leaves_nothing(session_spawner, docker_api):
    missing = f"sandbox-mesh-no-such-package-{secrets.token_hex(6)}"
    with pytest.raises(SessionInstallFailed) as failed:
        create(session_spawner, "broken", common.LANGUAGE_PYTHON, [(missing, "")])
    assert failed.value.reason == "PACKAGE_NOT_FOUND"
    assert "package not found" in failed.value.message
    status = to_status(failed.value)
    assert status is not None and status.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert install_failure_of(status) == ("PACKAGE_NOT_FOUND", failed.value.message)
    # Its sandbox destroyed, its slot free, no session left open.
    assert labelled_containers(docker_api, session_spawner.settings.name) == []
    assert session_spawner.inflight.free_slots == CAPACITY
    assert session_spawner.sessions.count() == 0
    assert session_spawner.sessions.tokens() == set()


def test_through_control_the_session_shows_its_packages_and_a_failure_its_reason(tenant, session_spawner):
    request = cpb.CreateSessionRequest(language=common.LANGUAGE_PYTHON, session_id="with-six")
    request.packages.add(name="six", version="==1.16.0")
    session = tenant.CreateSession(request, timeout=600)
    try:
        assert [(p.name, p.version) for p in session.packages] == [("six", "==1.16.0")]
        got = tenant.GetSession(cpb.GetSessionRequest(session_id="with-six"))
        assert [(p.name, p.version) for p in got.packages] == [("six", "==1.16.0")]
        events = list(tenant.RunCell(cpb.RunCellRequest(session_id="with-six", code="import six\nsix.__version__")))
        assert value(events[-1].result) == b"'1.16.0'"
    finally:
        tenant.CloseSession(cpb.CloseSessionRequest(session_id="with-six"))
    request = cpb.CreateSessionRequest(language=common.LANGUAGE_PYTHON, session_id="missing")
    request.packages.add(name=f"sandbox-mesh-no-such-package-{secrets.token_hex(6)}")
    with pytest.raises(grpc.RpcError) as refused:
        tenant.CreateSession(request, timeout=600)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert refused.value.details().startswith("packages: package not found")
    reason, _ = install_failure_of(rpc_status.from_call(refused.value))
    assert reason == "PACKAGE_NOT_FOUND"
    # No record, nothing running.
    with pytest.raises(grpc.RpcError) as missing:
        tenant.GetSession(cpb.GetSessionRequest(session_id="missing"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert session_spawner.sessions.tokens() == set()
