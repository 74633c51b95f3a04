"""Prometheus metrics of the egress (its package cache), on a registry of its
own, served over HTTP when EGRESS_METRICS_LISTEN is set. The figures are
read from the cache's own counters at each scrape."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from services.egress.cache import PackageCache


class CacheCollector(Collector):
    def __init__(self, cache: Callable[[], PackageCache | None]):
        # A callable: configure() may replace the addon's cache.
        self._cache = cache

    def collect(self) -> Iterator[Metric]:
        cache = self._cache()
        if cache is None:
            return
        stats = cache.stats
        counters = (
            ("hits", "GETs answered from the package cache.", stats.hits),
            ("misses", "GETs for a package file with a published hash that was not in the cache.", stats.misses),
            ("served_bytes", "Bytes answered from the package cache.", stats.bytes_served),
            ("stored", "Package files stored.", stats.stored),
            ("stored_bytes", "Bytes of package files stored.", stats.bytes_stored),
            ("hash_mismatches", "Upstream package files not stored: not the published hash.", stats.hash_mismatches),
            ("evicted", "Package files evicted (least recently used first).", stats.evicted),
        )
        for name, documentation, value in counters:
            yield CounterMetricFamily(f"sandbox_egress_cache_{name}", documentation, value=value)
        yield GaugeMetricFamily("sandbox_egress_cache_bytes", "Bytes in the package cache.", value=cache.size)
        yield GaugeMetricFamily("sandbox_egress_cache_files", "Files in the package cache.", value=len(cache))
        yield GaugeMetricFamily(
            "sandbox_egress_cache_known_hashes", "Published file hashes the egress knows.", value=len(cache.known)
        )


class EgressMetrics:
    def __init__(self, cache: Callable[[], PackageCache | None]):
        self.registry = CollectorRegistry()
        self.registry.register(CacheCollector(cache))
        self._server: WSGIServer | None = None

    def serve(self, listen: str) -> int:
        """Serves /metrics over HTTP; returns the port."""
        host, _, port = listen.rpartition(":")
        server, _ = start_http_server(int(port), addr=host.strip("[]") or "127.0.0.1", registry=self.registry)
        self._server = server
        return server.server_port

    def stop(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            server.shutdown()
            server.server_close()
