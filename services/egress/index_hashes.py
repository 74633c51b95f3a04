"""The hashes package indexes publish for their files, read from the index
documents the egress relays from upstream servers: PEP 503 simple HTML
(``#sha256=`` in each link), PEP 691 simple JSON (``hashes`` of each file)
and npm package documents (``dist.integrity`` of each version).

They are what the package cache (cache.py) checks a downloaded file
against before storing or serving it. Only upstream responses are read
here, never anything a sandbox sent.
"""

from __future__ import annotations

import base64
import binascii
import collections
import json
import string
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit, urlunsplit

# Strongest first: where an index publishes several, the first one found is kept.
HASH_ALGORITHMS = ("sha512", "sha384", "sha256")
HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
DEFAULT_PORTS = {"https": 443, "http": 80}
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
SIMPLE_HTML = ("text/html", "application/vnd.pypi.simple.v1+html")
NPM_JSON = ("application/json", "application/vnd.npm.install-v1+json")
# Each learned hash costs some 300 bytes; a popular npm package lists
# thousands of versions.
DEFAULT_MAX_KNOWN = 200_000

# (algorithm, lowercase hex digest)
Digest = tuple[str, str]


def normalize_url(url: str) -> str:
    """The URL a file is known by: scheme and host in lower case, no default
    port, no fragment (the fragment is never sent in a request)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        return ""
    netloc = host if port in (None, DEFAULT_PORTS.get(scheme)) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path, parts.query, ""))


def _digest(algorithm: str, value: object) -> Digest | None:
    if algorithm not in HEX_LENGTHS or not isinstance(value, str):
        return None
    value = value.lower()
    if len(value) != HEX_LENGTHS[algorithm] or not set(value) <= set(string.hexdigits.lower()):
        return None
    return algorithm, value


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs.extend(value for name, value in attrs if name == "href" and value)


def from_simple_html(page_url: str, text: str) -> dict[str, Digest]:
    parser = _Links()
    parser.feed(text)
    parser.close()
    found: dict[str, Digest] = {}
    for href in parser.hrefs:
        url, _, fragment = urljoin(page_url, href).partition("#")
        algorithm, _, value = fragment.partition("=")
        digest = _digest(algorithm, value)
        if digest is not None:
            found[normalize_url(url)] = digest
    return found


def from_simple_json(page_url: str, document: object) -> dict[str, Digest]:
    files = document.get("files") if isinstance(document, dict) else None
    found: dict[str, Digest] = {}
    for entry in files if isinstance(files, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
            continue
        hashes = entry.get("hashes")
        if not isinstance(hashes, dict):
            continue
        for algorithm in HASH_ALGORITHMS:
            digest = _digest(algorithm, hashes.get(algorithm))
            if digest is not None:
                found[normalize_url(urljoin(page_url, entry["url"]))] = digest
                break
    return found


def _integrity(value: object) -> Digest | None:
    """The strongest hash of a Subresource Integrity value ("sha512-<base64>",
    several separated by spaces). npm's sha1 ``shasum`` is not used."""
    if not isinstance(value, str):
        return None
    best: Digest | None = None
    for item in value.split():
        algorithm, _, encoded = item.partition("-")
        try:
            raw = base64.b64decode(encoded.partition("?")[0], validate=True)
        except (binascii.Error, ValueError):
            continue
        digest = _digest(algorithm, raw.hex())
        if digest is not None and (best is None or HASH_ALGORITHMS.index(algorithm) < HASH_ALGORITHMS.index(best[0])):
            best = digest
    return best


def from_npm_document(document: object) -> dict[str, Digest]:
    versions = document.get("versions") if isinstance(document, dict) else None
    found: dict[str, Digest] = {}
    for version in versions.values() if isinstance(versions, dict) else []:
        dist = version.get("dist") if isinstance(version, dict) else None
        if not isinstance(dist, dict) or not isinstance(dist.get("tarball"), str):
            continue
        digest = _integrity(dist.get("integrity"))
        if digest is not None:
            found[normalize_url(dist["tarball"])] = digest
    return found


def from_index(page_url: str, content_type: str, body: bytes) -> dict[str, Digest]:
    """File URL -> published hash, from one index response (empty for
    anything else, or anything malformed)."""
    media_type = content_type.partition(";")[0].strip().lower()
    try:
        if media_type in SIMPLE_HTML:
            return from_simple_html(page_url, body.decode("utf-8", "replace"))
        if media_type == SIMPLE_JSON:
            return from_simple_json(page_url, json.loads(body))
        if media_type in NPM_JSON:
            document = json.loads(body)
            if isinstance(document, dict) and "versions" in document:
                return from_npm_document(document)
            return from_simple_json(page_url, document)
    except (ValueError, RecursionError):
        pass
    return {}


class KnownHashes:
    """A bounded map of file URL -> published hash; the least recently
    learned entries go first."""

    def __init__(self, max_entries: int = DEFAULT_MAX_KNOWN):
        self.max_entries = max_entries
        self._hashes: collections.OrderedDict[str, Digest] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._hashes)

    def add(self, hashes: dict[str, Digest]) -> None:
        for url, digest in hashes.items():
            self._hashes[url] = digest
            self._hashes.move_to_end(url)
        while len(self._hashes) > self.max_entries:
            self._hashes.popitem(last=False)

    def get(self, url: str) -> Digest | None:
        return self._hashes.get(url)
