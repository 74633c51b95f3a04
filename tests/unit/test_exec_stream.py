"""An exec's output stream ends when the engine closes it, or when the
program is gone and the stream stays quiet (gVisor leaves it open)."""

from __future__ import annotations

import socket
import struct
import threading
import time

import pytest

from services.spawner import exec_stream
from services.spawner.exec_stream import STDERR, STDOUT, frames

HEADER = struct.Struct(">BxxxL")


def frame(stream: int, data: bytes) -> bytes:
    return HEADER.pack(stream, len(data)) + data


@pytest.fixture(autouse=True)
def short_intervals(monkeypatch):
    monkeypatch.setattr(exec_stream, "SILENCE_SECONDS", 0.05)
    monkeypatch.setattr(exec_stream, "DRAIN_SECONDS", 0.05)


@pytest.fixture
def pair():
    ours, engine = socket.socketpair()
    yield ours, engine
    ours.close()
    engine.close()


def test_frames_are_read_whole_however_the_bytes_arrive(pair):
    ours, engine = pair
    data = frame(STDOUT, b"hello ") + frame(STDERR, b"oops") + frame(0, b"stdin is ignored") + frame(STDOUT, b"world")
    for index in range(0, len(data), 3):  # in pieces that split headers and payloads
        engine.sendall(data[index : index + 3])
    engine.shutdown(socket.SHUT_WR)
    assert list(frames(ours, lambda: True)) == [(STDOUT, b"hello "), (STDERR, b"oops"), (STDOUT, b"world")]


def test_a_stream_the_engine_leaves_open_ends_once_the_program_is_gone(pair):
    ours, engine = pair
    engine.sendall(frame(STDOUT, b"last words"))
    running = threading.Event()
    running.set()
    threading.Timer(0.2, running.clear).start()  # the sandbox ends; the engine never closes the stream
    started = time.monotonic()
    assert list(frames(ours, running.is_set)) == [(STDOUT, b"last words")]
    assert time.monotonic() - started < 2


def test_bytes_in_flight_when_the_program_is_gone_are_still_read(pair):
    ours, engine = pair
    asked = []

    def still_running() -> bool:
        asked.append(True)
        engine.sendall(frame(STDERR, b"late"))  # arrives just after the engine forgot the program
        return False

    assert list(frames(ours, still_running)) == [(STDERR, b"late")]
    assert len(asked) == 1


def test_the_connection_is_shut_down_at_the_end(pair):
    ours, engine = pair
    engine.sendall(frame(STDOUT, b"x"))
    stream = frames(ours, lambda: True)
    assert next(stream) == (STDOUT, b"x")
    stream.close()  # the caller stops reading early (say, the execution was killed)
    assert engine.recv(1) == b""  # the engine's side sees the end
