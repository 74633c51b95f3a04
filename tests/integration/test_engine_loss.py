"""The Docker engine goes away under a spawner and comes back.

The shared engine is never restarted: this spawner reaches it through a
socket proxy of the test's own (tests/socket_proxy.py). Stopping the proxy
cuts the spawner's connections and makes the socket vanish; the sandboxes
are killed through the real engine, as an engine restart (without
live-restore) kills its containers. To the spawner that is the engine gone.
"""

from __future__ import annotations

import secrets
import threading
import time

import docker
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sandbox.common.v1 import execution_pb2 as common
from sandbox.spawner.v1 import spawner_pb2_grpc
from services.common.auth import ClientAuthInterceptor
from services.spawner.server import start
from tests.integration.conftest import SECRET, assert_nothing_left, labelled_containers, make_settings
from tests.integration.helpers import execute, request
from tests.socket_proxy import SocketProxy, engine_socket_path

pytestmark = pytest.mark.integration

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def wait_for(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"not within {seconds} s: {what}")


@pytest.fixture
def proxied_spawner(docker_api, tmp_path):
    proxy = SocketProxy(tmp_path / "engine.sock", engine_socket_path())
    proxy.start()
    api = docker.APIClient(base_url=f"unix://{proxy.path}", version="auto", timeout=60)
    name = f"eng-{secrets.token_hex(4)}"
    root = tmp_path / "workspaces"
    root.mkdir()
    running = start(make_settings(name, root, capacity=2), api=api)
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    stub = spawner_pb2_grpc.SpawnerStub(grpc.intercept_channel(channel, ClientAuthInterceptor(SECRET.encode())))
    try:
        yield proxy, running, stub, health_pb2_grpc.HealthStub(channel), name
    finally:
        if not proxy.path.exists():
            proxy.start()  # a failed test must still let the spawner clean up
        running.stop(grace_seconds=5)
        channel.close()
        proxy.stop()
        assert_nothing_left(docker_api, name, root, running.spawner.cgroups)


def health_of(health) -> int:
    return health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status


def test_engine_gone_and_back(proxied_spawner, docker_api):
    proxy, running, stub, health, name = proxied_spawner
    assert execute(stub, request({"main.py": "print('before')"})).stdout == b"before\n"

    # An execution in flight when the engine goes.
    outcome: dict = {}
    call = stub.Execute(
        request({"main.py": "import time\nprint('started', flush=True)\ntime.sleep(60)\n"}), timeout=120
    )
    started = threading.Event()

    def consume():
        events = []
        for event in call:
            events.append(event)
            if event.WhichOneof("event") == "stdout":
                started.set()
        outcome["events"] = events

    reader = threading.Thread(target=consume)
    reader.start()
    assert started.wait(30), "the long execution never started"

    proxy.stop()
    went = time.monotonic()
    for container in labelled_containers(docker_api, name):
        docker_api.kill(container["Id"])

    reader.join(30)
    assert not reader.is_alive(), "the execution in flight hangs on the gone engine"
    result = outcome["events"][-1].result
    assert result.status == common.EXECUTION_STATUS_FAILED
    assert result.error_code == common.ERROR_CODE_SPAWNER_UNAVAILABLE, result
    assert time.monotonic() - went < 30

    # New executions are refused at once, and health says so.
    asked = time.monotonic()
    with pytest.raises(grpc.RpcError) as refused:
        execute(stub, request({"main.py": "print('during')"}), timeout=20)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, refused.value
    assert "Docker engine" in refused.value.details()
    assert time.monotonic() - asked < 10, "the refusal waited on the engine"
    wait_for(lambda: health_of(health) == NOT_SERVING, 10, "health NOT_SERVING while the engine is gone")

    # The engine is back: the same spawner process serves again by itself.
    proxy.start()
    wait_for(lambda: health_of(health) == SERVING, 15, "health SERVING once the engine is back")
    after = execute(stub, request({"main.py": "print('after')"}))
    assert after.result.status == common.EXECUTION_STATUS_COMPLETED, after.result
    assert after.stdout == b"after\n"
    # What the failed execution could not remove is reaped once the engine is back.
    wait_for(lambda: labelled_containers(docker_api, name) == [], 15, "the failed execution's container reaped")
    cgroups = running.spawner.cgroups
    wait_for(
        lambda: not [p for b in cgroups.spawner_directories(name) for p in b.iterdir() if p.is_dir()],
        15,
        "its cgroup parent reaped",
    )
