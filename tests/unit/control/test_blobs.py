import hashlib
import os

import pytest

from services.control.blobs import BlobStore


def test_content_addressed_and_deduplicated(tmp_path):
    blobs = BlobStore(tmp_path)
    digests, created = blobs.put_all([b"one", b"two", b"one"])
    assert digests == [hashlib.sha256(c).hexdigest() for c in (b"one", b"two", b"one")]
    assert sorted(created) == sorted(set(digests))
    assert blobs.put_all([b"one"]) == ([digests[0]], [])
    assert b"".join(chunk for _, chunk in blobs.read(digests[1])) == b"two"
    assert not any(p.name.startswith(".tmp") for p in tmp_path.rglob("*"))


def test_chunks(tmp_path):
    blobs = BlobStore(tmp_path)
    (digest,), _ = blobs.put_all([bytes(range(256)) * 10])
    chunks = list(blobs.read(digest, chunk_size=1000))
    assert [offset for offset, _ in chunks] == [0, 1000, 2000]
    assert b"".join(c for _, c in chunks) == bytes(range(256)) * 10


def test_a_failure_half_way_leaves_nothing(tmp_path, monkeypatch):
    blobs = BlobStore(tmp_path)
    blobs.put_all([b"already there"])
    real_put, calls = blobs._put, []

    def failing(digest, content):
        calls.append(digest)
        if len(calls) == 3:
            raise OSError("disk full")
        return real_put(digest, content)

    monkeypatch.setattr(blobs, "_put", failing)
    with pytest.raises(OSError):
        blobs.put_all([b"new one", b"already there", b"new two"])
    assert blobs.all() == [hashlib.sha256(b"already there").hexdigest()]


def test_rejects_non_digests(tmp_path):
    with pytest.raises(ValueError):
        BlobStore(tmp_path).path("../../etc/passwd")


def test_a_reused_blob_is_renewed(tmp_path):
    blobs = BlobStore(tmp_path)
    (digest,), _ = blobs.put_all([b"shared"])
    old = 1_000_000.0
    os.utime(blobs.path(digest), (old, old))
    assert blobs.modified_at(digest) == old
    assert blobs.put_all([b"shared"]) == ([digest], [])
    assert blobs.modified_at(digest) > old
    blobs.remove([digest])
    assert blobs.modified_at(digest) is None
    # Gone between two puts: written again, and reported as created.
    assert blobs.put_all([b"shared"]) == ([digest], [digest])
