"""Content-addressed blob store on disk: <root>/<aa>/<sha256 hex>.

A blob is written to a temporary file in the same directory, flushed and
renamed into place, so a reader never sees a partial blob. `put_all` reports
which blobs it created, so a caller whose database transaction then fails can
remove exactly those (and no blob another execution already references). A
blob `put_all` finds already there gets its modification time renewed: the
retention sweeper (executions/retention.py) leaves recently written or
reused blobs alone, so it never removes one a finalize is about to reference.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import re
import secrets
from collections.abc import Iterator, Sequence

HEX = re.compile(r"[0-9a-f]{64}\Z")
CHUNK = 64 * 1024


class BlobStore:
    def __init__(self, root: str | os.PathLike):
        self.root = pathlib.Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> pathlib.Path:
        if not HEX.match(digest):
            raise ValueError(f"not a sha256 digest: {digest!r}")
        return self.root / digest[:2] / digest

    def put_all(self, contents: Sequence[bytes]) -> tuple[list[str], list[str]]:
        """Stores every content; returns (digests in order, digests newly
        created). On failure the blobs created so far are removed again."""
        digests: list[str] = []
        created: list[str] = []
        try:
            for content in contents:
                digest = hashlib.sha256(content).hexdigest()
                digests.append(digest)
                if self._put(digest, content):
                    created.append(digest)
        except BaseException:
            self.remove(created)
            raise
        return digests, created

    def _put(self, digest: str, content: bytes) -> bool:
        target = self.path(digest)
        try:
            os.utime(target)  # reused: renewed, see the module's docstring
            return False
        except FileNotFoundError:
            pass
        target.parent.mkdir(exist_ok=True)
        temp = target.parent / f".tmp-{secrets.token_hex(8)}"
        try:
            with open(temp, "xb") as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, target)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return True

    def remove(self, digests: Sequence[str]) -> None:
        for digest in digests:
            self.path(digest).unlink(missing_ok=True)

    def read(self, digest: str, chunk_size: int = CHUNK) -> Iterator[tuple[int, bytes]]:
        """Yields (offset, chunk) over the whole blob."""
        with open(self.path(digest), "rb") as handle:
            offset = 0
            while True:
                data = handle.read(chunk_size)
                if not data:
                    return
                yield offset, data
                offset += len(data)

    def modified_at(self, digest: str) -> float | None:
        """When the blob was written or last reused (Unix seconds); None when
        there is no such blob."""
        try:
            return self.path(digest).stat().st_mtime
        except FileNotFoundError:
            return None

    def all(self) -> list[str]:
        return sorted(p.name for p in self.root.glob("*/*") if HEX.match(p.name))
