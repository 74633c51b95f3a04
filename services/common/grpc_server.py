"""The start-up every gRPC service shares: a server with its interceptors,
health and reflection next to the service's own servicers, the port bound
and checked (`host:0` picks a free port, as the tests do), then every
service marked SERVING once the server runs.

    server = grpc_server.thread_pool_server(workers=..., interceptors=[...])
    add_MyServicer_to_server(..., server)
    bound = grpc_server.bind(server, settings.listen, [MY_SERVICE_NAME])
    bound.start()

grpc.aio servers (the egress) use `bind_async` and `await bound.start()`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.common.auth import AsyncServerAuthInterceptor, ServerAuthInterceptor, Verifier

SERVING = health_pb2.HealthCheckResponse.SERVING
# The overall health of the server is reported under the empty service name.
WHOLE_SERVER = ""


class BindError(RuntimeError):
    pass


def auth_interceptor(secret: bytes) -> ServerAuthInterceptor:
    """Refuses every call not signed with `secret` (health and reflection stay open)."""
    return ServerAuthInterceptor(Verifier(secret))


def async_auth_interceptor(secret: bytes) -> AsyncServerAuthInterceptor:
    return AsyncServerAuthInterceptor(Verifier(secret))


def thread_pool_server(
    *,
    workers: int,
    interceptors: Sequence[grpc.ServerInterceptor],
    max_request_bytes: int | None = None,
    max_concurrent_rpcs: int | None = None,
) -> grpc.Server:
    options = [] if max_request_bytes is None else [("grpc.max_receive_message_length", max_request_bytes)]
    return grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="grpc"),
        options=options,
        maximum_concurrent_rpcs=max_concurrent_rpcs,
        interceptors=list(interceptors),
    )


def _add_health_and_reflection(server, health_servicer, service_names: Sequence[str]) -> None:
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection([*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)


def _bind_port(server, listen: str) -> int:
    port = server.add_insecure_port(listen)
    if port == 0:
        raise BindError(f"cannot listen on {listen}")
    return port


@dataclasses.dataclass
class BoundServer:
    """Servicers, health and reflection added, port bound; not started yet."""

    server: grpc.Server
    port: int
    health: health.HealthServicer
    service_names: tuple[str, ...]

    def start(self) -> None:
        self.server.start()
        for name in (WHOLE_SERVER, *self.service_names):
            self.health.set(name, SERVING)


def bind(server: grpc.Server, listen: str, service_names: Sequence[str]) -> BoundServer:
    """Adds health and reflection for `service_names` (the servicers already
    added) and binds `listen`; raises BindError when the port is taken."""
    health_servicer = health.HealthServicer()
    _add_health_and_reflection(server, health_servicer, service_names)
    return BoundServer(server, _bind_port(server, listen), health_servicer, tuple(service_names))


@dataclasses.dataclass
class AsyncBoundServer:
    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    service_names: tuple[str, ...]

    async def start(self) -> None:
        await self.server.start()
        for name in (WHOLE_SERVER, *self.service_names):
            await self.health.set(name, SERVING)


def bind_async(server: grpc.aio.Server, listen: str, service_names: Sequence[str]) -> AsyncBoundServer:
    """`bind` for a grpc.aio server."""
    health_servicer = health.aio.HealthServicer()
    _add_health_and_reflection(server, health_servicer, service_names)
    return AsyncBoundServer(server, _bind_port(server, listen), health_servicer, tuple(service_names))
