"""The spawner's engine client keeps one connection pool for the engine's
unix socket, whatever URL a call names."""

from __future__ import annotations

import pytest
import requests

from services.spawner.engine_client import EngineClient, OnePoolUnixAdapter


def test_calls_naming_different_containers_share_one_pool():
    adapter = OnePoolUnixAdapter("/nonexistent/docker.sock", max_pool_size=4)
    first = adapter.get_connection("http+docker://localhost/v1.41/containers/a/start")
    second = adapter.get_connection("http+docker://localhost/v1.41/containers/b/wait")
    assert first is second
    assert len(adapter.pools) == 1
    adapter.close()


def test_an_engine_that_is_gone_fails_a_call_the_same_way_directly_or_streamed():
    # The engine watch (engine.py) counts requests' exceptions as the engine gone.
    client = EngineClient(base_url="unix:///nonexistent/docker.sock", version="1.41")
    with pytest.raises(requests.exceptions.ConnectionError):
        client.inspect_container("sandbox")  # the direct way
    with pytest.raises(requests.exceptions.ConnectionError):
        client.get(client._url("/containers/{0}/logs", "sandbox"), stream=True)  # the session's way
    client.close()
