"""The egress's decision metrics, scraped from its /metrics (loopback inside
its container): an allowed tunnel and a refused one each move their counter,
and the allowed tunnel's bytes are counted both ways."""

from __future__ import annotations

import secrets
import time

import pytest

from tests.integration.egress.test_egress_package_cache import INDEX, fetch, metrics

pytestmark = pytest.mark.integration

ALLOWED = 'sandbox_egress_decisions_total{decision="allow",kind="connect",reason="allowed"}'
REFUSED = 'sandbox_egress_decisions_total{decision="deny",kind="connect",reason="not_allowlisted"}'
BYTES_UP = 'sandbox_egress_bytes_total{direction="up",kind="connect"}'
BYTES_DOWN = 'sandbox_egress_bytes_total{direction="down",kind="connect"}'


def _moved(caching, before: dict[str, float], names: list[str], seconds: float = 10.0) -> dict[str, float]:
    """The metrics once every one of `names` grew (a tunnel's record is
    counted when its connection closes, just after the client is done)."""
    deadline = time.monotonic() + seconds
    while True:
        after = metrics(caching)
        if all(after.get(name, 0) > before.get(name, 0) for name in names) or time.monotonic() > deadline:
            return after
        time.sleep(0.2)


def test_allowed_and_refused_decisions_and_bytes_are_counted(mesh, caching):
    before = metrics(caching)
    fetch(mesh, caching, INDEX)
    execution_id = f"metrics-{secrets.token_hex(4)}"
    refused = mesh.tunnel("elsewhere.test.internal:443", auth=mesh.auth(execution_id), proxy_host=caching.proxy_host)
    assert (refused["status"], refused["reason"]) == (403, "not_allowlisted"), refused
    after = _moved(caching, before, [ALLOWED, REFUSED, BYTES_UP, BYTES_DOWN])
    assert after[ALLOWED] == before.get(ALLOWED, 0) + 1
    assert after[REFUSED] == before.get(REFUSED, 0) + 1
    assert after[BYTES_UP] > before.get(BYTES_UP, 0) and after[BYTES_DOWN] > before.get(BYTES_DOWN, 0)
    request = 'sandbox_egress_decisions_total{decision="allow",kind="request",reason="allowed"}'
    assert after[request] >= before.get(request, 0) + 1  # the GET inside the intercepted tunnel
