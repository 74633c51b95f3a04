"""Sessions on the spawner itself (docs/sessions.md): a matplotlib figure as
PNG, a dead interpreter followed by a fresh one with the files kept, the
maximum lifetime, a slot held per session, and a restarted spawner removing
a crashed one's session sandboxes."""

from __future__ import annotations

import secrets
import time

import pytest

from sandbox.common.v1 import execution_pb2 as common
from sandbox.common.v1 import session_pb2 as cells
from sandbox.spawner.v1 import spawner_pb2 as pb
from services.spawner.errors import CapacityExhausted, SessionNotFound
from services.spawner.provision import PoolKey
from services.spawner.server import start
from tests.integration.conftest import assert_nothing_left, labelled_containers, make_settings

pytestmark = pytest.mark.integration

TENANT = "tenant-s"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def spawner(docker_api, tmp_path):
    name = f"sess-{secrets.token_hex(4)}"
    running = start(make_settings(name, tmp_path / "workspaces", capacity=2))
    yield running.spawner
    running.stop(grace_seconds=5)
    assert_nothing_left(docker_api, name, tmp_path / "workspaces", running.spawner.cgroups)
    assert running.spawner.cleanup_failures == 0


def create(spawner, key: str, **fields) -> None:
    request = pb.CreateSessionRequest(session_key=key, tenant=TENANT, language=common.LANGUAGE_PYTHON, **fields)
    spawner.sessions.create(request)


def run(spawner, key: str, code: str, timeout_ms: int = 20_000) -> tuple[list, cells.CellResult]:
    events = list(
        spawner.sessions.run(pb.RunCellRequest(session_key=key, tenant=TENANT, code=code, timeout_ms=timeout_ms))
    )
    return events, events[-1].result


def test_a_matplotlib_figure_comes_back_as_png(spawner):
    create(spawner, "plot", variant="datascience")
    code = (
        "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [1, 4, 9])\nplt.show()\n"
        "import pandas as pd\npd.DataFrame({'a': [1, 2]})"
    )
    _, result = run(spawner, "plot", code)
    assert result.status == cells.CELL_STATUS_OK, result
    images = [p for p in result.values if p.mime_type == "image/png"]
    assert len(images) == 1 and images[0].data.startswith(PNG_MAGIC) and not images[0].last_value
    table = {p.mime_type: p.data for p in result.values if p.last_value}
    assert b"<table" in table["text/html"] and b"a" in table["text/plain"]
    spawner.sessions.close(pb.CloseSessionRequest(session_key="plot", tenant=TENANT))


def test_a_sessions_sandbox_has_an_executions_hardening(spawner, docker_api):
    create(spawner, "hard")
    [container] = labelled_containers(docker_api, spawner.settings.name)
    config = docker_api.inspect_container(container["Id"])
    host = config["HostConfig"]
    settings = spawner.settings
    assert host["ReadonlyRootfs"] and host["CapDrop"] == ["ALL"] and host["NetworkMode"] == "none"
    assert "no-new-privileges:true" in host["SecurityOpt"]
    assert any(option.startswith("seccomp=") for option in host["SecurityOpt"])
    assert (host["Memory"], host["PidsLimit"]) == (settings.default_memory_bytes, settings.pids_limit)
    assert host["CgroupParent"].startswith(f"/sandbox-mesh/{settings.name}/") or settings.name in host["CgroupParent"]
    assert config["Config"]["User"] == "10001:10001"
    assert config["Config"]["Labels"]["sandbox-mesh.tenant"] == TENANT
    spawner.sessions.close(pb.CloseSessionRequest(session_key="hard", tenant=TENANT))


def test_a_dead_interpreter_is_reported_and_the_next_call_starts_a_fresh_one(spawner):
    create(spawner, "crash")
    run(spawner, "crash", "x = 1\nopen('kept.txt', 'w').write('yes')")
    _, result = run(spawner, "crash", "import os\nos._exit(9)")
    assert result.status == cells.CELL_STATUS_KERNEL_DIED
    _, result = run(spawner, "crash", "open('kept.txt').read(), 'x' in globals()")
    assert result.status == cells.CELL_STATUS_OK
    assert next(p.data for p in result.values if p.last_value) == b"('yes', False)"
    spawner.sessions.close(pb.CloseSessionRequest(session_key="crash", tenant=TENANT))


def test_a_session_holds_a_slot_until_its_maximum_lifetime(spawner):
    create(spawner, "short", max_lifetime_seconds=3, idle_timeout_seconds=3)
    create(spawner, "other")
    assert spawner.inflight.free_slots == 0
    with pytest.raises(CapacityExhausted):
        create(spawner, "third")
    _, result = run(spawner, "short", "import time\ntime.sleep(30)", timeout_ms=30_000)
    assert result.status == cells.CELL_STATUS_SESSION_ENDED  # ended under the call
    with pytest.raises(SessionNotFound):
        run(spawner, "short", "1")
    deadline = time.monotonic() + 10
    while spawner.inflight.free_slots != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert spawner.inflight.free_slots == 1
    with pytest.raises(SessionNotFound):  # one tenant's key is nobody else's
        spawner.sessions.run(pb.RunCellRequest(session_key="other", tenant="someone-else", code="1"))
    spawner.sessions.close(pb.CloseSessionRequest(session_key="other", tenant=TENANT))
    assert spawner.inflight.free_slots == 2


def test_a_restarted_spawner_removes_a_crashed_ones_sessions(docker_api, tmp_path):
    name = f"sess-{secrets.token_hex(4)}"
    root = tmp_path / "workspaces"
    crashed = start(make_settings(name, root))
    try:
        create(crashed.spawner, "left")
        assert len(labelled_containers(docker_api, name)) == 1
        # The first spawner forgets its session, as a crash would.
        with crashed.spawner.sessions._lock:
            crashed.spawner.sessions._sessions.clear()
        restarted = start(make_settings(name, root))
        try:
            assert labelled_containers(docker_api, name) == []
            assert list(root.iterdir()) == []
        finally:
            restarted.stop(grace_seconds=1)
    finally:
        crashed.stop(grace_seconds=1)
        for leftover in labelled_containers(docker_api, name):
            docker_api.remove_container(leftover["Id"], force=True)
    deadline = time.monotonic() + 10
    while labelled_containers(docker_api, name) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert labelled_containers(docker_api, name) == []


def test_a_warm_sandbox_serves_a_session(docker_api, tmp_path):
    """The pool's sandbox has an interpreter started ahead for a program; a
    session's first cell sets it aside and starts the kernel instead."""
    name = f"sess-{secrets.token_hex(4)}"
    root = tmp_path / "workspaces"
    running = start(make_settings(name, root, warm_pool=("python=1",)))
    try:
        spawner = running.spawner
        key = next(iter(spawner.pool.targets))
        deadline = time.monotonic() + 60
        while spawner.pool.ready(key) < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        warm_tokens = spawner.pool.tokens()
        create(spawner, "warm")
        assert spawner.sessions.tokens() & warm_tokens, "the session did not take the warm sandbox"
        _, result = run(spawner, "warm", "import sys\nsys.argv[0] != ''")
        assert result.status == cells.CELL_STATUS_OK, result
        spawner.sessions.close(pb.CloseSessionRequest(session_key="warm", tenant=TENANT))
    finally:
        running.stop(grace_seconds=5)
    assert_nothing_left(docker_api, name, root, running.spawner.cgroups)
    assert running.spawner.cleanup_failures == 0


def test_a_session_takes_a_sandbox_whose_interpreter_started_ahead(docker_api, tmp_path):
    name = f"sess-{secrets.token_hex(4)}"
    running = start(make_settings(name, tmp_path / "workspaces", capacity=2, warm_pool=("python+session=1",)))
    spawner = running.spawner
    try:
        key = PoolKey("python", False, "runc", session=True)
        deadline = time.monotonic() + 60
        while spawner.pool.ready(key) < 1:
            assert time.monotonic() < deadline, "the pool made no sandbox for a session in 60 s"
            time.sleep(0.2)
        [warm] = labelled_containers(docker_api, name)
        ahead = spawner.sessions.create(
            pb.CreateSessionRequest(session_key="ahead", tenant=TENANT, language=common.LANGUAGE_PYTHON)
        )
        # Limits no warm sandbox has: made, and its interpreter started, in the call.
        cold = spawner.sessions.create(
            pb.CreateSessionRequest(
                session_key="cold",
                tenant=TENANT,
                language=common.LANGUAGE_PYTHON,
                limits=common.Limits(memory_bytes=320 * 1024 * 1024),
            )
        )
        assert ahead.start_ms < cold.start_ms, (ahead, cold)
        _, result = run(spawner, "ahead", "import socket\nx = socket.gethostname()\nx")
        assert result.status == cells.CELL_STATUS_OK, result
        [host] = [p.data.decode().strip("'") for p in result.values if p.last_value]
        assert warm["Id"].startswith(host)  # the warm sandbox, now this session's
        _, again = run(spawner, "ahead", "x")
        assert [p.data for p in again.values if p.last_value] == [f"'{host}'".encode()]
        for session in ("ahead", "cold"):
            spawner.sessions.close(pb.CloseSessionRequest(session_key=session, tenant=TENANT))
    finally:
        running.stop(grace_seconds=5)
    assert_nothing_left(docker_api, name, tmp_path / "workspaces", running.spawner.cgroups)
    assert running.spawner.cleanup_failures == 0
