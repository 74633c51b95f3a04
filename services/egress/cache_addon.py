"""A second mitmproxy addon beside the egress addon: the package cache
(cache.py) on intercepted flows (its metrics: metrics.py).

It acts only on requests the egress addon allowed inside an intercepted
tunnel, which that addon marks (``mark``) with the URL the cache knows them
by; every check stays with the egress addon, which runs first. A GET for a
stored file is answered from the cache before any upstream connection; an
upstream's response is read for published hashes (index documents) or
offered for storing (package files).

A request that could make the upstream's answer personal or partial
(credentials, cookies, ranges, conditions) bypasses the cache both ways: a
private registry's file must never reach another tenant, and only a whole
file can match its hash. The cache work (hashing, file reads and writes,
parsing index documents) runs on a worker thread, off the proxy's loop.
"""

from __future__ import annotations

import asyncio
import logging
import pathlib

from mitmproxy import ctx, exceptions, http

from services.egress.cache import DEFAULT_MAX_BYTES, PackageCache, is_package_file
from services.egress.index_hashes import normalize_url
from services.egress.options import INTERCEPT

log = logging.getLogger(__name__)

CACHE_HEADER = "X-Egress-Cache"
# Metadata keys on a flow: the URL the cache knows it by, and whether the
# cache answered it.
URL_KEY = "egress_cache_url"
SERVED_KEY = "egress_cache_served"
BYPASS_REQUEST_HEADERS = ("authorization", "cookie", "range", "if-range", "if-match", "if-none-match")
UNCACHEABLE_DIRECTIVES = ("no-store", "private")
IDENTITY_ENCODINGS = ("", "identity")
# Index documents larger than this are relayed without being read for hashes.
MAX_INDEX_BYTES = 64 * 1024 * 1024


def mark(flow: http.HTTPFlow, host: str, port: int) -> None:
    """Called by the egress addon for a request it allowed in an intercepted
    tunnel to ``host``:``port``."""
    flow.metadata[URL_KEY] = normalize_url(f"https://{host}:{port}{flow.request.path}")


def _cacheable_request(request: http.Request) -> bool:
    return request.method == "GET" and not any(name in request.headers for name in BYPASS_REQUEST_HEADERS)


class CacheAddon:
    def __init__(self) -> None:
        self.cache: PackageCache | None = None

    def load(self, loader) -> None:
        loader.add_option(
            "egress_cache_dir",
            str,
            "",
            "Intercept mode: directory of the package cache (files verified against the hash their index "
            "published, shared by all tenants); empty: no cache.",
        )
        loader.add_option(
            "egress_cache_max_bytes", int, DEFAULT_MAX_BYTES, "Size bound of the package cache (LRU eviction)."
        )

    def configure(self, updated: set[str]) -> None:
        o = ctx.options
        if not {"egress_cache_dir", "egress_cache_max_bytes", "egress_mode"} & updated:
            return
        if o.egress_cache_max_bytes < 1:
            raise exceptions.OptionsError("egress_cache_max_bytes must be positive")
        self.cache = None
        if o.egress_cache_dir and o.egress_mode == INTERCEPT:  # in passthrough the egress sees no file
            try:
                self.cache = PackageCache(pathlib.Path(o.egress_cache_dir), o.egress_cache_max_bytes)
            except OSError as exc:
                raise exceptions.OptionsError(f"egress_cache_dir: {exc}") from exc
            log.info("package cache in %s: %d files, %d bytes", o.egress_cache_dir, len(self.cache), self.cache.size)

    async def request(self, flow: http.HTTPFlow) -> None:
        url = flow.metadata.get(URL_KEY)
        cache = self.cache
        if cache is None or not url or flow.response is not None or not _cacheable_request(flow.request):
            return
        body = await asyncio.to_thread(cache.lookup, url)
        if body is None:
            return
        flow.metadata[SERVED_KEY] = True
        flow.response = http.Response.make(200, body, {"Content-Type": "application/octet-stream", CACHE_HEADER: "hit"})

    async def response(self, flow: http.HTTPFlow) -> None:
        url = flow.metadata.get(URL_KEY)
        response, cache = flow.response, self.cache
        if cache is None or not url or response is None or flow.metadata.get(SERVED_KEY):
            return
        if response.status_code != 200 or not _cacheable_request(flow.request):
            return
        cache_control = response.headers.get("cache-control", "").lower()
        if any(directive in cache_control for directive in UNCACHEABLE_DIRECTIVES):
            return
        if is_package_file(url):
            # Stored as sent, so only bytes that are the file itself.
            if response.headers.get("content-encoding", "").strip().lower() in IDENTITY_ENCODINGS:
                await asyncio.to_thread(cache.store, url, response.raw_content or b"")
            return
        if len(response.raw_content or b"") > MAX_INDEX_BYTES:
            return
        body = response.get_content(strict=False) or b""
        if len(body) <= MAX_INDEX_BYTES:
            await asyncio.to_thread(cache.learn, url, response.headers.get("content-type", ""), body)
