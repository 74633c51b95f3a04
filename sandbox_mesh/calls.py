"""What every call to control shares: timeouts, retries of repeatable calls,
stored files read in checked chunks."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

import grpc

from sandbox.control.v1 import control_pb2 as pb
from sandbox_mesh.errors import MeshError, mesh_error

T = TypeVar("T")
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
