"""Credentials are good only for an admitted execution, not revoked, from the
address it was admitted with: the table, the addon's checks and the Admit and
Revoke RPCs (served on a unix socket here, as in compose)."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from mitmproxy.test import tflow

from sandbox.egress.v1 import egress_pb2 as pb
from sandbox.egress.v1 import egress_pb2_grpc
from services.common.auth import HEADER, sign
from services.egress.admissions import AdmissionError, Admissions, Refusal, canonical_address
from services.egress.grpc_service import ADMIT, GET_DECISIONS, REVOKE
from tests.unit.egress.test_addon import ALLOWED, SECRET, Env, auth, clienthello, connect_flow, run
from tests.unit.egress.test_addon_requests import request_flow

SANDBOX = "172.30.0.5"
OTHER_SANDBOX = "172.30.0.6"


def client_from(address: str):
    client = tflow.tclient_conn()
    client.peername = (address, 40000)
    return client


# --- the table --------------------------------------------------------------


def test_admitted_from_its_address_only():
    table = Admissions()
    assert table.check("exec-1", SANDBOX) == Refusal.NOT_ADMITTED
    table.admit("exec-1", SANDBOX)
    table.admit("exec-1", SANDBOX)  # again, same address: nothing changes
    assert table.check("exec-1", SANDBOX) is None
    assert table.check("exec-1", f"::ffff:{SANDBOX}") is None  # the same address, IPv4-mapped
    assert table.check("exec-1", OTHER_SANDBOX) == Refusal.WRONG_SOURCE
    assert table.check("exec-1", "") == Refusal.WRONG_SOURCE
    assert table.check("exec-2", SANDBOX) == Refusal.NOT_ADMITTED


def test_revoked_for_good():
    table = Admissions()
    table.admit("exec-1", SANDBOX)
    assert table.revoke("exec-1") is True
    assert table.check("exec-1", SANDBOX) == Refusal.REVOKED
    with pytest.raises(AdmissionError):
        table.admit("exec-1", SANDBOX)
    assert table.revoke("exec-1") is False
    assert table.revoke("never-admitted") is False
    with pytest.raises(AdmissionError):
        table.admit("never-admitted", SANDBOX)


def test_another_address_is_not_taken():
    table = Admissions()
    table.admit("exec-1", SANDBOX)
    with pytest.raises(AdmissionError):
        table.admit("exec-1", OTHER_SANDBOX)
    assert table.check("exec-1", SANDBOX) is None


@pytest.mark.parametrize("address", ["", "sandbox", "172.30.0", "fe80::1%eth0", "172.30.0.5:80"])
def test_only_addresses_admitted(address):
    with pytest.raises(ValueError):
        Admissions().admit("exec-1", address)


def test_canonical_address():
    assert canonical_address("::ffff:10.0.0.1") == "10.0.0.1"
    assert canonical_address(" 10.0.0.1 ") == "10.0.0.1"
    assert canonical_address("2001:DB8::1") == "2001:db8::1"
    assert canonical_address("nope") is None


def test_tables_are_bounded():
    table = Admissions(max_admitted=2, max_revoked=2)
    for n in range(3):
        table.admit(f"exec-{n}", SANDBOX)
    assert len(table) == 2 and table.check("exec-0", SANDBOX) == Refusal.NOT_ADMITTED  # dropped: refused
    for n in range(3):
        table.revoke(f"gone-{n}")
    assert table.check("gone-0", SANDBOX) == Refusal.NOT_ADMITTED  # forgotten as revoked, still refused


# --- the addon --------------------------------------------------------------


@pytest.mark.parametrize(
    "admitted, revoked, source, reason",
    [
        ((), (), SANDBOX, "credentials_not_admitted"),
        (("exec-1",), ("exec-1",), SANDBOX, "credentials_revoked"),
        (("exec-1",), (), OTHER_SANDBOX, "credentials_wrong_source"),
    ],
)
def test_credentials_refused_unless_admitted_from_the_source(admitted, revoked, source, reason):
    env = Env(admitted=())
    for execution_id in admitted:
        env.addon.admissions.admit(execution_id, SANDBOX)
    for execution_id in revoked:
        env.addon.admissions.revoke(execution_id)
    flow = connect_flow(authorization=auth(), client=client_from(source))
    run(env.addon.http_connect(flow))
    assert flow.response.status_code == 407
    assert flow.response.headers["X-Egress-Reason"] == reason
    [line] = env.lines()
    assert (line["reason"], line["claimed_user"], line["execution_id"]) == (reason, "exec-1", "")
    # A copied credential does not plant decisions in its execution's record.
    assert env.addon.decisions_for("exec-1") == ([], 0)


def test_admitted_credentials_pass():
    env = Env(admitted=())
    env.addon.admissions.admit("exec-1", SANDBOX)
    flow = connect_flow(authorization=auth(), client=client_from(SANDBOX))
    run(env.addon.http_connect(flow))
    assert flow.response is None


def test_revoked_while_the_tunnel_is_open():
    env = Env(egress_mode="intercept", admitted=())
    env.addon.admissions.admit("exec-1", SANDBOX)
    client = client_from(SANDBOX)
    run(env.addon.http_connect(connect_flow(authorization=auth(), client=client)))
    env.addon.tls_clienthello(clienthello(connect_flow(client=client), ALLOWED))
    first = request_flow("GET", [], client)
    run(env.addon.requestheaders(first))
    assert first.response is None
    env.addon.admissions.revoke("exec-1")
    second = request_flow("GET", [], client)
    run(env.addon.requestheaders(second))
    assert second.response.status_code == 403
    assert second.response.headers["X-Egress-Reason"] == "credentials_revoked"
    records, _ = env.addon.decisions_for("exec-1")
    assert [(r.kind, r.reason) for r in records][-1] == ("request", "credentials_revoked")


# --- the RPCs ---------------------------------------------------------------


def _signed(method, request):
    return [(HEADER, sign(SECRET, method, request.SerializeToString(deterministic=True)))]


async def _rpc_scenario(listen: str):
    env = Env(egress_grpc_listen=listen, admitted=())
    addon = env.addon
    await addon.running()
    target = listen if listen.startswith("unix:") else f"127.0.0.1:{addon.background.grpc_port}"
    try:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = egress_pb2_grpc.EgressStub(channel)

            async def admit(execution_id, address):
                request = pb.AdmitRequest(execution_id=execution_id, address=address)
                return await stub.Admit(request, timeout=10, metadata=_signed(ADMIT, request))

            async def revoke(execution_id):
                request = pb.RevokeRequest(execution_id=execution_id)
                return await stub.Revoke(request, timeout=10, metadata=_signed(REVOKE, request))

            async def code_of(call):
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await call
                return err.value.code()

            await admit("exec-1", SANDBOX)
            assert addon.admissions.check("exec-1", SANDBOX) is None
            assert await code_of(admit("exec-1", OTHER_SANDBOX)) == grpc.StatusCode.FAILED_PRECONDITION
            assert await code_of(admit("exec-2", "not-an-address")) == grpc.StatusCode.INVALID_ARGUMENT
            assert await code_of(admit("bad id!", SANDBOX)) == grpc.StatusCode.INVALID_ARGUMENT
            assert (await revoke("exec-1")).was_admitted is True
            assert (await revoke("exec-1")).was_admitted is False
            assert addon.admissions.check("exec-1", SANDBOX) == Refusal.REVOKED
            assert await code_of(admit("exec-1", SANDBOX)) == grpc.StatusCode.FAILED_PRECONDITION
            unsigned = stub.Admit(pb.AdmitRequest(execution_id="exec-3", address=SANDBOX), timeout=10)
            assert await code_of(unsigned) == grpc.StatusCode.UNAUTHENTICATED
            # A signature is for one method: a signed GetDecisions is no Admit.
            request = pb.AdmitRequest(execution_id="exec-3", address=SANDBOX)
            wrong = stub.Admit(request, timeout=10, metadata=_signed(GET_DECISIONS, request))
            assert await code_of(wrong) == grpc.StatusCode.UNAUTHENTICATED
            assert addon.admissions.check("exec-3", SANDBOX) == Refusal.NOT_ADMITTED
    finally:
        await addon.done()


def test_admit_and_revoke_over_a_unix_socket(tmp_path):
    socket_path = tmp_path / "egress.sock"
    asyncio.run(_rpc_scenario(f"unix:{socket_path}"))
    assert not socket_path.exists()  # removed when the server stops


def test_admit_and_revoke_over_tcp():
    asyncio.run(_rpc_scenario("127.0.0.1:0"))
