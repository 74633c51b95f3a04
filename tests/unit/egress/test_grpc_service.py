"""sandbox.egress.v1.Egress served from the addon's event loop (loopback only)."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from sandbox.egress.v1 import egress_pb2 as pb
from sandbox.egress.v1 import egress_pb2_grpc
from services.common.auth import HEADER, sign
from services.egress.grpc_service import GET_DECISIONS
from tests.unit.egress.test_addon import SECRET, Env, auth, connect_flow


def _signed(request):
    return [(HEADER, sign(SECRET, GET_DECISIONS, request.SerializeToString(deterministic=True)))]


async def _scenario():
    env = Env(egress_grpc_listen="127.0.0.1:0")
    addon = env.addon
    await addon.running()
    assert addon.background.grpc_port
    for host in ("elsewhere.test.internal", "pkgs.test.internal"):
        await addon.http_connect(connect_flow(host, authorization=auth()))
    await addon.http_connect(connect_flow("elsewhere.test.internal", authorization=auth("exec-2")))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{addon.background.grpc_port}") as channel:
            stub = egress_pb2_grpc.EgressStub(channel)
            reply = await stub.GetDecisions(
                pb.GetDecisionsRequest(execution_id="exec-1"),
                timeout=10,
                metadata=_signed(pb.GetDecisionsRequest(execution_id="exec-1")),
            )
            got = [(d.host, d.verdict, d.reason, d.tenant, d.port, d.kind) for d in reply.decisions]
            assert got == [
                ("elsewhere.test.internal", pb.VERDICT_DENY, "not_allowlisted", "tenant-a", 443, "connect"),
                ("pkgs.test.internal", pb.VERDICT_ALLOW, "allowed", "tenant-a", 443, "connect"),
            ]
            assert reply.decisions[1].resolved_address == "198.51.100.7"
            assert reply.dropped == 0
            unknown = await stub.GetDecisions(
                pb.GetDecisionsRequest(execution_id="nobody"),
                timeout=10,
                metadata=_signed(pb.GetDecisionsRequest(execution_id="nobody")),
            )
            assert list(unknown.decisions) == []
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.GetDecisions(
                    pb.GetDecisionsRequest(execution_id="bad id!"),
                    timeout=10,
                    metadata=_signed(pb.GetDecisionsRequest(execution_id="bad id!")),
                )
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.GetDecisions(pb.GetDecisionsRequest(execution_id="exec-1"), timeout=10)
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            health = health_pb2_grpc.HealthStub(channel)
            for service in ("", "sandbox.egress.v1.Egress"):
                status = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
                assert status.status == health_pb2.HealthCheckResponse.SERVING
            refl = reflection_pb2_grpc.ServerReflectionStub(channel)

            async def requests():
                yield reflection_pb2.ServerReflectionRequest(list_services="")

            async for answer in refl.ServerReflectionInfo(requests(), timeout=10):
                names = {s.name for s in answer.list_services_response.service}
                assert "sandbox.egress.v1.Egress" in names
    finally:
        await addon.done()
    assert addon.background.grpc_server is None


def test_get_decisions_served_from_the_addon_loop():
    asyncio.run(_scenario())
