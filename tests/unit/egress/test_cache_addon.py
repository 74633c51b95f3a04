"""The package cache on intercepted flows: the egress addon marks the
requests it allowed in a tunnel; the cache addon learns published hashes
from index responses, stores an upstream file whose bytes match, answers the
next GET for it without any upstream, and never stores or serves anything
else (a mismatch, a page, a credentialed or partial request)."""

from __future__ import annotations

import hashlib

import pytest
from mitmproxy import exceptions
from mitmproxy.test import tflow, tutils

from services.egress.cache_addon import CACHE_HEADER, CacheAddon
from services.egress.metrics import CacheCollector
from tests.unit.egress.test_addon import ALLOWED, Env, auth, clienthello, connect_flow, run

WHEEL = b"wheel bytes" * 100
WHEEL_PATH = "/files/demo-1.0-py3-none-any.whl"
BAD_PATH = "/files/demo-0.9-py3-none-any.whl"


class CacheEnv:
    def __init__(self, tmp_path, **opts):
        self.env = Env(egress_mode="intercept")
        self.cache_addon = CacheAddon()
        self.env.tctx.master.addons.add(self.cache_addon)
        self.env.tctx.configure(self.cache_addon, egress_cache_dir=str(tmp_path / "cache"), **opts)
        self.client = tflow.tclient_conn()
        run(self.env.addon.http_connect(connect_flow(authorization=auth(), client=self.client)))
        self.env.addon.tls_clienthello(clienthello(connect_flow(client=self.client), ALLOWED))

    @property
    def cache(self):
        return self.cache_addon.cache

    def get(self, path, upstream=None, headers=(), method="GET"):
        """One request through both addons; ``upstream`` is the upstream's
        response, used only if nothing answered before it."""
        req = tutils.treq(method=method.encode(), host=ALLOWED, port=443, path=path.encode(), content=b"")
        req.headers.clear()
        for name, value in [("Host", ALLOWED), *headers]:
            req.headers.add(name, value)
        flow = tflow.tflow(req=req, client_conn=self.client)
        run(self.env.addon.requestheaders(flow))
        run(self.cache_addon.request(flow))
        answered_by_cache = flow.response is not None
        if not answered_by_cache:
            flow.response = upstream
        run(self.cache_addon.response(flow))
        self.env.addon.response(flow)
        return flow, answered_by_cache


def index_page() -> bytes:
    good = hashlib.sha256(WHEEL).hexdigest()
    bad = hashlib.sha256(b"what the index published").hexdigest()
    return f'<a href="{WHEEL_PATH}#sha256={good}">w</a><a href="{BAD_PATH}#sha256={bad}">b</a>'.encode()


def upstream(content: bytes, content_type="application/octet-stream", **headers):
    response = tutils.tresp(content=content)
    response.headers["Content-Type"] = content_type
    for name, value in headers.items():
        response.headers[name.replace("_", "-")] = value
    return response


def test_file_with_the_published_hash_cached_then_served(tmp_path):
    c = CacheEnv(tmp_path)
    _, cached = c.get("/simple/demo/", upstream(index_page(), "text/html"))
    assert not cached and len(c.cache) == 0  # the page itself is never stored
    _, cached = c.get(WHEEL_PATH, upstream(WHEEL))
    assert not cached and len(c.cache) == 1
    flow, cached = c.get(WHEEL_PATH, upstream(b"never used"))
    assert cached and flow.response.content == WHEEL and flow.response.headers[CACHE_HEADER] == "hit"
    assert (c.cache.stats.hits, c.cache.stats.misses) == (1, 1)
    lines = c.env.lines()
    assert [line["decision"] for line in lines] == ["allow"] * 3
    assert lines[-1]["bytes_down"] == len(WHEEL)


def test_file_not_matching_the_published_hash_relayed_not_cached(tmp_path):
    c = CacheEnv(tmp_path)
    c.get("/simple/demo/", upstream(index_page(), "text/html"))
    flow, _ = c.get(BAD_PATH, upstream(b"something else"))
    assert flow.response.content == b"something else"  # relayed: pip checks the hash itself
    assert len(c.cache) == 0 and c.cache.stats.hash_mismatches == 1
    _, cached = c.get(BAD_PATH, upstream(b"something else"))
    assert not cached


@pytest.mark.parametrize(
    "headers, response_headers",
    [
        ([("Authorization", "Basic dTpw")], {}),
        ([("Cookie", "session=1")], {}),
        ([("Range", "bytes=0-9")], {}),
        ([], {"Cache_Control": "private"}),
        ([], {"Content_Encoding": "gzip"}),
    ],
)
def test_personal_partial_or_encoded_responses_not_cached(tmp_path, headers, response_headers):
    c = CacheEnv(tmp_path)
    c.get("/simple/demo/", upstream(index_page(), "text/html"))
    c.get(WHEEL_PATH, upstream(WHEEL, **response_headers), headers=headers)
    assert len(c.cache) == 0


def test_credentialed_request_not_served_from_the_cache(tmp_path):
    c = CacheEnv(tmp_path)
    c.get("/simple/demo/", upstream(index_page(), "text/html"))
    c.get(WHEEL_PATH, upstream(WHEEL))
    _, cached = c.get(WHEEL_PATH, upstream(WHEEL), headers=[("Authorization", "Basic dTpw")])
    assert not cached
    _, cached = c.get(WHEEL_PATH, upstream(b""), method="HEAD")
    assert not cached


def test_refused_request_never_reaches_the_cache(tmp_path):
    c = CacheEnv(tmp_path)
    c.get("/simple/demo/", upstream(index_page(), "text/html"))
    c.get(WHEEL_PATH, upstream(WHEEL))
    c.env.addon.admissions.revoke("exec-1")
    flow, _ = c.get(WHEEL_PATH)
    assert flow.response.status_code == 403 and CACHE_HEADER not in flow.response.headers


def test_no_cache_in_passthrough_mode_or_without_a_directory(tmp_path):
    env = Env()
    addon = CacheAddon()
    env.tctx.master.addons.add(addon)
    env.tctx.configure(addon, egress_cache_dir=str(tmp_path))
    assert addon.cache is None
    env.tctx.configure(addon, egress_cache_dir="", egress_mode="intercept")
    assert addon.cache is None
    with pytest.raises(exceptions.OptionsError):
        env.tctx.configure(addon, egress_cache_max_bytes=0)


def test_metrics_read_the_cache(tmp_path):
    c = CacheEnv(tmp_path)
    c.get("/simple/demo/", upstream(index_page(), "text/html"))
    c.get(WHEEL_PATH, upstream(WHEEL))
    c.get(WHEEL_PATH)
    samples = {s.name: s.value for m in CacheCollector(lambda: c.cache).collect() for s in m.samples}
    assert samples["sandbox_egress_cache_hits_total"] == 1
    assert samples["sandbox_egress_cache_misses_total"] == 1
    assert samples["sandbox_egress_cache_served_bytes_total"] == len(WHEEL)
    assert samples["sandbox_egress_cache_bytes"] == len(WHEEL)
    assert samples["sandbox_egress_cache_known_hashes"] == 2
    assert list(CacheCollector(lambda: None).collect()) == []
