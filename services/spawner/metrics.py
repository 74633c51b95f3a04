"""Prometheus metrics of one spawner, on a registry of its own (so several
spawners in one process, as in the tests, do not collide)."""

from __future__ import annotations

import functools

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from sandbox.common.v1 import execution_pb2 as common
from services.common.metrics_http import ServesMetrics

DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
REFILL_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10)


class SpawnerMetrics(ServesMetrics):
    def __init__(self, in_flight, free_slots):
        self.registry = CollectorRegistry()
        self.executions = Counter(
            "sandbox_spawner_executions",
            "Finished executions by status and error code.",
            ["status", "error_code"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "sandbox_spawner_execution_duration_seconds",
            "From admission to result, clean-up included.",
            ["status"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.refused = Counter(
            "sandbox_spawner_refused",
            "Execute calls refused before anything started, by gRPC status.",
            ["code"],
            registry=self.registry,
        )
        self.cleanup_failures = Counter(
            "sandbox_spawner_cleanup_failures",
            "Containers, workspaces or cgroups that could not be removed.",
            ["what"],
            registry=self.registry,
        )
        pool_labels = ["runtime", "network", "sandbox_runtime"]
        self.warm_hits = Counter(
            "sandbox_spawner_warm_pool_hits",
            "Executions that got a warm sandbox.",
            pool_labels,
            registry=self.registry,
        )
        self.warm_misses = Counter(
            "sandbox_spawner_warm_pool_misses",
            "Executions that started cold, by why: empty (none ready), limits (not the default ones), no pool.",
            [*pool_labels, "reason"],
            registry=self.registry,
        )
        self.warm_refill = Histogram(
            "sandbox_spawner_warm_pool_refill_seconds",
            "Time to make one warm sandbox, off any caller's clock.",
            pool_labels,
            buckets=REFILL_BUCKETS,
            registry=self.registry,
        )
        self.warm_refill_failures = Counter(
            "sandbox_spawner_warm_pool_refill_failures",
            "Warm sandboxes that could not be made.",
            pool_labels,
            registry=self.registry,
        )
        self.warm_ready = Gauge(
            "sandbox_spawner_warm_pool_ready",
            "Warm sandboxes waiting for an execution.",
            pool_labels,
            registry=self.registry,
        )
        Gauge("sandbox_spawner_in_flight", "Executions in flight.", registry=self.registry).set_function(in_flight)
        Gauge("sandbox_spawner_free_slots", "Free execution slots.", registry=self.registry).set_function(free_slots)

    def finished(self, status: int, error_code: int, seconds: float) -> None:
        status_name = common.ExecutionStatus.Name(status).removeprefix("EXECUTION_STATUS_").lower()
        code_name = common.ErrorCode.Name(error_code).removeprefix("ERROR_CODE_").lower()
        self.executions.labels(status_name, "none" if code_name == "unspecified" else code_name).inc()
        self.duration.labels(status_name).observe(seconds)

    def warm_hit(self, key) -> None:
        self.warm_hits.labels(*_pool_labels(key)).inc()

    def warm_missed(self, key, reason: str) -> None:
        self.warm_misses.labels(*_pool_labels(key), reason).inc()

    def warm_refilled(self, key, seconds: float) -> None:
        self.warm_refill.labels(*_pool_labels(key)).observe(seconds)

    def warm_refill_failed(self, key) -> None:
        self.warm_refill_failures.labels(*_pool_labels(key)).inc()

    def watch_pool(self, pool) -> None:
        for key in pool.targets:
            self.warm_ready.labels(*_pool_labels(key)).set_function(functools.partial(pool.ready, key))


def _pool_labels(key) -> tuple[str, str, str]:
    """A warm pool key (services/spawner/provision.py PoolKey) as labels."""
    return key.runtime + ("+session" if key.session else ""), "egress" if key.network else "none", key.sandbox_runtime
