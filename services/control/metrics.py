"""Prometheus metrics of one control replica, on a registry of its own (so
several controls in one process, as in the tests, do not collide), served
over HTTP on CONTROL_METRICS_LISTEN.

The domain modules record what happens to them here: the execution service
its admissions and refusals, the slot scheduler the queue wait, the relay
its failures, the watchdog its verdicts, the database the time of each
transaction; executions in flight are read at each scrape."""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from services.common.contract.errors import InvalidArgument
from services.common.metrics_http import ServesMetrics
from services.control.errors import AlreadyExists, QuotaExceeded, RuntimeUnavailable

QUEUE_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
DB_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

# Queue waits end one of these ways.
GOT_SLOT = "slot"
DEADLINE = "deadline"


def refusal_reason(exc: Exception) -> str | None:
    """The label of an admission refusal: the error code, and for a quota its
    kind (the QuotaFailure subject's last part: max_in_flight,
    daily_cpu_seconds, slot_share, slots, ...). None for anything that is
    not a refusal (a broken database is not the caller's fault)."""
    if isinstance(exc, QuotaExceeded):
        return f"quota_exceeded:{exc.subject.rpartition('/')[2]}"
    if isinstance(exc, InvalidArgument):
        return "invalid_argument"
    if isinstance(exc, AlreadyExists):
        return "already_exists"
    if isinstance(exc, RuntimeUnavailable):
        return "runtime_unavailable"
    return None


def tenants_of(executions: Iterable) -> dict[str, int]:
    """How many of `executions` each tenant has."""
    return dict(collections.Counter(execution.tenant for execution in executions))


class InFlightCollector(Collector):
    """Executions this replica relays (queued or running), by tenant."""

    def __init__(self, executions: Callable[[], Iterable]):
        self._executions = executions

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "sandbox_control_in_flight",
            "Executions this replica relays, queued or running, by tenant.",
            labels=["tenant"],
        )
        for tenant, count in sorted(tenants_of(self._executions()).items()):
            family.add_metric([tenant], count)
        yield family


class ControlMetrics(ServesMetrics):
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.admissions = Counter(
            "sandbox_control_admissions", "Executions admitted and handed to the relay.", registry=self.registry
        )
        self.refusals = Counter(
            "sandbox_control_refusals",
            "Executions refused before they ran, by error code (and quota kind); nothing was charged.",
            ["reason"],
            registry=self.registry,
        )
        self.queue_wait = Histogram(
            "sandbox_control_queue_wait_seconds",
            "Time an admitted execution waited for a slot, by how the wait ended (slot, deadline).",
            ["outcome"],
            buckets=QUEUE_BUCKETS,
            registry=self.registry,
        )
        self.relay_errors = Counter(
            "sandbox_control_relay_errors",
            "Spawner calls that failed: spawner_down and no_events were retried elsewhere; "
            "stream_broken, no_result, spawner_failed and control ended the execution.",
            ["kind"],
            registry=self.registry,
        )
        self.watchdog_failures = Counter(
            "sandbox_control_watchdog_failed",
            "Executions the watchdog failed: their relay's heartbeat stopped.",
            registry=self.registry,
        )
        self.db_seconds = Histogram(
            "sandbox_control_db_transaction_seconds",
            "Duration of database transactions (read or write), lock waits included.",
            ["kind"],
            buckets=DB_BUCKETS,
            registry=self.registry,
        )

    def watch_in_flight(self, executions: Callable[[], Iterable]) -> None:
        self.registry.register(InFlightCollector(executions))

    def admitted(self) -> None:
        self.admissions.inc()

    def refused(self, exc: Exception) -> None:
        reason = refusal_reason(exc)
        if reason is not None:
            self.refusals.labels(reason).inc()

    def waited(self, seconds: float, got_slot: bool) -> None:
        self.queue_wait.labels(GOT_SLOT if got_slot else DEADLINE).observe(seconds)

    def relay_error(self, kind: str) -> None:
        self.relay_errors.labels(kind).inc()

    def transaction(self, kind: str, seconds: float) -> None:
        self.db_seconds.labels(kind).observe(seconds)
