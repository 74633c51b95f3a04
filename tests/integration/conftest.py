"""Integration fixtures: a real spawner on a real Docker engine.

Everything a test creates carries the test spawner's own name as a label (and
lives under its own workspace root), so the leftover check at the end looks
only at what this suite made.
"""

from __future__ import annotations

import pathlib
import secrets

import docker
import grpc
import pytest

from sandbox.spawner.v1 import spawner_pb2_grpc
from services.common.auth import ClientAuthInterceptor
from services.spawner import sandbox
from services.spawner.config import SpawnerSettings
from services.spawner.server import start
from tests.loops import loops_backed_under, mounts_under

RUNTIME_IMAGE = "sandbox-mesh/runtime:local"
DATASCIENCE_IMAGE = "sandbox-mesh/runtime-datascience:local"
SECRET = secrets.token_hex(32)


@pytest.fixture(scope="session")
def docker_api():
    api = docker.APIClient(version="auto")
    try:
        api.ping()
    except Exception as exc:
        pytest.fail(f"no Docker engine ({exc}); run `make test`, which starts one")
    try:
        api.inspect_image(RUNTIME_IMAGE)
    except docker.errors.ImageNotFound:
        pytest.fail(f"{RUNTIME_IMAGE} is missing; run `make images`")
    yield api
    api.close()


@pytest.fixture(scope="session")
def datascience_image(docker_api):
    """The "datascience" variant's image (SPAWNER_PYTHON_DATASCIENCE_IMAGE's default)."""
    try:
        docker_api.inspect_image(DATASCIENCE_IMAGE)
    except docker.errors.ImageNotFound:
        pytest.fail(f"{DATASCIENCE_IMAGE} is missing; run `make images`")
    return DATASCIENCE_IMAGE


@pytest.fixture(scope="session")
def spawner_name():
    return f"test-{secrets.token_hex(4)}"


@pytest.fixture(scope="session")
def workspace_root(tmp_path_factory):
    return tmp_path_factory.mktemp("workspaces")


def make_settings(spawner_name: str, workspace_root: pathlib.Path, **overrides) -> SpawnerSettings:
    values = dict(
        listen="127.0.0.1:0",
        metrics_listen="127.0.0.1:0",
        name=spawner_name,
        workspace_root=str(workspace_root),
        capacity=4,
        default_timeout_ms=20_000,
        max_timeout_ms=60_000,
        drain_seconds=5,
        secret=SECRET,
        warm_pool=(),  # tests/integration/test_warm_pool.py runs the pool
        install_cache_dir="",  # tests/integration/egress/test_packages.py runs the install cache
    )
    values.update(overrides)
    return SpawnerSettings(**values)


# The whole suite runs on both ways a program reaches its sandbox, and on
# gVisor (with the runner hand-off): every request that names no runtime
# then gets gVisor.
SPAWNER_VARIANTS = {
    "runner": dict(handoff="runner"),
    "exec": dict(handoff="exec"),
    "gvisor": dict(handoff="runner", default_runtime="gvisor"),
}


@pytest.fixture(scope="session", params=list(SPAWNER_VARIANTS))
def spawner_server(request, docker_api, spawner_name, workspace_root):
    running = start(make_settings(spawner_name, workspace_root, **SPAWNER_VARIANTS[request.param]))
    yield running
    running.stop(grace_seconds=5)
    assert_nothing_left(docker_api, spawner_name, workspace_root, running.spawner.cgroups)
    assert running.spawner.cgroups.spawner_directories(spawner_name) == []
    assert running.spawner.cleanup_failures == 0


@pytest.fixture(scope="session")
def channel(spawner_server):
    with grpc.insecure_channel(f"127.0.0.1:{spawner_server.port}") as chan:
        yield grpc.intercept_channel(chan, ClientAuthInterceptor(SECRET.encode()))


@pytest.fixture(scope="session")
def stub(channel):
    return spawner_pb2_grpc.SpawnerStub(channel)


def labelled_containers(api: docker.APIClient, spawner_name: str, execution_id: str | None = None):
    labels = [f"{sandbox.LABEL_SPAWNER}={spawner_name}"]
    if execution_id:
        labels.append(f"{sandbox.LABEL_EXECUTION}={execution_id}")
    return api.containers(all=True, filters={"label": labels})


def assert_nothing_left(api, spawner_name, workspace_root, cgroups) -> None:
    containers = labelled_containers(api, spawner_name)
    assert containers == [], f"containers left behind: {[c['Id'][:12] for c in containers]}"
    left = list(pathlib.Path(workspace_root).iterdir())
    assert left == [], f"workspaces left behind: {left}"
    assert mounts_under(str(workspace_root)) == [], "workspace filesystems left mounted"
    assert loops_backed_under(str(workspace_root)) == [], "loop devices left attached"
    parents = [p for base in cgroups.spawner_directories(spawner_name) for p in base.iterdir() if p.is_dir()]
    assert parents == [], f"cgroup parents left behind: {parents}"
    networks = api.networks(filters={"label": [f"{sandbox.LABEL_SPAWNER}={spawner_name}"]})
    assert networks == [], f"networks left behind: {[n['Name'] for n in networks]}"
