"""The shared server start-up: health and reflection, port 0, SERVING after start."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from services.common import grpc_server

NAME = "sandbox.test.v1.Nothing"


def _listed(channel) -> set[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    answers = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10)
    return {s.name for answer in answers for s in answer.list_services_response.service}


def test_bound_server_reports_serving_after_start():
    server = grpc_server.thread_pool_server(workers=2, interceptors=[grpc_server.auth_interceptor(b"s" * 32)])
    bound = grpc_server.bind(server, "127.0.0.1:0", [NAME])
    assert bound.port > 0
    bound.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{bound.port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for name in ("", NAME):
                reply = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=10)
                assert reply.status == health_pb2.HealthCheckResponse.SERVING
            assert {NAME, "grpc.health.v1.Health"} <= _listed(channel)
    finally:
        server.stop(grace=None).wait()


def test_unusable_address_is_refused():
    server = grpc_server.thread_pool_server(workers=1, interceptors=[])
    with pytest.raises(RuntimeError):
        grpc_server.bind(server, "256.0.0.1:1", [NAME])


async def _async_scenario():
    server = grpc.aio.server(interceptors=[grpc_server.async_auth_interceptor(b"s" * 32)])
    bound = grpc_server.bind_async(server, "127.0.0.1:0", [NAME])
    await bound.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{bound.port}") as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=NAME), timeout=10
            )
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await server.stop(None)


def test_async_bound_server_reports_serving_after_start():
    asyncio.run(_async_scenario())
