"""What every call to control shares: timeouts, retries of repeatable calls,
stored files read in checked chunks."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

import grpc

from sandbox.control.v1 import control_pb2 as pb
from sandbox_mesh.errors import MeshError, mesh_error

T = TypeVar("T")
M = TypeVar("M")
# Unary calls wait this long unless told otherwise.
CALL_TIMEOUT_SECONDS = 30.0
ATTEMPTS = 4
BACKOFF_SECONDS = 0.25
# Output chunks and the finished record stay far below this; a stored output
# file comes in chunks.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


def call_unary(call: Callable[[float], T], timeout: float) -> T:
    """Reads and cancels are safe to repeat: retried on UNAVAILABLE."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return call(timeout)
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.UNAVAILABLE and attempt < ATTEMPTS:
                time.sleep(BACKOFF_SECONDS * 2 ** (attempt - 1))
                continue
            raise mesh_error(error) from None
    raise AssertionError("unreachable")


def paged(fetch: Callable[[int, str], tuple[Sequence[M], str]], limit: int | None, page_size: int) -> Iterator[M]:
    """The items of a paged list call, page by page, up to `limit` (None:
    all): `fetch(size, token)` returns one page and the next page's token."""
    token, seen = "", 0
    while True:
        size = min(page_size, limit - seen) if limit is not None else page_size
        items, token = fetch(size, token)
        for item in items:
            yield item
            seen += 1
            if limit is not None and seen >= limit:
                return
        if not token:
            return


def checked_chunks(chunks: Iterable[pb.OutputFileChunk], path: str) -> Iterator[bytes]:
    """A stored file's bytes as they come, its digest checked at the end."""
    digest = hashlib.sha256()
    expected = ""
    try:
        for chunk in chunks:
            expected = chunk.sha256
            digest.update(chunk.data)
            yield chunk.data
    except grpc.RpcError as error:
        raise mesh_error(error) from None
    if expected and digest.hexdigest() != expected:
        raise MeshError("DATA_LOSS", f"{path}: the bytes received do not match the stored sha256", "path")
