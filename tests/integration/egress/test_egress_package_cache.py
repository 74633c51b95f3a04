"""The package cache of an intercepting egress, against the suite's own decoy
index (upstream_server.py): a file whose bytes hash to the value the index
published is fetched from the upstream once, then served by the egress; a
file that does not match is relayed as the upstream sent it (the installer
checks the hash itself and refuses it) and never cached."""

from __future__ import annotations

import secrets

import pytest

from sandbox.egress.v1 import egress_pb2 as pb
from tests.integration.egress.conftest import CACHE_METRICS_PORT

pytestmark = pytest.mark.integration

INDEX = "/simple/demo/"
GOOD = "/files/demo-1.0.tar.gz"
BAD = "/files/demo-0.9.tar.gz"
NPM_DOCUMENT = "/npm/demo"
TARBALL = "/npm/demo/-/demo-1.0.0.tgz"


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


def test_npm_tarball_verified_by_its_integrity(mesh, caching):
    fetch(mesh, caching, NPM_DOCUMENT)
    before = mesh.upstream_requests(TARBALL)
    first = fetch(mesh, caching, TARBALL)
    second = fetch(mesh, caching, TARBALL)
    assert first["body"] == second["body"] == "demo 1.0.0 npm tarball\n" * 64
    assert second["inner_headers"]["x-egress-cache"] == "hit"
    assert mesh.upstream_requests(TARBALL) == before + 1


def metrics(caching) -> dict[str, float]:
    script = (
        "import urllib.request; "
        f"print(urllib.request.urlopen('http://127.0.0.1:{CACHE_METRICS_PORT}/metrics', timeout=5).read().decode())"
    )
    code, output = caching.container.exec_run(["/opt/venv/bin/python", "-c", script], user="10001")
    assert code == 0, output
    samples = {}
    for line in output.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def test_hits_misses_and_bytes_are_metrics(mesh, caching):
    fetch(mesh, caching, INDEX)
    fetch(mesh, caching, GOOD)  # stored by now (here or by an earlier test)
    before = metrics(caching)
    fetch(mesh, caching, GOOD)
    fetch(mesh, caching, GOOD)
    after = metrics(caching)
    assert after["sandbox_egress_cache_hits_total"] == before["sandbox_egress_cache_hits_total"] + 2
    served = after["sandbox_egress_cache_served_bytes_total"] - before["sandbox_egress_cache_served_bytes_total"]
    assert served == 2 * len("demo 1.0 sdist\n" * 64)
    assert after["sandbox_egress_cache_bytes"] > 0 and after["sandbox_egress_cache_known_hashes"] >= 2
    assert "sandbox_egress_cache_misses_total" in after
