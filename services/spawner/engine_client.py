"""The spawner's client of the Docker engine: docker-py's APIClient with
less work on each call.

Every execution makes four engine calls (create, start, wait, remove), and
docker-py's own overhead per call was about as much CPU as the rest of the
spawner's Python for an execution:

- its unix-socket adapter keys connection pools by the whole URL (with
  requests 2.32 and later), and nearly every call names its container: each
  made a new pool and a new connection to the engine, and closed an older
  pool's. Here the one socket has one pool (OnePoolUnixAdapter);
- requests' session merges cookies, authentication, hooks, proxies and
  environment settings into every call and looks for redirects after it; a
  unix socket to the local engine has none of them. A call that reads its
  whole answer is prepared and sent by the adapter directly
  (EngineClient.request); streamed calls (attach, exec, logs) take the
  session's way.
"""

from __future__ import annotations

from typing import Any, cast

import docker
import requests
from docker.transport import UnixHTTPAdapter
from requests.sessions import merge_setting
from requests.structures import CaseInsensitiveDict

UNIX_SOCKET_SCHEME = "http+docker://"  # docker-py's base_url for a unix socket
ENGINE_TIMEOUT_SECONDS = 60
# What docker-py passes to a call of its session; anything else (or a stream)
# takes the session's way.
_DIRECT_ARGUMENTS = frozenset({"params", "data", "headers", "timeout", "json", "stream", "allow_redirects"})


class OnePoolUnixAdapter(UnixHTTPAdapter):
    """One connection pool for the engine's socket, whatever URL a call names."""

    def get_connection(self, url, proxies=None):
        return super().get_connection(UNIX_SOCKET_SCHEME, proxies)


class EngineClient(docker.APIClient):
    def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> requests.Response:
        direct = (
            not args
            and not kwargs.get("stream")
            and kwargs.keys() <= _DIRECT_ARGUMENTS
            and str(url).startswith(UNIX_SOCKET_SCHEME)
        )
        if not direct:
            return super().request(method, url, *args, **kwargs)
        prepared = requests.PreparedRequest()
        prepared.prepare_method(method)
        prepared.prepare_url(url, kwargs.get("params"))
        prepared.prepare_headers(merge_setting(kwargs.get("headers"), self.headers, dict_class=CaseInsensitiveDict))
        prepared.prepare_body(kwargs.get("data"), None, kwargs.get("json"))
        # No TLS on a unix socket: nothing to verify, no client certificate.
        adapter = self.get_adapter(url)
        response = adapter.send(prepared, timeout=kwargs.get("timeout"), verify=True, cert=None, proxies={})
        response.content  # noqa: B018 -- read to the end: the connection goes back to the pool
        return response


def engine_client(docker_host: str, pool_size: int) -> docker.APIClient:
    """The client of the engine at `docker_host` ("": docker-py's default)."""
    client = EngineClient(
        base_url=docker_host or None, version="auto", timeout=ENGINE_TIMEOUT_SECONDS, max_pool_size=pool_size
    )
    if client.base_url.startswith(UNIX_SOCKET_SCHEME):
        # No proxy or .netrc applies to a unix socket; without this, requests
        # looks both up on every engine call (~0.15 ms of CPU each).
        client.trust_env = False
        mounted = cast(UnixHTTPAdapter, client.get_adapter(UNIX_SOCKET_SCHEME))
        adapter = OnePoolUnixAdapter(mounted.socket_path, timeout=ENGINE_TIMEOUT_SECONDS, max_pool_size=pool_size)
        mounted.close()
        client.mount(UNIX_SOCKET_SCHEME, adapter)
    return client
