"""Prometheus metrics of one spawner, on a registry of its own (so several
spawners in one process, as in the tests, do not collide)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from sandbox.common.v1 import execution_pb2 as common

DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class SpawnerMetrics:
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
        Gauge("sandbox_spawner_in_flight", "Executions in flight.", registry=self.registry).set_function(in_flight)
        Gauge("sandbox_spawner_free_slots", "Free execution slots.", registry=self.registry).set_function(free_slots)
        self._server = None

    def finished(self, status: int, error_code: int, seconds: float) -> None:
        status_name = common.ExecutionStatus.Name(status).removeprefix("EXECUTION_STATUS_").lower()
        code_name = common.ErrorCode.Name(error_code).removeprefix("ERROR_CODE_").lower()
        self.executions.labels(status_name, "none" if code_name == "unspecified" else code_name).inc()
        self.duration.labels(status_name).observe(seconds)

    def serve(self, listen: str) -> int:
        """Serves /metrics over HTTP; returns the port."""
        host, _, port = listen.rpartition(":")
        self._server, _ = start_http_server(int(port), addr=host.strip("[]") or "127.0.0.1", registry=self.registry)
        return self._server.server_port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
