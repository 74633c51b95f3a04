"""The signature covers the principal; auth headers must arrive once, exactly
as named (services/common/auth.py), on the spawner's and the egress's path."""

from __future__ import annotations

import asyncio
import contextlib
from concurrent import futures

import grpc
import pytest

from sandbox.control.v1 import control_pb2 as pb
from sandbox.control.v1 import control_pb2_grpc
from sandbox.egress.v1 import egress_pb2, egress_pb2_grpc
from services.common.auth import (
    HEADER,
    AuthenticatedContext,
    AuthError,
    ServerAuthInterceptor,
    Verifier,
    sign,
    single_header,
)
from services.egress.grpc_service import GET_DECISIONS
from services.egress.grpc_service import serve_decisions as start_egress_grpc

SECRET = b"s" * 32
NOW = 1_800_000_000_000
QUOTA = "/sandbox.control.v1.Control/GetQuota"


@pytest.mark.parametrize(
    "metadata, expected",
    [
        ((), None),
        ((("user-agent", "x"),), None),
        (((HEADER, "one"), ("other", "x")), "one"),
        (((HEADER + "-extra", "x"), (HEADER, "one")), "one"),
    ],
    ids=["empty", "absent", "once", "longer-name"],
)
def test_single_header_accepts(metadata, expected):
    assert single_header(metadata, HEADER) == expected


@pytest.mark.parametrize(
    "metadata, reason",
    [
        (((HEADER, "one"), (HEADER, "two")), "repeated"),
        (((HEADER, "one"), (HEADER, "one")), "repeated"),
        (((HEADER, "one"), (HEADER.upper(), "two")), "another name"),
        (((HEADER.title(), "one"),), "another name"),
        (((HEADER, "one"), (HEADER + "-bin", b"two")), "another name"),
        (((HEADER + "-BIN", b"two"),), "another name"),
        (((HEADER, b"one"),), "another name"),
    ],
    ids=["repeated", "repeated-same", "upper", "title", "bin", "bin-upper", "bytes"],
)
def test_single_header_refuses(metadata, reason):
    with pytest.raises(AuthError, match=reason):
        single_header(metadata, HEADER)


def test_the_mac_covers_the_principal():
    for signed_as, verified_as in (("tenant-b", "tenant-a"), ("", "tenant-a"), ("tenant-a", "")):
        header = sign(SECRET, "/svc/M", b"body", principal=signed_as, now_ms=NOW)
        with pytest.raises(AuthError, match="bad signature"):
            Verifier(SECRET).verify("/svc/M", b"body", header, principal=verified_as, now_ms=NOW)
    header = sign(SECRET, "/svc/M", b"body", principal="tenant-a", now_ms=NOW)
    Verifier(SECRET).verify("/svc/M", b"body", header, principal="tenant-a", now_ms=NOW)


def test_nonce_must_be_plain():
    header = sign(SECRET, "/svc/M", b"", now_ms=NOW, nonce="a\nb" * 8)
    with pytest.raises(AuthError, match="malformed"):
        Verifier(SECRET).verify("/svc/M", b"", header, now_ms=NOW)


class EchoServicer(control_pb2_grpc.ControlServicer):
    """Answers with what the handler was given as its principal."""

    def GetQuota(self, request, context):
        assert isinstance(context, AuthenticatedContext)
        return pb.Quota(tenant=f"principal={context.principal!r}")


@contextlib.contextmanager
def served(interceptor):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), interceptors=[interceptor])
    control_pb2_grpc.add_ControlServicer_to_server(EchoServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield control_pb2_grpc.ControlStub(channel)
    finally:
        server.stop(0)


def _service_signature() -> str:
    return sign(SECRET, QUOTA, pb.GetQuotaRequest().SerializeToString(deterministic=True))


def test_service_calls_refuse_a_repeated_signature():
    with served(ServerAuthInterceptor(Verifier(SECRET))) as stub:
        assert stub.GetQuota(pb.GetQuotaRequest(), metadata=[(HEADER, _service_signature())]).tenant == "principal=''"
        for metadata in (
            [(HEADER, _service_signature()), (HEADER, "v2:1:garbagegarbage00:00")],
            [(HEADER, "v2:1:garbagegarbage00:00"), (HEADER, _service_signature())],
            [(HEADER, _service_signature()), (HEADER + "-bin", b"x")],
        ):
            with pytest.raises(grpc.RpcError) as failure:
                stub.GetQuota(pb.GetQuotaRequest(), metadata=metadata)
            assert failure.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def _egress_scenario() -> list[grpc.StatusCode]:
    server, port = await start_egress_grpc(lambda execution_id: ([], 0), "127.0.0.1:0", SECRET)
    request = egress_pb2.GetDecisionsRequest(execution_id="exec-1")

    def signed() -> str:
        return sign(SECRET, GET_DECISIONS, request.SerializeToString(deterministic=True))

    codes = []
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = egress_pb2_grpc.EgressStub(channel)
            for metadata in ([(HEADER, signed())], [(HEADER, signed()), (HEADER, signed())]):
                try:
                    await stub.GetDecisions(request, metadata=metadata, timeout=10)
                    codes.append(grpc.StatusCode.OK)
                except grpc.aio.AioRpcError as exc:
                    codes.append(exc.code())
    finally:
        await server.stop(0)
    return codes


def test_egress_refuses_a_repeated_signature():
    assert asyncio.run(_egress_scenario()) == [grpc.StatusCode.OK, grpc.StatusCode.UNAUTHENTICATED]
