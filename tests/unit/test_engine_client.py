"""The spawner's engine client keeps one connection pool for the engine's
unix socket, whatever URL a call names."""

from __future__ import annotations

from services.spawner.server import OnePoolUnixAdapter


def test_calls_naming_different_containers_share_one_pool():
    adapter = OnePoolUnixAdapter("/nonexistent/docker.sock", max_pool_size=4)
    first = adapter.get_connection("http+docker://localhost/v1.41/containers/a/start")
    second = adapter.get_connection("http+docker://localhost/v1.41/containers/b/wait")
    assert first is second
    assert len(adapter.pools) == 1
    adapter.close()
