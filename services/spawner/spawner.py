"""The spawner's domain object: admits executions, runs each on a worker
thread, cancels, reports capacity. The gRPC servicer is a thin layer on this."""

from __future__ import annotations

import contextvars
import functools
import importlib.metadata
import logging
import threading
import time

import docker

from sandbox.common.v1 import execution_pb2 as common
from sandbox.spawner.v1 import spawner_pb2 as pb
from services.common.contract.egress_token import mint as mint_credentials
from services.common.contract.runtimes import runtime_name
from services.common.contract.sandbox_runtimes import GVISOR, RUNC
from services.spawner import sandbox
from services.spawner.cgroups import CgroupLayout
from services.spawner.config import SpawnerSettings
from services.spawner.endings import Endings
from services.spawner.engine import EngineWatch
from services.spawner.errors import NetworkUnavailable, RuntimeUnavailable
from services.spawner.execution import Execution
from services.spawner.inflight import InFlight
from services.spawner.metrics import SpawnerMetrics
from services.spawner.netpool import NetworkPool, NetworkPoolError, reap_networks
from services.spawner.network import EgressClient, NetworkAccess, check_ca_volume
from services.spawner.provision import PoolKey, Provisioner, Sandbox
from services.spawner.reaper import reap
from services.spawner.sessions.live import start_interpreter
from services.spawner.sessions.manager import START_TIMEOUT_MS as SESSION_START_TIMEOUT_MS
from services.spawner.sessions.manager import SessionManager
from services.spawner.startup_checks import ConfigurationError, check_workspaces, checked_ca_cert
from services.spawner.validation import validate_execute
from services.spawner.warmpool import WarmPool

log = logging.getLogger(__name__)

# Slack past the longest an execution may live: its egress credentials stay
# valid that much longer, and the sweeper leaves alone what is younger.
LIFETIME_MARGIN_SECONDS = 60
# After cancelling at shutdown, how long to wait for each worker's clean-up.
CLEANUP_WAIT_SECONDS = 30


def version() -> str:
    try:
        return importlib.metadata.version("sandbox-mesh")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class Spawner:
    def __init__(self, settings: SpawnerSettings, api: docker.APIClient):
        self.settings = settings
        self.api = api
        engine = api.info()
        self.available_runtimes = sorted(engine.get("Runtimes", {}))
        if settings.oci_runtime not in self.available_runtimes:
            raise ConfigurationError(
                f"SPAWNER_OCI_RUNTIME={settings.oci_runtime!r} is not registered with the "
                f"Docker engine; it offers: {', '.join(self.available_runtimes)}"
            )
        self.sandbox_runtimes = _sandbox_runtimes(settings, self.available_runtimes)
        if settings.default_runtime not in self.sandbox_runtimes:
            raise ConfigurationError(
                f"SPAWNER_DEFAULT_RUNTIME={settings.default_runtime!r}: the engine has no "
                f"{settings.gvisor_runtime!r} runtime registered (scripts/ensure_gvisor.sh registers it)"
            )
        self.cgroups = CgroupLayout.detect(settings.cgroup_root, engine.get("CgroupDriver", "cgroupfs"))
        check_workspaces(settings)
        self.inflight = InFlight(settings.capacity)
        self.endings = Endings()
        self.metrics = SpawnerMetrics(
            in_flight=lambda: settings.capacity - self.inflight.free_slots,
            free_slots=lambda: self.inflight.free_slots,
        )
        self._lock = threading.Lock()
        self._sweeper_stop = threading.Event()
        self.cleanup_failures = 0
        self._workers: list[threading.Thread] = []
        pool_targets = _pool_targets(settings, self.sandbox_runtimes)
        self.network = self._network_access(
            settings, api, warm_with_network=sum(n for key, n in pool_targets.items() if key.network)
        )
        self.provisioner = Provisioner(settings, api, self.cgroups, self.network)
        self.default_limits = sandbox.ContainerLimits(settings.default_memory_bytes, settings.default_cpus)
        self.pool = WarmPool(
            pool_targets,
            plan=lambda key: self.provisioner.plan(key, self.default_limits),
            build=self._build_warm,
            destroy=self._destroy_warm,
            alive=_looks_alive,
            on_refilled=self.metrics.warm_refilled,
            on_refill_failed=lambda key, exc: self.metrics.warm_refill_failed(key),
        )
        self.metrics.watch_pool(self.pool)
        self.engine = EngineWatch(api, on_back=self._engine_back)
        self.sessions = SessionManager(
            settings,
            self.provisioner,
            self.inflight,
            take_warm=self._take_warm,
            on_cleanup_failure=self._cleanup_failed,
        )
        self.sessions.start()

    def _network_access(
        self, settings: SpawnerSettings, api: docker.APIClient, warm_with_network: int
    ) -> NetworkAccess | None:
        if not settings.egress_container:
            return None
        mint = None
        if settings.egress_secret is not None:
            secret = settings.egress_secret.get_secret_value().encode()
            # Valid for as long as an execution can live.
            ttl = int(_max_lifetime_seconds(settings)) + LIFETIME_MARGIN_SECONDS
            mint = functools.partial(_mint_proxy_token, secret, ttl)

        egress = None
        if settings.egress_grpc and settings.egress_secret is not None:
            egress = EgressClient(settings.egress_grpc, settings.egress_secret.get_secret_value().encode())
        elif mint is not None:
            raise ConfigurationError(
                "SPAWNER_EGRESS_SECRET needs SPAWNER_EGRESS_GRPC: the egress accepts an execution's "
                "credentials only once the spawner admitted it there"
            )
        ca_cert = checked_ca_cert(settings.egress_ca_cert) if settings.egress_ca_cert else None
        if ca_cert and settings.egress_ca_volume:
            try:
                check_ca_volume(api, settings.egress_ca_volume, ca_cert)
            except (ValueError, OSError) as exc:
                raise ConfigurationError(f"SPAWNER_EGRESS_CA_VOLUME: {exc}") from None
        try:
            pool = NetworkPool(api, settings.name, settings.egress_container, on_failure=self._cleanup_failed)
        except NetworkPoolError as exc:
            raise ConfigurationError(f"SPAWNER_EGRESS_CONTAINER: {exc}") from None
        if settings.reap_on_start:  # first: what a crashed run left holds address pools
            reap_networks(api, settings.name, pool.token, self._cleanup_failed)
        # One network per slot and per warm sandbox with a network, made
        # now: a spawner that cannot make them (the engine's address pools
        # exhausted, say) does not start.
        try:
            pool.fill(settings.capacity + warm_with_network)
        except NetworkPoolError as exc:
            pool.close()
            raise ConfigurationError(f"SPAWNER_EGRESS_CONTAINER: {exc}") from None
        return NetworkAccess(
            pool,
            settings.egress_proxy_port,
            mint_token=mint,
            egress=egress,
            ca_cert=ca_cert,
            ca_volume=settings.egress_ca_volume or None,
        )

    def reap(self, min_age_seconds: float = 0.0) -> None:
        """Removes what no execution in flight owns; never raises for one
        item (each failure is logged and counted)."""
        owned = (
            {e.token for e in self.inflight.all()}
            | self.pool.tokens()
            | self.provisioner.removing()
            | self.sessions.tokens()
        )
        reap(
            self.api,
            self.settings.name,
            self.settings.workspace_root,
            self.cgroups,
            owned,
            on_failure=self._cleanup_failed,
            min_age_seconds=min_age_seconds,
        )
        pool = self.network.pool if self.network is not None else None
        reap_networks(self.api, self.settings.name, pool.token if pool else None, self._cleanup_failed)
        if pool is not None:
            pool.sweep()

    def start_sweeper(self) -> None:
        """Periodically removes what no execution owns and that is older than
        the longest an execution may live."""
        s = self.settings
        max_age = _max_lifetime_seconds(s) + s.drain_seconds + LIFETIME_MARGIN_SECONDS
        stop = self._sweeper_stop

        def sweep() -> None:
            while not stop.wait(s.sweep_interval_seconds):
                try:
                    self.reap(min_age_seconds=max_age)
                except Exception as exc:
                    self._cleanup_failed("sweep", exc)

        threading.Thread(target=sweep, name="sweeper", daemon=True).start()
        self.engine.start()

    def _engine_back(self, since: float) -> None:
        """Reaps what executions failed to remove while the engine was gone
        (older than its return: what is newer belongs to new executions)."""
        self.reap(min_age_seconds=max(0.001, time.time() - since))

    def execute(self, request: pb.ExecuteRequest) -> Execution:
        """Validates and admits; raises a domain error before anything is
        started or written when the request is refused."""
        spec = validate_execute(request, self.settings)
        self.engine.require()  # refused at once while the engine does not answer
        if spec.network and self.network is None:
            raise NetworkUnavailable("packages" if spec.packages else "network")
        if spec.network and self.network is not None:
            self.network.require()  # refused at once while the egress does not answer
        if spec.sandbox_runtime not in self.sandbox_runtimes:
            raise RuntimeUnavailable(spec.sandbox_runtime, self.sandbox_runtimes)
        key = PoolKey(runtime_name(spec.language, spec.variant), spec.network, spec.sandbox_runtime)
        limits = sandbox.ContainerLimits(spec.memory_bytes, spec.cpus)
        execution = Execution(
            spec,
            self.settings,
            self.provisioner,
            on_cleanup_failure=self._cleanup_failed,
            on_finished=self._finished,
            box=self.provisioner.plan(key, limits, owner=spec.execution_id),  # only names, until it starts
        )
        self.inflight.admit(execution)
        warm = self._take_warm(key, limits)
        if warm is not None:
            execution.use_warm(warm)
        # In a copy of the caller's context: its trace reaches the egress and the logs.
        run = functools.partial(contextvars.copy_context().run, execution.run)
        worker = threading.Thread(target=run, name=f"execution-{spec.execution_id}", daemon=True)
        with self._lock:
            # Started under the lock: a concurrent execute() must not see it
            # as "not alive" and drop it from the list shutdown() waits for.
            self._workers = [w for w in self._workers if w.is_alive()] + [worker]
            worker.start()
        return execution

    def start_pool(self) -> None:
        """Starts making warm sandboxes (after the start-up reap)."""
        self.pool.start()

    def _take_warm(self, key: PoolKey, limits: sandbox.ContainerLimits) -> Sandbox | None:
        if key not in self.pool.targets:
            self.metrics.warm_missed(key, "no pool")
            return None
        if limits != self.default_limits:
            self.metrics.warm_missed(key, "limits")
            return None
        box = self.pool.take(key)
        if box is None:
            self.metrics.warm_missed(key, "empty")
        else:
            self.metrics.warm_hit(key)
        return box

    def _build_warm(self, box: Sandbox) -> None:
        self.provisioner.make_workspace(box)
        self.provisioner.start(box, labels={})
        if box.key.session:
            start_interpreter(box, SESSION_START_TIMEOUT_MS)

    def _destroy_warm(self, box: Sandbox) -> None:
        self.provisioner.destroy(box, lambda what, exc: self._cleanup_failed(what, exc, f"warm {box.token}"))

    def cancel(self, execution_id: str, tenant: str) -> bool:
        execution = self.inflight.get(execution_id)
        if execution is None or (tenant and execution.spec.tenant != tenant):
            return False
        return execution.cancel()

    def executions(self) -> pb.ListExecutionsResponse:
        """In flight first, then the endings: `_finished` records an ending
        before it releases the slot, so no execution slips between the two."""
        in_flight = [
            pb.ExecutionInFlight(execution_id=e.spec.execution_id, tenant=e.spec.tenant) for e in self.inflight.all()
        ]
        return pb.ListExecutionsResponse(in_flight=in_flight, ended=self.endings.recent())

    def info(self) -> pb.InfoResponse:
        s = self.settings
        return pb.InfoResponse(
            version=version(),
            capacity=s.capacity,
            free_slots=self.inflight.free_slots,
            runtime_images=s.runtime_images(),
            oci_runtime=s.oci_runtime,
            available_runtimes=self.available_runtimes,
            sandbox_runtimes=self.sandbox_runtimes,
            default_runtime=s.default_runtime,
            limits=pb.LimitRange(
                default_timeout_ms=s.default_timeout_ms,
                max_timeout_ms=s.max_timeout_ms,
                default_memory_bytes=s.default_memory_bytes,
                min_memory_bytes=s.min_memory_bytes,
                max_memory_bytes=s.max_memory_bytes,
                default_cpus=s.default_cpus,
                max_cpus=s.max_cpus,
            ),
        )

    def shutdown(self, grace_seconds: float) -> None:
        """Stops admitting, lets executions run up to the grace period, then
        cancels the rest and waits for their clean-up."""
        self.inflight.close()
        self._sweeper_stop.set()
        self.engine.stop()
        self.pool.close()
        with self._lock:
            workers = list(self._workers)
        deadline = _now() + grace_seconds
        for worker in workers:
            worker.join(max(0.0, deadline - _now()))
        for execution in self.inflight.all():
            execution.cancel(message="the spawner is shutting down")
        self.sessions.shutdown()
        for worker in workers:
            worker.join(CLEANUP_WAIT_SECONDS)
        if self.network is not None:
            self.network.pool.close()
        self._remove_cgroup_base()

    def _remove_cgroup_base(self) -> None:
        """Removes this spawner's (now empty) directory of cgroup parents."""
        for directory in self.cgroups.spawner_directories(self.settings.name):
            try:
                directory.rmdir()
            except Exception as exc:
                self._cleanup_failed("cgroup directory", exc)

    def _finished(self, execution: Execution, result: pb.ExecuteResult) -> None:
        if result.error_code == common.ERROR_CODE_SPAWNER_UNAVAILABLE:
            self.engine.doubt()
        self.endings.add(execution.spec.execution_id, execution.spec.tenant, result)
        self.inflight.release(execution)
        self.metrics.finished(result.status, result.error_code, time.monotonic() - execution.admitted_at)
        status = common.ExecutionStatus.Name(result.status)
        error_code = common.ErrorCode.Name(result.error_code)
        log.info(
            "execution %s (tenant %s) finished: %s %s %s",
            execution.spec.execution_id,
            execution.spec.tenant,
            status,
            error_code,
            result.error_message,
            extra={
                "execution_id": execution.spec.execution_id,
                "tenant": execution.spec.tenant,
                "status": status,
                "error_code": error_code,
            },
        )

    def _cleanup_failed(self, what: str, exc: Exception, execution_id: str = "") -> None:
        """Every clean-up failure, of an execution or of the reaper, ends here."""
        whose = f"execution {execution_id}" if execution_id else "no execution"
        log.error("clean-up of a %s (%s) failed: %r", what, whose, exc, exc_info=exc)
        self.metrics.cleanup_failures.labels(what).inc()
        with self._lock:
            self.cleanup_failures += 1


def _sandbox_runtimes(settings: SpawnerSettings, engine_runtimes: list[str]) -> list[str]:
    """The sandbox runtimes this spawner offers: runc always (checked
    above), gVisor where the engine has its runtime for every network mode
    the spawner serves."""
    offered = [RUNC]
    needed = {settings.gvisor_runtime} | ({settings.gvisor_network_runtime} if settings.egress_container else set())
    missing = needed - set(engine_runtimes)
    if missing:
        log.warning("gVisor not offered: the engine has no %s runtime registered", ", ".join(sorted(missing)))
    else:
        offered.append(GVISOR)
    return offered


def _pool_targets(settings: SpawnerSettings, sandbox_runtimes: list[str]) -> dict[PoolKey, int]:
    """The warm pool's targets; those with a network only with an egress,
    those of a sandbox runtime only where it is offered."""
    targets = {PoolKey(*key): n for key, n in settings.warm_pool_targets.items()}
    with_network = bool(settings.egress_container)
    if not with_network and any(key.network for key in targets):
        log.info("warm pool: no egress, so no warm sandboxes with a network")
    if any(key.sandbox_runtime not in sandbox_runtimes for key in targets):
        log.warning("warm pool: entries of a runtime not offered here are left out")
    return {
        key: n
        for key, n in targets.items()
        if (with_network or not key.network) and key.sandbox_runtime in sandbox_runtimes
    }


def _looks_alive(box: Sandbox) -> bool:
    """Whether a warm sandbox is still there to run a program: its runner
    has not hung up (no engine call), or with `docker exec`, the engine says
    it runs."""
    if box.runner is not None:
        return box.runner.alive()
    return box.container is not None and box.container.running()


def _max_lifetime_seconds(settings: SpawnerSettings) -> float:
    """The longest an execution may run: its install plus its steps."""
    return (settings.install_timeout_ms + settings.max_timeout_ms) / 1000


def _mint_proxy_token(secret: bytes, ttl: int, execution_id: str, tenant: str) -> str:
    return mint_credentials(secret, execution_id, tenant, ttl)


def _now() -> float:
    return time.monotonic()
