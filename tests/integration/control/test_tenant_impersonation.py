"""Issue 11.1, tenant impersonation, against a real control and spawner: a
call naming the victim's tenant besides the attacker's, signed with the
attacker's key, used to be answered with the victim's data."""

from __future__ import annotations

import functools
import json
import pathlib
import secrets
import socket
import subprocess
import sys

import grpc
import h2.config
import h2.connection
import h2.events
import pytest

from sandbox.control.v1 import control_pb2 as pb
from sandbox.control.v1 import control_pb2_grpc
from services.common.auth import HEADER, CallDetails, sign
from services.common.sign import signature
from services.control.auth import TENANT_HEADER, TenantClientInterceptor
from tests.integration.control.conftest import TENANT_KEYS
from tests.integration.control.helpers import request, run

pytestmark = pytest.mark.integration

VICTIM, ATTACKER = "tenant-a", "tenant-b"
CONTROL = "/sandbox.control.v1.Control/"
GRPCURL = str(pathlib.Path(sys.executable).parent / "grpcurl")
GRPC_FRAME_HEADER = 5
READ_TIMEOUT_SECONDS = 10


class ExtraHeader(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Adds one header before or after those the outer interceptors set."""

    def __init__(self, key: str, value, *, first: bool):
        self._header, self._first = (key, value), first

    def _details(self, details):
        metadata = list(details.metadata or [])
        metadata.insert(0 if self._first else len(metadata), self._header)
        return CallDetails(details, metadata)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._details(details), request)


GET_EXECUTION = "sandbox.control.v1.Control/GetExecution"


@pytest.fixture(scope="module")
def victim(control_server, tenant_a) -> str:
    """The id of an execution of the victim's, which printed a secret."""
    execution_id = f"victim-{secrets.token_hex(4)}"
    secret = f"victim-secret-{execution_id}"
    stream = run(tenant_a, request({"main.py": f"print({secret!r})"}, execution_id=execution_id, group_id="victim"))
    assert stream.stdout == f"{secret}\n".encode()
    return execution_id


def _calls(stub, victim_id: str):
    """Every read of the victim's data, and a run that would be charged to them."""
    return {
        "ListExecutions": lambda: stub.ListExecutions(pb.ListExecutionsRequest(page_size=500)),
        "GetExecution": lambda: stub.GetExecution(pb.GetExecutionRequest(execution_id=victim_id)),
        "GetOutputFile": lambda: list(stub.GetOutputFile(pb.GetOutputFileRequest(execution_id=victim_id, path="x"))),
        "GetQuota": lambda: stub.GetQuota(pb.GetQuotaRequest()),
        "Execute": lambda: run(stub, request({"main.py": "print('as the victim')"}, execution_id="impostor")),
    }


def _refused(call, attack: str) -> None:
    with pytest.raises(grpc.RpcError) as failure:
        answer = call()
        pytest.fail(f"{attack}: answered instead of refused: {answer}")
    assert failure.value.code() == grpc.StatusCode.UNAUTHENTICATED, (attack, failure.value)


def _victim_unchanged(tenant_a, victim_id: str) -> None:
    listed = [e.execution_id for e in tenant_a.ListExecutions(pb.ListExecutionsRequest(page_size=500)).executions]
    assert victim_id in listed and "impostor" not in listed


@pytest.mark.parametrize("victim_first", [True, False], ids=["victim-first", "victim-second"])
def test_two_tenant_headers_signed_with_the_attackers_key(control_server, tenant_a, victim, victim_first):
    with grpc.insecure_channel(f"127.0.0.1:{control_server.port}") as channel:
        attacker = TenantClientInterceptor(ATTACKER, TENANT_KEYS[ATTACKER].encode())
        extra = ExtraHeader(TENANT_HEADER, VICTIM, first=victim_first)
        stub = control_pb2_grpc.ControlStub(grpc.intercept_channel(channel, attacker, extra))
        for name, call in _calls(stub, victim).items():
            _refused(call, name)
        # The attacker's own, single-header calls still work and see nothing of the victim's.
        honest = control_pb2_grpc.ControlStub(grpc.intercept_channel(channel, attacker))
        listed = honest.ListExecutions(pb.ListExecutionsRequest(page_size=500)).executions
        assert victim not in [e.execution_id for e in listed]
    _victim_unchanged(tenant_a, victim)


def _raw_signature(key_of: str, signed_as: str, method: str, message) -> str:
    body = message.SerializeToString(deterministic=True)
    return sign(TENANT_KEYS[key_of].encode(), CONTROL + method, body, principal=signed_as)


def test_raw_metadata_attacks(control_server, tenant_a, victim):
    get = pb.GetExecutionRequest(execution_id=victim)
    listing = pb.ListExecutionsRequest(page_size=500)
    attacks = {
        "attackers-key-signing-for-victim": [
            (TENANT_HEADER, VICTIM),
            (HEADER, _raw_signature(ATTACKER, VICTIM, "GetExecution", get)),
        ],
        "two-tenants": [
            (TENANT_HEADER, VICTIM),
            (TENANT_HEADER, ATTACKER),
            (HEADER, _raw_signature(ATTACKER, ATTACKER, "GetExecution", get)),
        ],
        "bin-variant": [
            (TENANT_HEADER + "-bin", VICTIM.encode()),
            (TENANT_HEADER, ATTACKER),
            (HEADER, _raw_signature(ATTACKER, ATTACKER, "GetExecution", get)),
        ],
        "two-signatures": [
            (TENANT_HEADER, ATTACKER),
            (HEADER, _raw_signature(ATTACKER, ATTACKER, "GetExecution", get)),
            (HEADER, _raw_signature(ATTACKER, ATTACKER, "GetExecution", get)),
        ],
    }
    with grpc.insecure_channel(f"127.0.0.1:{control_server.port}") as channel:
        stub = control_pb2_grpc.ControlStub(channel)
        for name, metadata in attacks.items():
            _refused(functools.partial(stub.GetExecution, get, metadata=metadata), name)
        signed_for_victim = [
            (TENANT_HEADER, VICTIM),
            (HEADER, _raw_signature(ATTACKER, VICTIM, "ListExecutions", listing)),
        ]
        _refused(functools.partial(stub.ListExecutions, listing, metadata=signed_for_victim), "ListExecutions")
    _victim_unchanged(tenant_a, victim)


def _grpcurl_get_execution(port: int, execution_id: str, headers: list[str]) -> subprocess.CompletedProcess:
    """GetExecution through grpcurl with the given `-H` headers, as an operator would call it."""
    flags = [flag for header in headers for flag in ("-H", header)]
    body = json.dumps({"execution_id": execution_id})
    command = [GRPCURL, "-plaintext", *flags, "-d", body, f"127.0.0.1:{port}", GET_EXECUTION]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def _grpcurl_signature(tenant: str, execution_id: str) -> str:
    body = json.dumps({"execution_id": execution_id})
    return signature(GET_EXECUTION, body, TENANT_KEYS[tenant].encode(), principal=tenant)


def test_grpcurl_with_a_differently_cased_tenant_header(control_server, victim):
    """grpcurl sends `X-Sandbox-Tenant` lower-cased: a second tenant header."""
    own = _grpcurl_signature(ATTACKER, victim)
    headers = [f"X-Sandbox-Tenant: {VICTIM}", f"{TENANT_HEADER}: {ATTACKER}", f"{HEADER}: {own}"]
    done = _grpcurl_get_execution(control_server.port, victim, headers)
    assert done.returncode != 0 and "Unauthenticated" in done.stderr, done
    assert victim not in done.stdout


def test_grpcurl_call_signed_as_the_tenant(control_server, victim):
    """The README's way of calling control still works."""
    signed = _grpcurl_signature(VICTIM, victim)
    done = _grpcurl_get_execution(control_server.port, victim, [f"{TENANT_HEADER}: {VICTIM}", f"{HEADER}: {signed}"])
    assert done.returncode == 0, done.stderr
    assert victim in done.stdout, done.stdout


def _raw_http2_call(port: int, method: str, message, headers: list[tuple[str, str]]) -> tuple[dict, bytes]:
    """One gRPC call over a bare HTTP/2 connection that sends header names as
    given (gRPC clients refuse or lower-case capitals): (trailers, response bytes)."""
    config = h2.config.H2Configuration(
        client_side=True, validate_outbound_headers=False, normalize_outbound_headers=False
    )
    connection = h2.connection.H2Connection(config)
    body = message.SerializeToString()
    frame = b"\x00" + len(body).to_bytes(GRPC_FRAME_HEADER - 1, "big") + body
    trailers: dict = {}
    data = b""
    with socket.create_connection(("127.0.0.1", port), timeout=READ_TIMEOUT_SECONDS) as sock:
        connection.initiate_connection()
        stream = connection.get_next_available_stream_id()
        pseudo = [(":method", "POST"), (":scheme", "http"), (":path", method), (":authority", "control")]
        connection.send_headers(stream, [*pseudo, ("content-type", "application/grpc"), ("te", "trailers"), *headers])
        connection.send_data(stream, frame, end_stream=True)
        sock.sendall(connection.data_to_send())
        while not trailers:
            received = sock.recv(65536)
            if not received:
                break
            for event in connection.receive_data(received):
                if isinstance(event, h2.events.DataReceived):
                    data += event.data
                    connection.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, (h2.events.ResponseReceived, h2.events.TrailersReceived)):
                    fields = {k.decode(): v.decode() for k, v in event.headers}
                    if "grpc-status" in fields:
                        trailers = fields
                elif isinstance(event, h2.events.StreamReset):
                    trailers = {"grpc-status": "reset"}
            sock.sendall(connection.data_to_send())
    return trailers, data


def test_raw_http2_capitalised_tenant_header(control_server, victim):
    """A capitalised name does reach the server's interceptor as sent; the
    call must not be answered."""
    get = pb.GetExecutionRequest(execution_id=victim)
    headers = [
        ("X-Sandbox-Tenant", VICTIM),
        (TENANT_HEADER, ATTACKER),
        (HEADER, _raw_signature(ATTACKER, ATTACKER, "GetExecution", get)),
    ]
    trailers, data = _raw_http2_call(control_server.port, CONTROL + "GetExecution", get, headers)
    assert trailers.get("grpc-status") not in (None, "0"), trailers
    assert data == b""
    # The same call, correctly spelt, is refused as a repeated header.
    headers[0] = (TENANT_HEADER, VICTIM)
    trailers, data = _raw_http2_call(control_server.port, CONTROL + "GetExecution", get, headers)
    assert trailers.get("grpc-status") == str(grpc.StatusCode.UNAUTHENTICATED.value[0]), trailers
    assert data == b""
