"""Session operations through sandbox_mesh's Session that need control's
RestartSession, InterruptCell (through CancelExecution), files at creation
and Put/Get/ListSessionFiles: interrupt of a sleeping call, restart with
files kept, files in and out of an open session (docs/sessions.md)."""

from __future__ import annotations

import threading
import time

import pytest

from sandbox_mesh import CellAccepted, CellOutput, Client, MeshError
from tests.integration.control.conftest import TENANT_KEYS
from tests.integration.control.test_sessions import assert_session_gone

pytestmark = pytest.mark.integration


@pytest.fixture
def client(control_server):
    with Client(f"127.0.0.1:{control_server.port}", "tenant-a", TENANT_KEYS["tenant-a"]) as client:
        yield client


def test_interrupt_stops_a_sleeping_call_and_the_session_goes_on(client, control_spawner):
    with client.session(timeout=50) as session:
        session.run("x = 7")
        stream = session.stream("import time\nprint('up', flush=True)\ntime.sleep(60)")
        events = iter(stream)
        assert isinstance(next(events), CellAccepted)
        assert next(events) == CellOutput("stdout", b"up\n")
        started = time.monotonic()
        assert session.interrupt() is True
        rest = list(events)
        assert time.monotonic() - started < 15
        outcome = stream.outcome
        assert outcome is not None and rest and outcome.status == "error", outcome
        assert outcome.error is not None and outcome.error.name == "KeyboardInterrupt"
        assert session.interrupt() is False  # nothing runs now
        assert session.run("x * 6").text == "42"
    assert_session_gone(control_spawner)


def test_interrupt_from_another_thread_ends_run(client, control_spawner):
    with client.session(timeout=50) as session:
        outcomes: list = []
        runner = threading.Thread(target=lambda: outcomes.append(session.run("import time\ntime.sleep(60)")))
        runner.start()
        deadline = time.monotonic() + 20
        while not session.interrupt() and time.monotonic() < deadline:
            time.sleep(0.1)
        runner.join(20)
        assert not runner.is_alive() and outcomes[0].status == "error"
    assert_session_gone(control_spawner)


def test_restart_forgets_variables_and_keeps_files(client, control_spawner):
    with client.session(files={"input.csv": "a,b\n1,2\n"}) as session:
        assert session.run("open('input.csv').read()").text == "'a,b\\n1,2\\n'"
        session.run("x = 1\nopen('made.txt', 'w').write('made')")
        info = session.restart()
        assert info.status == "open" and info.restarts == 1
        forgotten = session.run("x")
        assert forgotten.error is not None and forgotten.error.name == "NameError"
        assert session.run("open('made.txt').read()").text == "'made'"
        assert session.run("1").execution_count == 3  # a fresh interpreter counts from 1
    assert_session_gone(control_spawner)


def test_files_go_in_and_come_out_of_an_open_session(client, control_spawner):
    with client.session() as session:
        assert session.put_file("in/data.bin", b"\x00\x01binary") == 8
        assert session.put_file("notes.txt", "text") == 4
        assert session.run("len(open('in/data.bin', 'rb').read())").text == "8"
        session.run("import os\nos.makedirs('out', exist_ok=True)\nopen('out/result.txt', 'w').write('done')")
        assert session.get_file("out/result.txt") == b"done"
        assert session.files() == [("in/data.bin", 8), ("notes.txt", 4), ("out/result.txt", 4)]
        assert session.files("out") == [("out/result.txt", 4)]
        with pytest.raises(MeshError) as caught:
            session.get_file("../etc/passwd")
        assert caught.value.code == "INVALID_ARGUMENT" and caught.value.field == "path"
        with pytest.raises(MeshError) as caught:
            session.get_file("missing.txt")
        assert caught.value.code == "NOT_FOUND"
    with pytest.raises(MeshError) as caught:
        session.files()
    assert caught.value.code == "FAILED_PRECONDITION"
    assert_session_gone(control_spawner)
