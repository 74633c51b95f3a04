"""sandbox_mesh's Session against a real control and spawner: state kept
across calls, the last value's text, a matplotlib figure as PNG bytes,
errors as fields, a timeout the session outlives, attaching from another
client, and a context manager that closes (docs/sessions.md)."""

from __future__ import annotations

import pathlib
import re
import time

import pytest

from sandbox_mesh import CellAccepted, CellFinished, CellOutput, CellValue, Client, MeshError
from tests.integration.control.conftest import TENANT_KEYS
from tests.integration.control.test_sessions import assert_session_gone

pytestmark = pytest.mark.integration
ROOT = pathlib.Path(__file__).resolve().parents[3]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def client(control_server):
    with Client(f"127.0.0.1:{control_server.port}", "tenant-a", TENANT_KEYS["tenant-a"]) as client:
        yield client


def test_a_session_keeps_state_and_returns_the_last_value(client, control_spawner):
    with client.session("python", timeout=20, idle_timeout_seconds=120) as session:
        info = session.info()
        assert (info.status, info.language, info.timeout_ms, info.idle_timeout_seconds) == (
            "open",
            "python",
            20_000,
            120,
        )
        assert session.run("import math\nx = 41\nopen('kept.txt', 'w').write('kept')").ok
        seen: list = []
        outcome = session.run("print(math.floor(2.5))\nx + 1", on_output=lambda kind, data: seen.append((kind, data)))
        assert (outcome.status, outcome.text, outcome.stdout, outcome.execution_count) == ("ok", "42", b"2\n", 2)
        assert ("stdout", b"2\n") in seen and outcome.exit_code == 0
        assert session.run("open('kept.txt').read()").text == "'kept'"
        failed = session.run("1 / 0")
        assert (failed.status, failed.ok, failed.exit_code) == ("error", False, 1)
        assert failed.error is not None and (failed.error.name, failed.error.value) == (
            "ZeroDivisionError",
            "division by zero",
        )
        assert any("1 / 0" in frame for frame in failed.error.traceback)
        assert session.session_id in [s.session_id for s in client.sessions(open_only=True)]
        calls = list(client.executions(session_id=session.session_id))
        assert [c.execution_id for c in calls][::-1][1] == outcome.execution_id
        assert session.info().calls == 4
    closed = client.get_session(session.session_id)
    assert closed.status == "closed" and closed.ended_at_ms > 0 and session.last_info.status == "closed"
    assert session.session_id not in [s.session_id for s in client.sessions(open_only=True)]
    assert session.session_id in [s.session_id for s in client.sessions()]
    with pytest.raises(MeshError) as caught:
        client.attach_session(session.session_id)
    assert (caught.value.code, caught.value.field) == ("FAILED_PRECONDITION", "session_id")
    with pytest.raises(MeshError) as caught:
        session.run("x")
    assert caught.value.code == "FAILED_PRECONDITION"
    assert_session_gone(control_spawner)


def test_a_matplotlib_figure_comes_back_as_png_bytes(client, control_spawner, datascience_image):
    with client.session(variant="datascience") as session:
        stream = session.stream("import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [1, 4, 9])\nplt.show()\n'drawn'")
        events = list(stream)
        assert isinstance(events[0], CellAccepted) and isinstance(events[-1], CellFinished)
        shown = [e.part for e in events if isinstance(e, CellValue) and e.part.mime_type == "image/png"]
        assert len(shown) == 1 and not shown[0].last_value
        outcome = stream.outcome
        assert outcome is not None and outcome.ok and outcome.text == "'drawn'"
        [(mime, png)] = outcome.images
        assert mime == "image/png" and png.startswith(PNG_MAGIC) and png == shown[0].data
        html = session.run("import pandas as pd\npd.DataFrame({'a': [1, 2]})")
        assert any(p.mime_type == "text/html" and b"<table" in p.data for p in html.values)
        assert "a" in html.text
    assert_session_gone(control_spawner)


def test_a_timeout_interrupts_the_call_and_the_session_goes_on(client, control_spawner):
    with client.session() as session:
        session.run("x = 7")
        started = time.monotonic()
        stream = session.stream("import time\nprint('up', flush=True)\ntime.sleep(60)", timeout_ms=1000)
        events = list(stream)
        assert time.monotonic() - started < 20
        assert CellOutput("stdout", b"up\n") in events
        assert stream.outcome is not None and stream.outcome.status == "timeout"
        assert stream.outcome.error is not None and stream.outcome.error.name == "KeyboardInterrupt"
        assert session.run("x * 6").text == "42"
    assert_session_gone(control_spawner)


def test_another_client_attaches_to_an_open_session(client, control_server, control_spawner):
    session = client.session(session_id=f"shared-{time.monotonic_ns()}")
    try:
        session.run("shared = 'from the first client'")
        url = f"127.0.0.1:{control_server.port}"
        with Client(url, "tenant-a", TENANT_KEYS["tenant-a"]) as other:
            attached = other.attach_session(session.session_id)
            assert attached.run("shared").text == "'from the first client'"
        with Client(url, "tenant-b", TENANT_KEYS["tenant-b"]) as stranger:
            with pytest.raises(MeshError) as caught:
                stranger.attach_session(session.session_id)
            assert caught.value.code == "NOT_FOUND"
    finally:
        assert session.close().status == "closed"
    assert session.close().status == "closed"  # closing an ended session is a no-op
    assert_session_gone(control_spawner)


def test_the_body_exception_wins_and_the_session_is_closed_anyway(client, control_spawner):
    with pytest.raises(RuntimeError, match="the body's own"), client.session() as session:
        session.run("y = 1")
        raise RuntimeError("the body's own")
    assert client.get_session(session.session_id).status == "closed"
    assert_session_gone(control_spawner)


def test_a_refused_session_names_the_field_and_opens_nothing(client, control_spawner):
    before = {s.session_id for s in client.sessions()}
    with pytest.raises(MeshError) as caught:
        client.session(variant="nope")
    assert caught.value.code == "INVALID_ARGUMENT" and "variant" in str(caught.value)
    with pytest.raises(MeshError) as caught:
        client.session(timeout_ms=10**9)
    assert caught.value.code == "INVALID_ARGUMENT" and "timeout_ms" in str(caught.value)
    assert {s.session_id for s in client.sessions()} == before
    assert control_spawner.spawner.sessions.tokens() == set()


def test_a_node_session_keeps_files_and_reports_exit_codes(client, control_spawner):
    with client.session("node") as session:
        assert session.run("require('fs').writeFileSync('n.txt', 'node kept')").ok
        assert session.run("console.log(require('fs').readFileSync('n.txt', 'utf8'))").stdout == b"node kept\n"
        exited = session.run("process.exit(3)")
        assert (exited.status, exited.exit_code) == ("error", 3)
    assert_session_gone(control_spawner)


def readme_session_example() -> str:
    section = (ROOT / "README.md").read_text().split("### From Python", 1)[1]
    blocks = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    return next(block for block in blocks if "client.session(" in block)


def test_the_readme_session_example_runs(control_server, control_spawner, monkeypatch, capsys):
    monkeypatch.setenv("SANDBOX_URL", f"127.0.0.1:{control_server.port}")
    monkeypatch.setenv("SANDBOX_TENANT", "tenant-a")
    monkeypatch.setenv("SANDBOX_KEY", TENANT_KEYS["tenant-a"])
    exec(compile(readme_session_example(), "README.md", "exec"), {})
    assert capsys.readouterr().out == "ok 3.14 42\n"
    assert_session_gone(control_spawner)
