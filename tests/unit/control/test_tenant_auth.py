"""Control's tenant authentication: the tenant is signed, its header and the
signature's arrive once, exactly as named, and servicers get the tenant the
verifier established (services/control/auth.py)."""

from __future__ import annotations

import contextlib
from concurrent import futures

import grpc
import pytest

from sandbox.control.v1 import control_pb2 as pb
from sandbox.control.v1 import control_pb2_grpc
from services.common.auth import HEADER, AuthenticatedContext, AuthError, sign
from services.control.auth import (
    TENANT_HEADER,
    TenantAuthenticator,
    TenantAuthInterceptor,
    TenantClientInterceptor,
    tenant_of,
)

KEYS = {"tenant-a": b"a" * 32, "tenant-b": b"b" * 32}
QUOTA = "/sandbox.control.v1.Control/GetQuota"
BODY = b"request"
CONCURRENT_CALLS = 64


def _signature(key_of: str, signed_as: str, method: str = QUOTA, body: bytes = BODY) -> str:
    return sign(KEYS[key_of], method, body, principal=signed_as)


def test_a_call_signed_as_its_tenant_passes():
    metadata = [(TENANT_HEADER, "tenant-b"), (HEADER, _signature("tenant-b", "tenant-b"))]
    assert TenantAuthenticator(KEYS)(QUOTA, metadata, BODY) == "tenant-b"


AS_A, AS_B = (TENANT_HEADER, "tenant-a"), (TENANT_HEADER, "tenant-b")
SIGNED_BY_B = (HEADER, _signature("tenant-b", "tenant-b"))


@pytest.mark.parametrize(
    "metadata, reason",
    [
        # The reported attack: victim's tenant first, attacker's second, attacker's key.
        ([AS_A, AS_B, SIGNED_BY_B], "repeated"),
        ([AS_B, AS_A, SIGNED_BY_B], "repeated"),
        ([AS_B, AS_B, SIGNED_BY_B], "repeated"),
        ([AS_B, (TENANT_HEADER.upper(), "tenant-a"), SIGNED_BY_B], "another name"),
        ([AS_B, (TENANT_HEADER + "-bin", b"tenant-a"), SIGNED_BY_B], "another name"),
        ([(TENANT_HEADER + "-bin", b"tenant-a"), SIGNED_BY_B], "another name"),
        ([AS_B, SIGNED_BY_B, SIGNED_BY_B], "repeated"),
        ([AS_B, SIGNED_BY_B, (HEADER + "-bin", b"x")], "another name"),
        # B's key, signing for A: the key is looked up by A, and A's MAC does not match.
        ([AS_A, (HEADER, _signature("tenant-b", "tenant-a"))], "bad signature"),
        # A's key but the MAC made for B, or for no tenant: the tenant is covered by the MAC.
        ([AS_A, (HEADER, _signature("tenant-a", "tenant-b"))], "bad signature"),
        ([AS_A, (HEADER, _signature("tenant-a", ""))], "bad signature"),
        ([(TENANT_HEADER, "nobody"), (HEADER, _signature("tenant-a", "nobody"))], "bad signature"),
        ([(HEADER, _signature("tenant-a", "tenant-a"))], "missing or malformed"),
        ([(TENANT_HEADER, "tenant a"), (HEADER, _signature("tenant-a", "tenant a"))], "missing or malformed"),
        ([AS_A], "missing x-sandbox-signature"),
    ],
    ids=[
        "victim-first",
        "victim-second",
        "same-twice",
        "upper-case",
        "bin-variant",
        "bin-only",
        "signature-twice",
        "signature-bin",
        "other-key",
        "mac-for-other-tenant",
        "mac-for-no-tenant",
        "unknown-tenant",
        "no-tenant",
        "bad-tenant",
        "no-signature",
    ],
)
def test_refused(metadata, reason):
    with pytest.raises(AuthError, match=reason):
        TenantAuthenticator(KEYS)(QUOTA, metadata, BODY)


def test_insecure_mode_trusts_one_header_only():
    insecure = TenantAuthenticator(None)
    assert insecure(QUOTA, [(TENANT_HEADER, "tenant-a")], BODY) == "tenant-a"
    with pytest.raises(AuthError, match="repeated"):
        insecure(QUOTA, [(TENANT_HEADER, "tenant-a"), (TENANT_HEADER, "tenant-b")], BODY)
    with pytest.raises(AuthError, match="another name"):
        insecure(QUOTA, [(TENANT_HEADER, "tenant-b"), (TENANT_HEADER + "-bin", b"tenant-a")], BODY)


def test_tenant_of_needs_an_authenticated_context():
    assert tenant_of(AuthenticatedContext(object(), "tenant-a")) == "tenant-a"
    with pytest.raises(RuntimeError):
        tenant_of(object())
    with pytest.raises(RuntimeError):
        tenant_of(AuthenticatedContext(object(), ""))


class EchoServicer(control_pb2_grpc.ControlServicer):
    """Answers with tenant_of(context), unary and streaming."""

    def GetQuota(self, request, context):
        return pb.Quota(tenant=tenant_of(context))

    def GetOutputFile(self, request, context):
        yield pb.OutputFileChunk(data=tenant_of(context).encode())
        yield pb.OutputFileChunk(data=tenant_of(context).encode())


@contextlib.contextmanager
def served(keys):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), interceptors=[TenantAuthInterceptor(keys)])
    control_pb2_grpc.add_ControlServicer_to_server(EchoServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel
    finally:
        server.stop(0)


def _as(channel, tenant: str, key: bytes | None):
    return control_pb2_grpc.ControlStub(grpc.intercept_channel(channel, TenantClientInterceptor(tenant, key)))


def test_servicers_see_the_established_tenant_under_concurrency():
    with served(KEYS) as channel:
        stubs = {tenant: _as(channel, tenant, key) for tenant, key in KEYS.items()}

        def call(index: int) -> tuple[str, str, list[bytes]]:
            tenant = sorted(KEYS)[index % len(KEYS)]
            stub = stubs[tenant]
            quota = stub.GetQuota(pb.GetQuotaRequest())
            chunks = [c.data for c in stub.GetOutputFile(pb.GetOutputFileRequest(execution_id="e", path="p"))]
            return tenant, quota.tenant, chunks

        with futures.ThreadPoolExecutor(max_workers=16) as pool:
            for tenant, answered, chunks in pool.map(call, range(CONCURRENT_CALLS)):
                assert answered == tenant and chunks == [tenant.encode()] * 2


class PrependTenant(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Inserts a header in front of what outer interceptors put in."""

    def __init__(self, key: str, value):
        self._header = (key, value)

    def _details(self, details):
        return _Details(details, [self._header, *(details.metadata or [])])

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._details(details), request)


class _Details(grpc.ClientCallDetails):
    def __init__(self, details, metadata):
        self.method, self.timeout, self.credentials = details.method, details.timeout, details.credentials
        self.wait_for_ready, self.compression, self.metadata = details.wait_for_ready, details.compression, metadata


@pytest.mark.parametrize("keys", [KEYS, None], ids=["signed", "insecure"])
@pytest.mark.parametrize(
    "extra", [(TENANT_HEADER, "tenant-a"), (TENANT_HEADER + "-bin", b"tenant-a")], ids=["repeated", "bin"]
)
def test_a_second_tenant_header_is_refused_on_the_wire(keys, extra):
    with served(keys) as channel:
        signer = TenantClientInterceptor("tenant-b", None if keys is None else keys["tenant-b"])
        stub = control_pb2_grpc.ControlStub(grpc.intercept_channel(channel, signer, PrependTenant(*extra)))
        for call in (
            lambda: stub.GetQuota(pb.GetQuotaRequest()),
            lambda: list(stub.GetOutputFile(pb.GetOutputFileRequest(execution_id="e", path="p"))),
        ):
            with pytest.raises(grpc.RpcError) as failure:
                call()
            assert failure.value.code() == grpc.StatusCode.UNAUTHENTICATED
