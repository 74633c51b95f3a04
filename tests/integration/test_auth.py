"""Every spawner RPC needs a valid signature; health stays open."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sandbox.spawner.v1 import spawner_pb2 as pb
from sandbox.spawner.v1 import spawner_pb2_grpc
from services.common.auth import HEADER, ClientAuthInterceptor, sign
from services.spawner.server import start
from services.spawner.spawner import ConfigurationError
from tests.integration.conftest import SECRET, make_settings
from tests.integration.helpers import collect, request

pytestmark = pytest.mark.integration

INFO = "/sandbox.spawner.v1.Spawner/Info"


@pytest.fixture
def raw_stub(spawner_server):
    with grpc.insecure_channel(f"127.0.0.1:{spawner_server.port}") as channel:
        yield spawner_pb2_grpc.SpawnerStub(channel), channel


def _code(call):
    with pytest.raises(grpc.RpcError) as failure:
        call()
    return failure.value.code(), failure.value.details()


def test_missing_signature(raw_stub):
    stub, _ = raw_stub
    assert _code(lambda: stub.Info(pb.InfoRequest()))[0] == grpc.StatusCode.UNAUTHENTICATED
    assert _code(lambda: collect(stub.Execute(request({"main.py": "print(1)"}))))[0] == grpc.StatusCode.UNAUTHENTICATED


def test_wrong_secret(raw_stub):
    _, channel = raw_stub
    stub = spawner_pb2_grpc.SpawnerStub(grpc.intercept_channel(channel, ClientAuthInterceptor(b"not-the-secret")))
    code, details = _code(lambda: stub.Info(pb.InfoRequest()))
    assert code == grpc.StatusCode.UNAUTHENTICATED and "bad signature" in details


def test_expired_signature(raw_stub):
    stub, _ = raw_stub
    old = sign(SECRET.encode(), INFO, b"", now_ms=1_000)
    code, details = _code(lambda: stub.Info(pb.InfoRequest(), metadata=[(HEADER, old)]))
    assert code == grpc.StatusCode.UNAUTHENTICATED and "expired" in details


def test_replayed_signature(raw_stub):
    stub, _ = raw_stub
    header = sign(SECRET.encode(), INFO, b"")
    assert stub.Info(pb.InfoRequest(), metadata=[(HEADER, header)]).capacity > 0
    code, details = _code(lambda: stub.Info(pb.InfoRequest(), metadata=[(HEADER, header)]))
    assert code == grpc.StatusCode.UNAUTHENTICATED and "replayed" in details


def test_signature_for_another_request_is_refused(raw_stub):
    stub, _ = raw_stub
    req = request({"main.py": "print('signed')"})
    header = sign(SECRET.encode(), "/sandbox.spawner.v1.Spawner/Execute", req.SerializeToString(deterministic=True))
    req.files[0].content = b"print('tampered')"
    code, details = _code(lambda: collect(stub.Execute(req, metadata=[(HEADER, header)])))
    assert code == grpc.StatusCode.UNAUTHENTICATED and "bad signature" in details


def test_health_needs_no_signature(raw_stub):
    _, channel = raw_stub
    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_refuses_to_start_without_secret_unless_insecure(docker_api, tmp_path):
    with pytest.raises(ConfigurationError, match="SPAWNER_SECRET"):
        start(make_settings("no-secret", tmp_path, secret=None))
    running = start(make_settings("insecure-ok", tmp_path, secret=None, insecure=True))
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            assert spawner_pb2_grpc.SpawnerStub(channel).Info(pb.InfoRequest()).capacity > 0
    finally:
        running.stop(grace_seconds=1)


def test_unknown_oci_runtime_is_refused_at_start(docker_api, tmp_path):
    with pytest.raises(ConfigurationError, match="runc"):
        start(make_settings("bad-runtime", tmp_path, oci_runtime="no-such-runtime"))
