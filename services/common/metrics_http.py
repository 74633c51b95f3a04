"""Serving a service's Prometheus registry over HTTP (prometheus-client's
own server), and stopping it: one way for control, the spawner and the
egress."""

from __future__ import annotations

from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server


class ServesMetrics:
    """Mixed into a service's metrics class, which sets `registry`."""

    registry: CollectorRegistry
    _server: WSGIServer | None = None

    def serve(self, listen: str) -> int:
        """Serves /metrics on `listen` (host:port; port 0 picks a free one); returns the port."""
        host, _, port = listen.rpartition(":")
        self._server, _ = start_http_server(int(port), addr=host.strip("[]") or "127.0.0.1", registry=self.registry)
        return self._server.server_port

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
