"""The spawner's end of the runner hand-off against a fake runner: frames,
violations, one program at a time, and how the socket is found."""

from __future__ import annotations

import marshal
import os
import pathlib
import socket
import struct
import threading
import time

import pytest

from services.spawner import handoff
from services.spawner.handoff import HandoffError, RunnerConnection
from services.spawner.sandbox import NO_EXIT_CODE, STDERR, STDOUT


def frame(kind: int, payload: bytes) -> bytes:
    return struct.pack("!BI", kind, len(payload)) + payload


def exit_frame(code: int) -> bytes:
    return frame(handoff.KIND_EXIT, struct.pack("!i", code))


@pytest.fixture
def pair():
    ours, runner = socket.socketpair()
    yield RunnerConnection(ours), runner
    ours.close()
    runner.close()


def read_exactly(runner: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = runner.recv(size - len(data))
        assert chunk, "the connection ended mid-request"
        data += chunk
    return data


def read_request(runner: socket.socket) -> dict:
    (size,) = handoff.REQUEST_HEADER.unpack(read_exactly(runner, handoff.REQUEST_HEADER.size))
    return marshal.loads(read_exactly(runner, size))


def test_runner_command_serves_on_the_workspace_socket_with_python_started_ahead():
    socket_path = "/workspace/.runner/runner.sock"
    runner = ["python3", "-I", "-S", "/opt/sandbox/runner.py"]
    assert handoff.runner_command("node") == [*runner, "serve", socket_path]
    assert handoff.runner_command("python") == ["python3", "/opt/sandbox/prestart.py", socket_path]


def test_the_request_carries_argv_env_cwd_and_stdin(pair):
    connection, runner = pair
    connection.start(["python3", "-c", "print('é')"], {"A": "b c"}, "/workspace/code", None)
    assert read_request(runner) == {
        "argv": ["python3", "-c", "print('é')"],
        "env": {"A": "b c"},
        "cwd": "/workspace/code",
        "stdin": None,
    }


def test_output_is_yielded_in_order_then_the_exit_code(pair):
    connection, runner = pair
    program = connection.start(["x"], {}, "/", "/workspace/stdin")
    runner.sendall(frame(1, b"out") + frame(2, b"err") + frame(1, b"") + frame(1, b"more") + exit_frame(3))
    assert list(program.stream()) == [(STDOUT, b"out"), (STDERR, b"err"), (STDOUT, b"more")]
    assert program.exit_code() == 3
    assert program.violation is None
    assert 0 < program.started_at <= program.finished_at


def test_negative_and_large_exit_codes_pass_through(pair):
    connection, runner = pair
    for code in (-5, 137, 2**31 - 1):
        program = connection.start(["x"], {}, "/", None)
        runner.sendall(exit_frame(code))
        assert list(program.stream()) == []
        assert program.exit_code() == code


def test_programs_run_one_after_another_on_one_connection(pair):
    connection, runner = pair
    for number in range(3):
        program = connection.start(["x", str(number)], {}, "/", None)
        assert read_request(runner)["argv"] == ["x", str(number)]
        runner.sendall(frame(1, str(number).encode()) + exit_frame(number))
        assert list(program.stream()) == [(STDOUT, str(number).encode())]
        assert program.exit_code() == number


def test_output_arrives_before_the_program_ends(pair):
    connection, runner = pair
    program = connection.start(["x"], {}, "/", None)
    runner.sendall(frame(1, b"first"))
    stream = program.stream()
    assert next(stream) == (STDOUT, b"first")  # would block if the reader waited for the exit
    runner.sendall(exit_frame(0))
    assert list(stream) == []
    assert program.exit_code() == 0


@pytest.mark.parametrize(
    "sent",
    [b"", frame(1, b"partial"), b"\x01\x00", frame(1, b"x")[:-1], exit_frame(0)[:-2]],
    ids=["nothing", "no-exit-frame", "half-header", "half-payload", "half-exit"],
)
def test_the_connection_ending_before_the_exit_frame_gives_no_exit_code(pair, sent):
    connection, runner = pair
    program = connection.start(["x"], {}, "/", None)
    runner.sendall(sent)
    runner.shutdown(socket.SHUT_WR)
    list(program.stream())
    assert program.exit_code() == NO_EXIT_CODE
    assert program.violation is None
    assert program.finished_at >= program.started_at > 0
    with pytest.raises(HandoffError, match="ended"):
        connection.start(["y"], {}, "/", None)


@pytest.mark.parametrize(
    ("sent", "violation"),
    [
        (frame(4, b"x"), "unknown frame kind 4"),
        (frame(0, b""), "unknown frame kind 0"),
        (struct.pack("!BI", 1, 2**32 - 1), "over the bound"),
        (struct.pack("!BI", 2, handoff.MAX_PAYLOAD_BYTES + 1), "over the bound"),
        (frame(3, b"\x00\x00\x00"), "exit frame of 3 bytes"),
        (frame(3, b"\x00" * 8), "exit frame of 8 bytes"),
    ],
)
def test_a_malformed_frame_is_a_violation_not_an_exception(pair, sent, violation):
    connection, runner = pair
    program = connection.start(["x"], {}, "/", None)
    runner.sendall(frame(1, b"before") + sent + exit_frame(0))
    assert list(program.stream()) == [(STDOUT, b"before")]
    assert program.exit_code() == NO_EXIT_CODE
    assert violation in (program.violation or "")
    with pytest.raises(HandoffError):
        connection.start(["y"], {}, "/", None)


def test_a_frame_at_the_bound_is_accepted(pair):
    connection, runner = pair
    program = connection.start(["x"], {}, "/", None)
    payload = b"a" * handoff.MAX_PAYLOAD_BYTES
    threading.Thread(target=runner.sendall, args=(frame(1, payload) + exit_frame(0),), daemon=True).start()
    assert b"".join(data for _, data in program.stream()) == payload
    assert program.exit_code() == 0


def test_data_after_the_exit_frame_is_a_second_programs_violation(pair):
    connection, runner = pair
    first = connection.start(["x"], {}, "/", None)
    runner.sendall(exit_frame(0) + frame(1, b"not asked for"))
    assert list(first.stream()) == []
    assert first.exit_code() == 0
    time.sleep(0.05)
    second = connection.start(["y"], {}, "/", None)
    assert list(second.stream()) == []
    assert second.exit_code() == NO_EXIT_CODE
    assert "before the program was requested" in (second.violation or "")


def test_a_second_start_while_a_program_runs_is_refused(pair):
    connection, runner = pair
    program = connection.start(["x"], {}, "/", None)
    with pytest.raises(HandoffError, match="still running"):
        connection.start(["y"], {}, "/", None)
    stream = program.stream()
    runner.sendall(frame(1, b"a"))
    next(stream)
    with pytest.raises(HandoffError, match="still running"):
        connection.start(["y"], {}, "/", None)
    runner.sendall(exit_frame(0))
    list(stream)
    connection.start(["y"], {}, "/", None)


def test_a_stream_abandoned_before_the_exit_leaves_the_connection_unusable(pair):
    connection, runner = pair
    program = connection.start(["x"], {}, "/", None)
    runner.sendall(frame(1, b"a") + frame(1, b"b"))
    stream = program.stream()
    next(stream)
    stream.close()
    with pytest.raises(HandoffError, match="ended"):
        connection.start(["y"], {}, "/", None)


def test_start_after_the_runner_is_gone_raises_handoff_error(pair):
    connection, runner = pair
    runner.close()
    with pytest.raises(HandoffError):
        connection.start(["x"], {}, "/", None)


def test_a_silent_runner_blocks_the_reader_without_spinning(pair):
    connection, runner = pair
    program = connection.start(["x"], {}, "/", None)
    cpu_before = time.process_time()
    threading.Timer(0.5, runner.close).start()
    assert list(program.stream()) == []
    assert program.finished_at - program.started_at >= 0.45
    assert time.process_time() - cpu_before < 0.2
    assert program.exit_code() == NO_EXIT_CODE


# connect(): finding the socket


@pytest.fixture
def any_peer_uid(monkeypatch):
    """The fake runner here runs as the test's own user."""
    monkeypatch.setattr(handoff, "SANDBOX_UID", os.getuid())


def listen_at(directory: pathlib.Path) -> socket.socket:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # bind through the directory's descriptor too: the path may be long
    fd = os.open(directory, os.O_PATH | os.O_DIRECTORY)
    try:
        listener.bind(f"/proc/self/fd/{fd}/{handoff.SOCKET_NAME}")
    finally:
        os.close(fd)
    listener.listen(1)
    listener.settimeout(5)
    return listener


def test_connect_reaches_a_socket_under_a_path_longer_than_sun_path(tmp_path, any_peer_uid):
    workspace = tmp_path / ("w" * 100) / ("x" * 100)
    listener = listen_at(workspace / handoff.RUNNER_DIR)
    assert len(str(workspace / handoff.RUNNER_DIR / handoff.SOCKET_NAME)) > 107
    connection = handoff.connect(workspace, 2, lambda: True)
    peer, _ = listener.accept()
    program = connection.start(["x"], {}, "/", None)
    assert read_request(peer)["argv"] == ["x"]
    peer.sendall(exit_frame(0))
    list(program.stream())
    assert program.exit_code() == 0
    connection.close()
    peer.close()
    listener.close()


def test_connect_waits_for_the_runner_to_listen(tmp_path, any_peer_uid):
    workspace = tmp_path / "ws"
    workspace.mkdir()
    listeners: list[socket.socket] = []
    timer = threading.Timer(0.3, lambda: listeners.append(listen_at(workspace / handoff.RUNNER_DIR)))
    timer.start()
    began = time.monotonic()
    connection = handoff.connect(workspace, 5, lambda: True)
    assert 0.25 < time.monotonic() - began < 2
    connection.close()
    timer.join()
    listeners[0].close()


def test_connect_refuses_a_peer_that_is_not_the_sandbox_user(tmp_path, monkeypatch):
    monkeypatch.setattr(handoff, "SANDBOX_UID", os.getuid() + 1)
    listener = listen_at(tmp_path / handoff.RUNNER_DIR)
    with pytest.raises(HandoffError, match=f"uid {os.getuid()}"):
        handoff.connect(tmp_path, 2, lambda: True)
    listener.close()


def test_connect_never_follows_a_symlink_in_place_of_the_directory(tmp_path, any_peer_uid):
    elsewhere = tmp_path / "elsewhere"
    listener = listen_at(elsewhere)
    listener.settimeout(0.2)
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / handoff.RUNNER_DIR).symlink_to(elsewhere)
    with pytest.raises(HandoffError, match="not a directory"):
        handoff.connect(workspace, 2, lambda: True)
    with pytest.raises(TimeoutError):
        listener.accept()  # nobody connected
    listener.close()


def test_connect_refuses_a_socket_name_that_is_not_a_socket(tmp_path, any_peer_uid):
    elsewhere = tmp_path / "elsewhere"
    listener = listen_at(elsewhere)
    (tmp_path / "ws" / handoff.RUNNER_DIR).mkdir(parents=True)
    (tmp_path / "ws" / handoff.RUNNER_DIR / handoff.SOCKET_NAME).symlink_to(elsewhere / handoff.SOCKET_NAME)
    with pytest.raises(HandoffError, match="not a socket"):
        handoff.connect(tmp_path / "ws", 2, lambda: True)
    listener.close()


def test_connect_gives_up_at_the_timeout(tmp_path):
    began = time.monotonic()
    with pytest.raises(HandoffError, match=r"did not listen within 0\.3s"):
        handoff.connect(tmp_path, 0.3, lambda: True)
    assert 0.3 <= time.monotonic() - began < 1


def test_connect_gives_up_when_the_container_is_not_alive(tmp_path):
    checks: list[float] = []

    def alive() -> bool:
        checks.append(time.monotonic())
        return len(checks) < 3

    began = time.monotonic()
    with pytest.raises(HandoffError, match="stopped"):
        handoff.connect(tmp_path, 10, alive)
    assert len(checks) == 3
    assert 0.25 < time.monotonic() - began < 1
