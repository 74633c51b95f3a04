"""Builds control's parts from its settings and runs its gRPC server:
Control, Artifacts, health, reflection."""

from __future__ import annotations

import dataclasses
import logging
import pathlib

import grpc
from grpc_health.v1 import health

from sandbox.control.v1 import control_pb2, control_pb2_grpc
from services.common import grpc_server
from services.common.contract.limits import max_message_bytes
from services.common.tracing import ServerTraceInterceptor
from services.control.artifacts.service import ArtifactService
from services.control.artifacts.servicer import add_to_server as add_artifacts
from services.control.auth import TenantAuthInterceptor
from services.control.blobs import BlobStore
from services.control.config import ControlSettings
from services.control.db import Database
from services.control.drain import Drain, DrainInterceptor, drain
from services.control.executions.heartbeats import Heartbeats
from services.control.executions.in_flight import InFlightExecutions
from services.control.executions.ownership import Leases, Owner
from services.control.executions.reconcile import Reconciler
from services.control.executions.retention import RetentionSweeper
from services.control.executions.service import ExecutionService
from services.control.executions.servicer import ControlServicer
from services.control.executions.store import ExecutionStore, now_ms
from services.control.metrics import ControlMetrics
from services.control.relay import Relay
from services.control.runs.service import RunService
from services.control.runs.servicer import ArtifactsAndRunsServicer
from services.control.sandbox_runtimes import RuntimePolicy
from services.control.sessions.service import SessionService
from services.control.sessions.servicer import SessionMethods
from services.control.sessions.store import SessionStore
from services.control.sessions.sweeper import SessionSweeper
from services.control.slots import SlotScheduler
from services.control.spawners import SpawnerPool

log = logging.getLogger(__name__)

SERVICE_NAME = control_pb2.DESCRIPTOR.services_by_name["Control"].full_name
# Threads serving RPCs: every streaming Execute or RunArtifact holds one.
GRPC_WORKERS = 64
# On stop (after the drain, drain.py): how long executions cancelled get to
# record their cancellation, then how long calls still open get to end.
STOP_GRACE_SECONDS = 10.0
DRAIN_SECONDS = 1


class ConfigurationError(Exception):
    pass


@dataclasses.dataclass
class RunningServer:
    server: grpc.Server
    port: int
    executions: ExecutionService
    database: Database
    health: health.HealthServicer
    drain: Drain
    drain_seconds: float  # CONTROL_DRAIN_SECONDS, what `python -m services.control` drains for
    metrics: ControlMetrics
    metrics_port: int | None = None  # None: not served
    session_sweeper: SessionSweeper | None = None

    def stop(self, grace_seconds: float = STOP_GRACE_SECONDS, drain_seconds: float = 0.0) -> None:
        """Admits nothing more, lets executions in flight finish for up to
        `drain_seconds`, cancels the rest (waiting up to `grace_seconds` for
        their records), then stops serving."""
        self.drain.begin()
        self.health.enter_graceful_shutdown()
        drain(self.executions.in_flight, self.executions.relay, drain_seconds, grace_seconds)
        if self.session_sweeper is not None:
            self.session_sweeper.stop()
        self.executions.stop(grace_seconds)
        self.server.stop(grace=DRAIN_SECONDS).wait()
        self.executions.relay.pool.close()
        self.database.dispose()
        self.metrics.stop()


class ControlService(SessionMethods, ControlServicer):
    """sandbox.control.v1.Control: executions and sessions."""

    def __init__(self, executions: ExecutionService, sessions: SessionService):
        super().__init__(executions)
        self.sessions = sessions


def secrets_of(settings: ControlSettings) -> tuple[bytes | None, dict[str, bytes] | None]:
    """(spawner secret, tenant keys); None where insecure mode allows it."""
    spawner_secret = settings.spawner_secret.get_secret_value().encode() if settings.spawner_secret else None
    keys = {t: k.get_secret_value().encode() for t, k in settings.tenant_keys.items() if k.get_secret_value()}
    if spawner_secret and keys:
        return spawner_secret, keys
    if settings.insecure:
        gaps = [
            text
            for text, missing in (
                ("calls to spawners are unsigned", not spawner_secret),
                ("tenants are not authenticated", not keys),
            )
            if missing
        ]
        log.warning(
            "CONTROL_INSECURE=1: %s. Set CONTROL_SPAWNER_SECRET and CONTROL_TENANT_KEYS for anything "
            "but local development.",
            " and ".join(gaps),
        )
        return spawner_secret, keys or None
    missing = [
        name for name, value in (("CONTROL_SPAWNER_SECRET", spawner_secret), ("CONTROL_TENANT_KEYS", keys)) if not value
    ]
    raise ConfigurationError(
        f"{' and '.join(missing)} not set. Set them, or set CONTROL_INSECURE=1 to run without authentication."
    )


def build_executions(
    settings: ControlSettings, database: Database, spawner_secret: bytes | None, metrics: ControlMetrics
) -> ExecutionService:
    owner = Owner.new(settings.replica_id)
    store = ExecutionStore(database, settings.quota_for, owner=owner)
    blobs = BlobStore(pathlib.Path(settings.data_dir) / "blobs")
    pool = SpawnerPool(settings.spawners, spawner_secret, settings.unhealthy_seconds)
    in_flight = InFlightExecutions()
    metrics.watch_in_flight(in_flight.all)
    slots = SlotScheduler(pool, store, lambda tenant: settings.quota_for(tenant).slot_share, metrics)
    relay = Relay(store, blobs, pool, in_flight, slots, metrics)
    heartbeats = Heartbeats(
        store,
        in_flight,
        pool,
        flush_interval_seconds=settings.flush_interval_seconds,
        watchdog_interval_seconds=settings.watchdog_interval_seconds,
        watchdog_min_seconds=settings.watchdog_min_seconds,
        metrics=metrics,
    )
    reconciler = Reconciler(
        store,
        Leases(database, owner, int(settings.lease_seconds * 1000), store.clock),
        pool,
        interval_seconds=settings.reconcile_interval_seconds,
        lease_seconds=settings.lease_seconds,
        relaying=lambda key: in_flight.get(key) is not None,
    )
    retention = RetentionSweeper(
        store, blobs, retention_days=settings.retention_days, interval_seconds=settings.retention_sweep_seconds
    )
    runtimes = RuntimePolicy(settings.default_runtime, frozenset(settings.untrusted_tenants), pool.sandbox_runtimes)
    return ExecutionService(
        settings.execution_limits(),
        store,
        blobs,
        relay,
        in_flight,
        heartbeats,
        slots,
        retention,
        runtimes,
        reconciler,
        metrics,
    )


def start(settings: ControlSettings) -> RunningServer:
    spawner_secret, tenant_keys = secrets_of(settings)
    metrics = ControlMetrics()
    database = Database(settings.sqlalchemy_url(), on_transaction=metrics.transaction)
    database.migrate()
    executions = build_executions(settings, database, spawner_secret, metrics)
    stopping = Drain()
    server = grpc_server.thread_pool_server(
        workers=GRPC_WORKERS,
        # The caller's trace first: the tenant check and everything after run in it.
        interceptors=[ServerTraceInterceptor(), TenantAuthInterceptor(tenant_keys), DrainInterceptor(stopping)],
        # The spawners' own bound: control never takes in a message a spawner would refuse for its size.
        max_request_bytes=max_message_bytes(settings.limits),
    )
    sessions = SessionService(SessionStore(database, now_ms), executions, max_open=settings.max_in_flight)
    session_sweeper = SessionSweeper(
        sessions.sessions,
        executions.relay.pool,
        interval_seconds=settings.reconcile_interval_seconds,
        spawner_grace_seconds=settings.session_spawner_grace_seconds,
        busy=sessions.is_busy,
    )
    control_pb2_grpc.add_ControlServicer_to_server(ControlService(executions, sessions), server)
    artifacts = ArtifactService(database, settings.artifact_limits(), quota_for=settings.quota_for)
    runs = RunService(executions, database, settings.prestage_limits())
    artifacts_name = add_artifacts(server, ArtifactsAndRunsServicer(artifacts, runs))
    bound = grpc_server.bind(server, settings.listen, [SERVICE_NAME, artifacts_name])
    metrics_port = metrics.serve(settings.metrics_listen) if settings.metrics_listen else None
    executions.start()
    session_sweeper.start()
    bound.start()
    log.info("control listening on %s (port %d), database %s", settings.listen, bound.port, database.dialect)
    return RunningServer(
        server,
        bound.port,
        executions,
        database,
        bound.health,
        stopping,
        settings.drain_seconds,
        metrics,
        metrics_port,
        session_sweeper,
    )
