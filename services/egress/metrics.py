"""Prometheus metrics of the egress, on a registry of its own, served over
HTTP when EGRESS_METRICS_LISTEN is set (`MetricsAddon`, a third mitmproxy
addon beside the egress and cache addons): its decisions (allowed or refused,
and why) with the bytes that passed, counted as each decision record is
written (audit.DecisionLog), and its package cache, read from the cache's
own counters at each scrape."""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable, Iterator

from mitmproxy import ctx
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from services.common.metrics_http import ServesMetrics
from services.egress.audit import Record
from services.egress.cache import PackageCache

log = logging.getLogger(__name__)


class DecisionCounts(Collector):
    """Decisions by verdict, reason and kind (connect, request, http), and the
    bytes of allowed ones by kind and direction. The bytes of an intercepted
    tunnel's requests are also in its connect record's (the tunnel's whole
    traffic): add up one kind, not all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._decisions: collections.Counter[tuple[str, str, str]] = collections.Counter()
        self._bytes: collections.Counter[tuple[str, str]] = collections.Counter()

    def observe(self, record: Record) -> None:
        """Called once per decision record, when it is written (closed)."""
        with self._lock:
            self._decisions[(record.decision, record.reason, record.kind)] += 1
            self._bytes[(record.kind, "up")] += record.bytes_up
            self._bytes[(record.kind, "down")] += record.bytes_down

    def decisions(self) -> dict[tuple[str, str, str], int]:
        with self._lock:
            return dict(self._decisions)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            decisions, transferred = dict(self._decisions), dict(self._bytes)
        family = CounterMetricFamily(
            "sandbox_egress_decisions",
            "Decisions of the egress by verdict (allow, deny), reason and kind (connect, request, http).",
            labels=["decision", "reason", "kind"],
        )
        for labels, count in sorted(decisions.items()):
            family.add_metric(list(labels), count)
        yield family
        family = CounterMetricFamily(
            "sandbox_egress_bytes",
            "Bytes relayed, by kind and direction (up: from the sandbox); a tunnel's (connect) include its requests'.",
            labels=["kind", "direction"],
        )
        for (kind, direction), count in sorted(transferred.items()):
            family.add_metric([kind, direction], count)
        yield family


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


class EgressMetrics(ServesMetrics):
    def __init__(self, decisions: DecisionCounts, cache: Callable[[], PackageCache | None]):
        self.registry = CollectorRegistry()
        self.registry.register(decisions)
        self.registry.register(CacheCollector(cache))


class MetricsAddon:
    """Declares egress_metrics_listen and serves the metrics there while the
    proxy runs."""

    def __init__(self, decisions: DecisionCounts, cache: Callable[[], PackageCache | None]):
        self.metrics = EgressMetrics(decisions, cache)

    def load(self, loader) -> None:
        loader.add_option(
            "egress_metrics_listen", str, "", "host:port of the egress's Prometheus /metrics; empty: not served."
        )

    async def running(self) -> None:
        listen = ctx.options.egress_metrics_listen
        if listen:
            port = self.metrics.serve(listen)
            log.info("egress metrics on %s (port %d)", listen, port)

    def done(self) -> None:
        self.metrics.stop()
