"""sandbox_mesh.Client (and AsyncClient) against a real control and spawner,
and the README's Python example run for real."""

from __future__ import annotations

import asyncio
import pathlib
import re
import time

import pytest

from sandbox_mesh import Accepted, AsyncClient, Client, Finished, MeshError, Output, StatusChanged
from tests.integration.control.conftest import TENANT_KEYS

pytestmark = pytest.mark.integration
ROOT = pathlib.Path(__file__).resolve().parents[3]

PROGRAM = """
import os, sys
data = sys.stdin.read()
print("args", sys.argv[1:], "env", os.environ["GREETING"], "stdin", data)
print("to stderr", file=sys.stderr)
os.makedirs("/workspace/output/charts", exist_ok=True)
open("/workspace/output/charts/result.txt", "w").write(data.upper())
sys.exit(3)
"""


@pytest.fixture
def client(control_server):
    with Client(f"127.0.0.1:{control_server.port}", "tenant-a", TENANT_KEYS["tenant-a"]) as client:
        yield client


def test_run_returns_output_codes_by_name_usage_and_files(client):
    result = client.run(
        {"main.py": PROGRAM}, args=["x", "y"], env={"GREETING": "hi"}, stdin=b"abc", timeout=20, deadline=60
    )
    assert result.stdout == b"args ['x', 'y'] env hi stdin abc\n"
    assert result.stderr == b"to stderr\n"
    assert (result.status, result.error_code, result.exit_code) == ("FAILED", "RUNTIME_ERROR", 3)
    assert result.files == {"charts/result.txt": b"ABC"}
    assert result.usage.wall_ms > 0 and result.usage.peak_memory_bytes > 0
    assert client.get(result.execution_id).status == "FAILED"
    assert result.execution_id in [e.execution_id for e in client.executions(limit=200)]


def test_execute_streams_typed_events_in_order(client):
    stream = client.execute({"main.py": "print('one'); print('two')"})
    events = list(stream)
    assert isinstance(events[0], Accepted) and isinstance(events[-1], Finished)
    assert "RUNNING" in [e.status for e in events if isinstance(e, StatusChanged)]
    assert b"".join(e.data for e in events if isinstance(e, Output)) == b"one\ntwo\n"
    assert stream.result is not None and stream.result.status == "COMPLETED"
    assert stream.execution_id == events[0].execution_id


def test_a_refused_request_names_the_field_and_records_nothing(client):
    before = client.quota()
    with pytest.raises(MeshError) as caught:
        client.run({"main.py": "print(1)"}, timeout=100_000)
    assert caught.value.code == "INVALID_ARGUMENT" and caught.value.field == "limits.timeout_ms"
    assert client.quota().in_flight == before.in_flight


def test_cancel_ends_a_running_execution(client):
    stream = client.execute({"main.py": "import time; print('up', flush=True); time.sleep(60)"}, timeout=50)
    events = iter(stream)
    for event in events:
        if isinstance(event, Output):
            break
    assert stream.execution_id is not None
    cancelled, _ = client.cancel(stream.execution_id)
    assert cancelled
    rest = list(events)
    assert isinstance(rest[-1], Finished) and rest[-1].execution.status == "CANCELLED"
    assert client.cancel(stream.execution_id)[0] is False


def test_a_wrong_key_is_unauthenticated(control_server):
    with (
        Client(f"127.0.0.1:{control_server.port}", "tenant-a", "not-the-key") as wrong,
        pytest.raises(MeshError) as caught,
    ):
        wrong.quota()
    assert caught.value.code == "UNAUTHENTICATED"


def test_an_unreachable_control_is_unavailable_after_retries():
    started = time.monotonic()
    with Client("127.0.0.1:1", "tenant-a", "k") as nowhere, pytest.raises(MeshError, match="UNAVAILABLE"):
        nowhere.run({"main.py": "print(1)"})
    assert time.monotonic() - started < 20


def test_the_async_client_runs_and_streams(control_server):
    async def main():
        async with AsyncClient(f"127.0.0.1:{control_server.port}", "tenant-a", TENANT_KEYS["tenant-a"]) as client:
            result = await client.run({"main.py": PROGRAM}, env={"GREETING": "yo"}, stdin=b"q")
            kinds = [type(e) async for e in client.execute({"index.js": "console.log(1)"})]
            return result, kinds

    result, kinds = asyncio.run(main())
    assert result.exit_code == 3 and result.files == {"charts/result.txt": b"Q"}
    assert kinds[0] is Accepted and kinds[-1] is Finished


def readme_python_example() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### From Python", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "README: no python block under 'From Python'"
    return match.group(1)


def test_the_readme_python_example_runs(control_server, monkeypatch, capsys):
    monkeypatch.setenv("SANDBOX_URL", f"127.0.0.1:{control_server.port}")
    monkeypatch.setenv("SANDBOX_TENANT", "tenant-a")
    monkeypatch.setenv("SANDBOX_KEY", TENANT_KEYS["tenant-a"])
    exec(compile(readme_python_example(), "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "hello from the sandbox" in out and "COMPLETED" in out
