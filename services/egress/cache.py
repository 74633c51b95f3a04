"""The egress's package cache: the immutable files it fetched (wheels, sdists,
npm tarballs), keyed by URL, shared by every tenant.

Nothing a sandbox sends is ever stored. A file is stored only from an
upstream's response, and only when its bytes hash to the value the package
index published for that URL (index_hashes.py, learned from index responses
the egress relayed); it is served only while the index still publishes that
value, and only after its bytes hashed to it again on reading. Index and
metadata pages are never stored: only URLs with a published hash and a
package file's name are.

Each file's name is the SHA-256 of its URL plus the published hash, so what
is on disk says what it must hash to. The total size is bounded; the least
recently used files are evicted first (last use: the file's mtime, so the
order survives a restart). The methods are called from worker threads.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import pathlib
import re
import tempfile
import threading
from collections import OrderedDict
from urllib.parse import urlsplit

from services.egress.index_hashes import DEFAULT_MAX_KNOWN, Digest, KnownHashes, from_index

log = logging.getLogger(__name__)

PACKAGE_FILE_SUFFIXES = (".whl", ".tar.gz", ".tgz", ".zip", ".tar.bz2", ".tar.xz")
DEFAULT_MAX_BYTES = 2 * 1024**3
# <sha256 of the URL>.<algorithm>-<published hex digest>
FILE_NAME = re.compile(r"^[0-9a-f]{64}\.(sha256|sha384|sha512)-([0-9a-f]{64,128})$")
PARTIAL_PREFIX = ".partial-"


def is_package_file(url: str) -> bool:
    """A URL naming a package file (never a page: no query string)."""
    parts = urlsplit(url)
    return not parts.query and parts.path.endswith(PACKAGE_FILE_SUFFIXES)


def matches(digest: Digest, body: bytes) -> bool:
    algorithm, expected = digest
    return hashlib.new(algorithm, body).hexdigest() == expected


def file_name(url: str, digest: Digest) -> str:
    return f"{hashlib.sha256(url.encode()).hexdigest()}.{digest[0]}-{digest[1]}"


@dataclasses.dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    bytes_served: int = 0
    stored: int = 0
    bytes_stored: int = 0
    # Upstream files whose bytes did not hash to the published value.
    hash_mismatches: int = 0
    evicted: int = 0


class PackageCache:
    def __init__(self, directory: pathlib.Path, max_bytes: int = DEFAULT_MAX_BYTES, max_known: int = DEFAULT_MAX_KNOWN):
        self.directory = directory
        self.max_bytes = max_bytes
        self.known = KnownHashes(max_known)
        self.stats = CacheStats()
        self._lock = threading.Lock()
        # file name -> size, least recently used first
        self._files: OrderedDict[str, int] = OrderedDict()
        self.size = 0
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._load()

    def __len__(self) -> int:
        return len(self._files)

    def _load(self) -> None:
        found = []
        for path in self.directory.iterdir():
            if path.name.startswith(PARTIAL_PREFIX) or not FILE_NAME.match(path.name):
                path.unlink(missing_ok=True)  # a write cut short, or nothing of the cache's
                continue
            info = path.stat()
            found.append((info.st_mtime, path.name, info.st_size))
        for _, name, size in sorted(found):
            self._files[name] = size
            self.size += size
        with self._lock:
            self._evict()

    def learn(self, page_url: str, content_type: str, body: bytes) -> int:
        """Reads the hashes an index response publishes; returns how many."""
        hashes = from_index(page_url, content_type, body)
        with self._lock:
            self.known.add(hashes)
        return len(hashes)

    def expected(self, url: str) -> Digest | None:
        """The published hash of a package file's URL, if one is known."""
        if not is_package_file(url):
            return None
        with self._lock:
            return self.known.get(url)

    def lookup(self, url: str) -> bytes | None:
        """The stored file for a URL, verified; None on a miss (counted only
        for URLs the cache could hold)."""
        digest = self.expected(url)
        if digest is None:
            return None
        name = file_name(url, digest)
        with self._lock:
            present = name in self._files
        body = self._read(name) if present else None
        with self._lock:
            if body is not None and not matches(digest, body):
                log.error("package cache: %s no longer hashes to %s:%s; removed", name, *digest)
                body = None
            if body is None:
                if present:
                    self._remove(name)  # unreadable or altered: never served
                self.stats.misses += 1
                return None
            if name in self._files:
                self._files.move_to_end(name)
            self.stats.hits += 1
            self.stats.bytes_served += len(body)
        self._touch(name)
        return body

    def store(self, url: str, body: bytes) -> bool:
        """Stores an upstream's file if it hashes to the published value."""
        digest = self.expected(url)
        if digest is None:
            return False
        if not matches(digest, body):
            with self._lock:
                self.stats.hash_mismatches += 1
            log.warning("package cache: %s does not hash to the published %s; not stored", url, digest[0])
            return False
        if len(body) > self.max_bytes:
            return False
        name = file_name(url, digest)
        with self._lock:
            if name in self._files:
                return True
        if not self._write(name, body):
            return False
        with self._lock:
            if name not in self._files:
                self._files[name] = len(body)
                self.size += len(body)
                self.stats.stored += 1
                self.stats.bytes_stored += len(body)
            self._evict()
        return True

    # --- file operations ----------------------------------------------------

    def _read(self, name: str) -> bytes | None:
        try:
            return (self.directory / name).read_bytes()
        except OSError:
            return None

    def _touch(self, name: str) -> None:
        try:
            os.utime(self.directory / name)
        except OSError:
            pass

    def _write(self, name: str, body: bytes) -> bool:
        try:
            handle, temporary = tempfile.mkstemp(prefix=PARTIAL_PREFIX, dir=self.directory)
            with os.fdopen(handle, "wb") as out:
                out.write(body)
            os.replace(temporary, self.directory / name)
            return True
        except OSError as exc:
            log.error("package cache: cannot write %s: %s", name, exc)
            return False

    def _remove(self, name: str) -> None:
        """Called with the lock held."""
        self.size -= self._files.pop(name, 0)
        (self.directory / name).unlink(missing_ok=True)

    def _evict(self) -> None:
        """Called with the lock held: least recently used files go until the
        rest fits."""
        while self._files and self.size > self.max_bytes:
            name = next(iter(self._files))
            self._remove(name)
            self.stats.evicted += 1
