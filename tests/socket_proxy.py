"""A unix-socket forwarder a test can stop and start: put in front of the
Docker engine's socket, it makes "the engine went away" and "it is back"
real to one spawner only, while the shared engine (and everyone else's
tests) go on. Stopping closes the listening socket, removes its path and
cuts every connection in flight, as an engine restart does."""

from __future__ import annotations

import contextlib
import os
import pathlib
import socket
import threading
from urllib.parse import urlparse

CHUNK = 65536


def engine_socket_path() -> str:
    """The shared engine's socket (DOCKER_HOST when it names one)."""
    host = os.environ.get("DOCKER_HOST", "")
    return urlparse(host).path if host.startswith("unix://") else "/var/run/docker.sock"


class SocketProxy:
    def __init__(self, path: pathlib.Path, target: str):
        self.path = path
        self.target = target
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._connections: list[socket.socket] = []

    def start(self) -> None:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        listener.bind(str(self.path))
        listener.listen(64)
        with self._lock:
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), name="socket-proxy", daemon=True).start()

    def stop(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            connections, self._connections = self._connections, []
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # stopped
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                upstream.connect(self.target)
            except OSError:
                client.close()
                upstream.close()
                continue
            with self._lock:
                if self._listener is not listener:  # stopped meanwhile
                    client.close()
                    upstream.close()
                    return
                self._connections += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(CHUNK):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
