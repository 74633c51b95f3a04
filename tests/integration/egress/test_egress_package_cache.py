"""The package cache of an intercepting egress, against the suite's own decoy
index (upstream_server.py): a file whose bytes hash to the value the index
published is fetched from the upstream once, then served by the egress; a
file that does not match is relayed as the upstream sent it (the installer
checks the hash itself and refuses it) and never cached."""

from __future__ import annotations

import secrets

import pytest

from sandbox.egress.v1 import egress_pb2 as pb

pytestmark = pytest.mark.integration

INDEX = "/simple/demo/"
GOOD = "/files/demo-1.0.tar.gz"
BAD = "/files/demo-0.9.tar.gz"


def fetch(mesh, egress, path: str, execution_id: str | None = None, tenant: str = "tenant-a") -> dict:
    execution_id = execution_id or f"cache-{secrets.token_hex(4)}"
    out = mesh.tunnel(
        "pkgs.test.internal:443",
        auth=mesh.auth(execution_id, tenant=tenant),
        proxy_host=egress.proxy_host,
        cadata=egress.ca_pem,
        path=path,
    )
    assert out["tls"] == "ok" and out["inner_status"] == 200, out
    return out


def test_verified_file_served_from_the_cache_to_any_tenant(mesh, caching):
    fetch(mesh, caching, INDEX)
    before = mesh.upstream_requests(GOOD)
    first = fetch(mesh, caching, GOOD, tenant="tenant-a")
    assert first["body"] == "demo 1.0 sdist\n" * 64
    assert "x-egress-cache" not in first["inner_headers"]
    assert mesh.upstream_requests(GOOD) == before + 1
    # The index is fetched again, as an installer would; the file is not.
    fetch(mesh, caching, INDEX)
    execution_id = f"cache-{secrets.token_hex(4)}"
    second = fetch(mesh, caching, GOOD, execution_id=execution_id, tenant="tenant-b")
    assert second["body"] == first["body"] and second["inner_headers"]["x-egress-cache"] == "hit"
    assert mesh.upstream_requests(GOOD) == before + 1
    # Served from the cache, the request is still a decision of its execution.
    got = [(d.kind, d.verdict) for d in caching.decisions(execution_id)]
    assert got == [("connect", pb.VERDICT_ALLOW), ("request", pb.VERDICT_ALLOW)]


def test_file_not_matching_the_published_hash_relayed_never_cached(mesh, caching):
    fetch(mesh, caching, INDEX)
    before = mesh.upstream_requests(BAD)
    for _ in range(2):
        out = fetch(mesh, caching, BAD)
        assert out["body"].startswith("demo 0.9 sdist") and "x-egress-cache" not in out["inner_headers"]
    assert mesh.upstream_requests(BAD) == before + 2
    code, listing = caching.container.exec_run(["ls", "-A", "/var/lib/sandbox-mesh/egress-cache"], user="10001")
    assert code == 0 and len(listing.split()) <= 1  # at most the verified demo-1.0


def test_index_pages_never_cached(mesh, caching):
    before = mesh.upstream_requests(INDEX)
    fetch(mesh, caching, INDEX)
    fetch(mesh, caching, INDEX)
    assert mesh.upstream_requests(INDEX) == before + 2
