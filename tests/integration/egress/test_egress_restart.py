"""The egress dies during a package install and comes back.

An egress of this module's own (the suite's shared ones stay up), allowing
the registries the runtime image's pip is configured with, is killed as soon
as an install is in flight and started again: the install in flight fails
with SPAWNER_UNAVAILABLE and a sentence saying the egress went away (not
PACKAGE_NOT_FOUND: the package exists), an execution with packages asked for
while it is down is refused at once with UNAVAILABLE, one without packages
still runs, and once it is back installs work again with no restart of the
spawner.
"""

from __future__ import annotations

import ipaddress
import secrets
import socket
import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sandbox.common.v1 import execution_pb2 as common
from sandbox.spawner.v1 import spawner_pb2 as pb
from sandbox.spawner.v1 import spawner_pb2_grpc
from services.common.auth import ClientAuthInterceptor
from services.common.contract import failures
from services.egress.allowlist import derive
from services.spawner.server import start
from tests.integration.conftest import SECRET, assert_nothing_left, make_settings
from tests.integration.egress.conftest import PROXY_PORT
from tests.integration.helpers import execute, request

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def restartable_egress(mesh):
    hosts = derive("sandbox-mesh/runtime:local", api=mesh.client)
    addresses = sorted(
        {info[4][0] for host in hosts for info in socket.getaddrinfo(host, 443, type=socket.SOCK_STREAM)}
    )
    return mesh.start_egress(
        "restartable",
        {
            "EGRESS_ALLOW_HOSTS": ",".join(hosts),
            "EGRESS_DNS": "true",
            "EGRESS_HOSTS_FILE": "",
            "EGRESS_ALLOW_NETWORKS": ",".join(str(ipaddress.ip_network(a)) for a in addresses),
            "EGRESS_ALLOW_PLAIN_HTTP": "false",
        },
        networks=[mesh.network("wan-restart", internal=False)],
    )


@pytest.fixture(scope="module")
def spawner(mesh, restartable_egress, docker_api, tmp_path_factory):
    name = f"egr-{secrets.token_hex(4)}"
    root = tmp_path_factory.mktemp("egress-restart-workspaces")
    running = start(
        make_settings(
            name,
            root,
            capacity=2,
            egress_container=restartable_egress.container.id,
            egress_proxy_port=PROXY_PORT,
            egress_secret=mesh.secret,
            egress_grpc=restartable_egress.grpc_target,
            install_timeout_ms=180_000,
        )
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            yield spawner_pb2_grpc.SpawnerStub(grpc.intercept_channel(channel, ClientAuthInterceptor(SECRET.encode())))
    finally:
        running.stop(grace_seconds=5)
    assert_nothing_left(docker_api, name, root, running.spawner.cgroups)


def with_six(text: str = "import six\nprint(six.__name__)") -> pb.ExecuteRequest:
    req = request({"main.py": text})
    req.packages.add(name="six", version="==1.16.0")
    return req


def wait_serving(egress, seconds: float = 60) -> None:
    health = health_pb2_grpc.HealthStub(egress.channel)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            reply = health.Check(health_pb2.HealthCheckRequest(), timeout=2)
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.RpcError:
            pass
        time.sleep(0.25)
    raise AssertionError("the egress did not come back")


def test_egress_killed_mid_install_then_back(spawner, restartable_egress):
    before = execute(spawner, with_six(), timeout=300)
    assert before.result.status == common.EXECUTION_STATUS_COMPLETED, before.result

    events: list = []
    installing = threading.Event()

    def in_flight():
        for event in spawner.Execute(with_six(), timeout=300):
            events.append(event)
            if event.WhichOneof("event") == "phase" and event.phase.phase == pb.PHASE_INSTALLING:
                installing.set()

    reader = threading.Thread(target=in_flight)
    reader.start()
    assert installing.wait(60), "the install never started"
    restartable_egress.container.kill()  # before pip's first request: pip takes a second to start
    killed = time.monotonic()
    try:
        asked = time.monotonic()
        with pytest.raises(grpc.RpcError) as refused:
            execute(spawner, with_six(), timeout=60)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, refused.value
        assert "egress" in refused.value.details()
        assert time.monotonic() - asked < 10, "the refusal waited on the egress"
        # No packages, no network: the egress is not needed.
        plain = execute(spawner, request({"main.py": "print('no egress needed')"}))
        assert plain.result.status == common.EXECUTION_STATUS_COMPLETED, plain.result
    finally:
        restartable_egress.container.start()
    wait_serving(restartable_egress)

    reader.join(240)
    assert not reader.is_alive(), "the install in flight never ended"
    result = events[-1].result
    assert result.status == common.EXECUTION_STATUS_FAILED
    assert result.error_code == common.ERROR_CODE_SPAWNER_UNAVAILABLE, result
    assert result.error_message == failures.EGRESS_LOST
    assert time.monotonic() - killed < 240

    # Back: installs work again, on the same spawner.
    deadline = time.monotonic() + 30
    while True:
        try:
            after = execute(spawner, with_six(), timeout=300)
            break
        except grpc.RpcError as exc:  # the spawner's channel to it reconnects within seconds
            if exc.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                raise
            time.sleep(1)
    assert after.result.status == common.EXECUTION_STATUS_COMPLETED, after.result
    assert after.stdout == b"six\n"
