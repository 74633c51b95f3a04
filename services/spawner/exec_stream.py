"""Reading one `docker exec`'s output until the program is gone, even when the
engine never closes the stream.

Under gVisor (runsc) the stream of a program whose sandbox ended under it
(killed by the spawner, by the host's OOM killer, or its kernel stopped) is
left open for ever about half the time: the engine forgets the exec, but its
connection stays open and nothing more arrives. So the stream is read with a
bound on silence: after each quiet interval the engine is asked whether the
program still runs, and once it does not, whatever is still in flight is read
and the stream ends. Under runc the engine closes the stream when the program
ends, and the question is only asked while a program is quiet.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import struct
from collections.abc import Callable, Iterator
from typing import Any

from docker.utils import socket as docker_socket

STDOUT, STDERR = 1, 2
# The engine's multiplexed stream: a frame is (stream, 3 bytes of zeros,
# big-endian payload length) followed by the payload.
_HEADER = struct.Struct(">BxxxL")
_READ_BYTES = 64 * 1024
# How long a quiet stream goes before the engine is asked whether its program
# still runs (the time a gVisor sandbox's end takes to end its stream).
SILENCE_SECONDS = 1.0
# Once the program is gone: how long bytes still in flight may take to arrive.
DRAIN_SECONDS = 0.2
_READABLE = select.POLLIN | select.POLLPRI


def frames(sock: Any, still_running: Callable[[], bool]) -> Iterator[tuple[int, bytes]]:
    """Yields (STDOUT|STDERR, bytes) from an attached exec's socket (what
    `exec_start(socket=True)` returns) until the engine closes it or
    `still_running()` says the program is gone and the stream went quiet.
    The socket is shut down at the end either way."""
    poller = select.poll()
    poller.register(sock.fileno(), _READABLE)
    pending = bytearray()
    gone = False
    try:
        while True:
            quiet_seconds = DRAIN_SECONDS if gone else SILENCE_SECONDS
            if not poller.poll(int(quiet_seconds * 1000)):
                if gone:
                    return
                gone = not still_running()
                continue
            data = docker_socket.read(sock, _READ_BYTES)
            if data is None:  # nothing to read after all (a spurious wake-up)
                continue
            if not data:
                return
            pending += data
            yield from _complete_frames(pending)
    finally:
        _shut_down(sock)


def _complete_frames(pending: bytearray) -> Iterator[tuple[int, bytes]]:
    """The whole frames at the start of `pending`, removed from it."""
    while len(pending) >= _HEADER.size:
        stream, size = _HEADER.unpack_from(pending)
        end = _HEADER.size + size
        if len(pending) < end:
            return
        payload = bytes(pending[_HEADER.size : end])
        del pending[:end]
        if stream in (STDOUT, STDERR) and payload:
            yield stream, payload


def _shut_down(sock: Any) -> None:
    """Ends the connection for both sides: the engine stops writing to it, and
    the socket object (shared with the HTTP client) can read nothing more."""
    with contextlib.suppress(OSError, ValueError), socket.socket(fileno=os.dup(sock.fileno())) as duplicate:
        duplicate.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
