"""Builds and runs the spawner's gRPC server: Spawner, health, reflection."""

from __future__ import annotations

import dataclasses
import logging

import docker
import grpc
from grpc_health.v1 import health, health_pb2

from sandbox.spawner.v1 import spawner_pb2, spawner_pb2_grpc
from services.common import grpc_server
from services.common.contract.limits import max_message_bytes
from services.common.tracing import ServerTraceInterceptor
from services.spawner.config import SpawnerSettings
from services.spawner.engine_client import engine_client
from services.spawner.servicer import SpawnerServicer
from services.spawner.spawner import ConfigurationError, Spawner

log = logging.getLogger(__name__)

SERVICE_NAME = spawner_pb2.DESCRIPTOR.services_by_name["Spawner"].full_name


@dataclasses.dataclass
class RunningServer:
    server: grpc.Server
    port: int
    spawner: Spawner
    health: health.HealthServicer
    metrics_port: int | None = None

    def stop(self, grace_seconds: float = 10.0) -> None:
        """Drains: refuses new calls, lets executions finish within the grace
        period, cancels what is left and removes its containers."""
        self.health.enter_graceful_shutdown()
        self.spawner.shutdown(grace_seconds)
        self.server.stop(grace=1).wait()
        self.spawner.metrics.stop()


def docker_client(settings: SpawnerSettings) -> docker.APIClient:
    # One pooled connection per concurrent execution plus a few for control calls.
    return engine_client(settings.docker_host, pool_size=settings.capacity * 2 + 8)


def _engine_health(servicer: health.HealthServicer, up: bool) -> None:
    """NOT_SERVING while the engine does not answer: a caller that checks
    health sends its executions elsewhere."""
    status = health_pb2.HealthCheckResponse.SERVING if up else health_pb2.HealthCheckResponse.NOT_SERVING
    for name in ("", SERVICE_NAME):
        servicer.set(name, status)


def auth_interceptors(settings: SpawnerSettings) -> list[grpc.ServerInterceptor]:
    if settings.secret is not None and settings.secret.get_secret_value():
        return [grpc_server.auth_interceptor(settings.secret.get_secret_value().encode())]
    if settings.insecure:
        log.warning(
            "SPAWNER_INSECURE=1: NO AUTHENTICATION. Anyone who reaches %s can run code "
            "and cancel executions. Set SPAWNER_SECRET for anything but local development.",
            settings.listen,
        )
        return []
    raise ConfigurationError(
        "SPAWNER_SECRET is not set. Set it (a long random string shared with control), "
        "or set SPAWNER_INSECURE=1 to run without authentication."
    )


def start(settings: SpawnerSettings, api: docker.APIClient | None = None) -> RunningServer:
    interceptors = auth_interceptors(settings)
    api = api or docker_client(settings)
    spawner = Spawner(settings, api)
    if settings.reap_on_start:
        spawner.reap()
    spawner.start_sweeper()
    spawner.start_pool()
    metrics_port = spawner.metrics.serve(settings.metrics_listen) if settings.metrics_listen else None
    server = grpc_server.thread_pool_server(
        workers=settings.capacity + 16,
        # The caller's trace first: the check of its signature runs in it too.
        interceptors=[ServerTraceInterceptor(), *interceptors],
        max_request_bytes=max_message_bytes(settings.limits),
        max_concurrent_rpcs=settings.capacity + 12,
    )
    spawner_pb2_grpc.add_SpawnerServicer_to_server(SpawnerServicer(spawner), server)
    bound = grpc_server.bind(server, settings.listen, [SERVICE_NAME])
    bound.start()
    spawner.engine.on_change = lambda up: _engine_health(bound.health, up)
    log.info("spawner %r listening on %s (port %d)", settings.name, settings.listen, bound.port)
    return RunningServer(server, bound.port, spawner, bound.health, metrics_port)
