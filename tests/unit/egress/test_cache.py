"""The package cache: only files whose bytes hash to the published value are
stored, never pages; a stored file is served only verified; the size is
bounded, least recently used first out, also across a restart."""

from __future__ import annotations

import hashlib
import os

from services.egress.cache import PackageCache, file_name, is_package_file

INDEX = "https://pkgs.test.internal/simple/demo/"
WHEEL = b"wheel bytes" * 100
SDIST = b"sdist bytes" * 100
WHEEL_URL = "https://pkgs.test.internal/files/demo-1.0-py3-none-any.whl"
SDIST_URL = "https://pkgs.test.internal/files/demo-1.0.tar.gz"


def link(path: str, body: bytes) -> str:
    return f'<a href="{path}#sha256={hashlib.sha256(body).hexdigest()}">f</a>'


def learned(cache: PackageCache, *files: tuple[str, bytes]) -> PackageCache:
    page = "".join(link(url, body) for url, body in files)
    cache.learn(INDEX, "text/html", page.encode())
    return cache


def test_is_package_file():
    assert is_package_file(WHEEL_URL) and is_package_file(SDIST_URL)
    assert is_package_file("https://npm.test.internal/demo/-/demo-1.0.0.tgz")
    assert not is_package_file(INDEX)
    assert not is_package_file("https://pkgs.test.internal/files/demo-1.0-py3-none-any.whl.metadata")
    assert not is_package_file(WHEEL_URL + "?x=1")


def test_store_then_lookup(tmp_path):
    cache = learned(PackageCache(tmp_path), (WHEEL_URL, WHEEL))
    assert cache.lookup(WHEEL_URL) is None
    assert cache.store(WHEEL_URL, WHEEL)
    assert cache.lookup(WHEEL_URL) == WHEEL
    stats = cache.stats
    assert (stats.hits, stats.misses, stats.stored, stats.bytes_stored, stats.bytes_served) == (
        1,
        1,
        1,
        len(WHEEL),
        len(WHEEL),
    )
    [stored] = os.listdir(tmp_path)
    assert stored == file_name(WHEEL_URL, ("sha256", hashlib.sha256(WHEEL).hexdigest()))


def test_hash_mismatch_never_stored(tmp_path):
    cache = learned(PackageCache(tmp_path), (WHEEL_URL, WHEEL))
    assert not cache.store(WHEEL_URL, b"something else")
    assert cache.stats.hash_mismatches == 1
    assert os.listdir(tmp_path) == [] and cache.lookup(WHEEL_URL) is None


def test_nothing_stored_without_a_published_hash(tmp_path):
    cache = PackageCache(tmp_path)
    assert not cache.store(WHEEL_URL, WHEEL)
    assert cache.lookup(WHEEL_URL) is None
    assert cache.stats.misses == 0  # not a URL the cache could hold


def test_index_pages_never_stored(tmp_path):
    cache = PackageCache(tmp_path)
    page = link(WHEEL_URL, WHEEL).encode()
    # Even an index that publishes a hash for a page's URL does not make it a file.
    cache.learn(INDEX, "text/html", link(INDEX, page).encode())
    assert not cache.store(INDEX, page)
    assert os.listdir(tmp_path) == []


def test_served_only_while_the_index_publishes_that_hash(tmp_path):
    cache = learned(PackageCache(tmp_path), (WHEEL_URL, WHEEL))
    assert cache.store(WHEEL_URL, WHEEL)
    learned(cache, (WHEEL_URL, b"another release under the same name"))
    assert cache.lookup(WHEEL_URL) is None


def test_altered_file_removed_not_served(tmp_path):
    cache = learned(PackageCache(tmp_path), (WHEEL_URL, WHEEL))
    assert cache.store(WHEEL_URL, WHEEL)
    [stored] = os.listdir(tmp_path)
    (tmp_path / stored).write_bytes(b"tampered")
    assert cache.lookup(WHEEL_URL) is None
    assert os.listdir(tmp_path) == [] and cache.size == 0


def test_lru_eviction(tmp_path):
    third_url, third = "https://pkgs.test.internal/files/other-1.0.zip", b"z" * 1100
    cache = learned(PackageCache(tmp_path, max_bytes=2300), (WHEEL_URL, WHEEL), (SDIST_URL, SDIST), (third_url, third))
    assert cache.store(WHEEL_URL, WHEEL) and cache.store(SDIST_URL, SDIST)
    assert cache.lookup(WHEEL_URL) == WHEEL  # the sdist is now the least recently used
    assert cache.store(third_url, third)
    assert cache.lookup(SDIST_URL) is None
    assert cache.lookup(WHEEL_URL) == WHEEL and cache.lookup(third_url) == third
    assert cache.size <= 2300 and cache.stats.evicted == 1


def test_file_larger_than_the_bound_not_stored(tmp_path):
    cache = learned(PackageCache(tmp_path, max_bytes=100), (WHEEL_URL, WHEEL))
    assert not cache.store(WHEEL_URL, WHEEL)
    assert os.listdir(tmp_path) == []


def test_restart_keeps_files_and_their_order(tmp_path):
    cache = learned(PackageCache(tmp_path), (WHEEL_URL, WHEEL), (SDIST_URL, SDIST))
    assert cache.store(WHEEL_URL, WHEEL) and cache.store(SDIST_URL, SDIST)
    wheel_file = tmp_path / file_name(WHEEL_URL, ("sha256", hashlib.sha256(WHEEL).hexdigest()))
    os.utime(wheel_file, (1, 1))  # used long ago
    (tmp_path / ".partial-x").write_bytes(b"cut short")
    (tmp_path / "stray").write_bytes(b"not the cache's")
    again = PackageCache(tmp_path, max_bytes=len(SDIST) + 10)
    assert (len(again), again.size) == (1, len(SDIST))
    assert sorted(os.listdir(tmp_path)) == [file_name(SDIST_URL, ("sha256", hashlib.sha256(SDIST).hexdigest()))]
    # Nothing is served before an index publishes the hash again.
    assert again.lookup(SDIST_URL) is None
    assert learned(again, (SDIST_URL, SDIST)).lookup(SDIST_URL) == SDIST
