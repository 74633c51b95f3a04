"""`sandboxctl mcp` end to end: the real server process, driven by the MCP
SDK's own client over stdio and streamable HTTP, against a real control and
spawner (the datascience image for matplotlib). Covers the tools' flow,
images as image parts, failed runs as isError results, bad arguments named,
and sessions closed when the server stops (docs/sessions.md, "MCP")."""

from __future__ import annotations

import base64
import contextlib
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, ImageContent, TextContent

from sandbox_mesh import Client
from services.control.server import start as start_control
from tests.integration.control.conftest import TENANT_KEYS, control_settings
from tests.integration.control.test_sessions import assert_session_gone

pytestmark = pytest.mark.integration
ROOT = pathlib.Path(__file__).resolve().parents[3]
TOOLS = {
    "run_code",
    "open_session",
    "run_in_session",
    "close_session",
    "list_sessions",
    "restart_session",
    "put_file",
    "get_file",
    "list_files",
}
PLOT = "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()"


@pytest.fixture
def control(control_spawner, tmp_path):
    """A control of this test's own (SQLite) over the shared test spawner."""
    running = start_control(control_settings(control_spawner.port, tmp_path, f"sqlite:///{tmp_path}/control.db"))
    yield running
    running.stop(grace_seconds=5)


@pytest.fixture
def server_env(control, tmp_path) -> dict[str, str]:
    """The environment `sandboxctl mcp` runs with: tenant-a of that control,
    no config file of this machine's."""
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "stubs")]),
        "SANDBOX_URL": f"127.0.0.1:{control.port}",
        "SANDBOX_TENANT": "tenant-a",
        "SANDBOX_KEY": TENANT_KEYS["tenant-a"],
        "XDG_CONFIG_HOME": str(tmp_path / "no-config"),
    }


@pytest.fixture
def client(control):
    with Client(f"127.0.0.1:{control.port}", "tenant-a", TENANT_KEYS["tenant-a"]) as mesh_client:
        yield mesh_client


Scenario = Callable[[ClientSession], Awaitable[None]]


def over_stdio(env: dict[str, str], scenario: Scenario) -> None:
    async def main() -> None:
        parameters = StdioServerParameters(
            command=sys.executable, args=["-m", "sandbox_mesh.cli", "mcp"], env=env, cwd=str(ROOT)
        )
        async with stdio_client(parameters) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            await scenario(session)

    anyio.run(main)


def over_http(url: str, scenario: Scenario) -> None:
    async def main() -> None:
        async with streamable_http_client(url) as (read, write, _), ClientSession(read, write) as session:
            await session.initialize()
            await scenario(session)

    anyio.run(main)


async def call(session: ClientSession, tool: str, **arguments: Any) -> CallToolResult:
    return await session.call_tool(tool, arguments)


def text(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


def images(result: CallToolResult) -> list[bytes]:
    return [base64.b64decode(block.data) for block in result.content if isinstance(block, ImageContent)]


async def open_python(session: ClientSession, **arguments: Any) -> str:
    opened = await call(session, "open_session", language="python", **arguments)
    assert not opened.isError, text(opened)
    assert opened.structuredContent is not None
    session_id = opened.structuredContent["session_id"]
    assert f"session_id: {session_id}" in text(opened)
    return session_id


def test_the_tools_over_stdio(server_env, control_spawner, datascience_image):
    async def scenario(session: ClientSession) -> None:
        listed = await session.list_tools()
        assert {tool.name for tool in listed.tools} == TOOLS

        once = await call(session, "run_code", language="python", code="print('hello', 6 * 7)")
        assert not once.isError, text(once)
        assert "[stdout]\nhello 42" in text(once)
        failed = await call(session, "run_code", language="node", code="console.error('bad'); process.exit(3)")
        assert failed.isError and "exit 3" in text(failed) and "[stderr]\nbad" in text(failed)

        saved = await call(
            session,
            "run_code",
            language="python",
            variant="datascience",
            code=PLOT.replace("plt.show()", "plt.savefig('/workspace/output/plot.png')\nprint('saved')"),
        )
        assert not saved.isError, text(saved)
        assert "[output files]\nplot.png (" in text(saved)
        [saved_png] = images(saved)
        assert saved_png.startswith(b"\x89PNG\r\n\x1a\n")

        session_id = await open_python(session, variant="datascience")
        assert not (await call(session, "run_in_session", session_id=session_id, code="x = 41")).isError
        later = await call(session, "run_in_session", session_id=session_id, code="x + 1")
        assert not later.isError and "[last value]\n42" in text(later)

        plotted = await call(session, "run_in_session", session_id=session_id, code=PLOT)
        assert not plotted.isError, text(plotted)
        [png] = images(plotted)
        assert png.startswith(b"\x89PNG\r\n\x1a\n")

        broken = await call(session, "run_in_session", session_id=session_id, code="def f():\n    1 / 0\nf()")
        assert broken.isError
        assert "[error]\nZeroDivisionError: division by zero" in text(broken)
        assert "Traceback:" in text(broken) and "1 / 0" in text(broken)

        stuck = await call(
            session, "run_in_session", session_id=session_id, code="import time\ntime.sleep(60)", timeout_ms=1000
        )
        assert stuck.isError and "status: timeout" in text(stuck) and "KeyboardInterrupt" in text(stuck)
        after = await call(session, "run_in_session", session_id=session_id, code="x * 2")
        assert "[last value]\n82" in text(after)

        listed_sessions = await call(session, "list_sessions")
        assert f"{session_id}: python open (variant datascience)" in text(listed_sessions)

        closed = await call(session, "close_session", session_id=session_id)
        assert not closed.isError and f"session {session_id} closed" in text(closed)
        gone = await call(session, "run_in_session", session_id=session_id, code="x")
        assert gone.isError and "FAILED_PRECONDITION" in text(gone)

    over_stdio(server_env, scenario)
    assert_session_gone(control_spawner)


def test_files_and_restart_over_stdio(server_env, control_spawner):
    """Needs the session file RPCs and RestartSession (control answers
    UNIMPLEMENTED without them)."""
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 8).decode()

    async def scenario(session: ClientSession) -> None:
        session_id = await open_python(session, files={"data/seed.txt": "seed"})
        wrote = await call(session, "put_file", session_id=session_id, path="data/in.csv", content="a,b\n1,2\n")
        assert not wrote.isError and "wrote data/in.csv (8 bytes)" in text(wrote), text(wrote)
        await call(session, "put_file", session_id=session_id, path="pic.png", content=png, encoding="base64")
        await call(session, "put_file", session_id=session_id, path="raw.bin", content="/wA=", encoding="base64")
        read = await call(session, "run_in_session", session_id=session_id, code="x = open('data/in.csv').read()\nx")
        assert "[last value]\n'a,b\\n1,2\\n'" in text(read)
        await call(session, "run_in_session", session_id=session_id, code="open('out.txt', 'w').write('made')")

        assert text(await call(session, "get_file", session_id=session_id, path="out.txt")) == "made"
        assert (
            text(await call(session, "get_file", session_id=session_id, path="/workspace/code/data/seed.txt")) == "seed"
        )
        assert images(await call(session, "get_file", session_id=session_id, path="pic.png")) == [base64.b64decode(png)]
        blob = await call(session, "get_file", session_id=session_id, path="raw.bin")
        assert "2 bytes" in text(blob) and blob.content[-1].type == "resource"
        missing = await call(session, "get_file", session_id=session_id, path="nope.txt")
        assert missing.isError and "NOT_FOUND" in text(missing)
        listed = text(await call(session, "list_files", session_id=session_id))
        assert "data/in.csv (8 bytes)" in listed and "out.txt (4 bytes)" in listed
        assert text(await call(session, "list_files", session_id=session_id, directory="data")).count("\n") == 1

        restarted = await call(session, "restart_session", session_id=session_id)
        assert not restarted.isError and "fresh interpreter" in text(restarted)
        forgotten = await call(session, "run_in_session", session_id=session_id, code="x")
        assert forgotten.isError and "NameError" in text(forgotten)
        kept = await call(session, "run_in_session", session_id=session_id, code="open('out.txt').read()")
        assert "[last value]\n'made'" in text(kept)
        await call(session, "close_session", session_id=session_id)

    over_stdio(server_env, scenario)
    assert_session_gone(control_spawner)


def test_bad_arguments_are_tool_errors_naming_the_argument(server_env, client, control, control_spawner):
    with Client(f"127.0.0.1:{control.port}", "tenant-b", TENANT_KEYS["tenant-b"]) as other_tenant:
        theirs = other_tenant.session("python")
        try:
            over_stdio(server_env, lambda session: refuse_bad_arguments(session, theirs.session_id))
        finally:
            theirs.close()
    # Nothing was opened for any of them.
    assert client.sessions() == []
    assert_session_gone(control_spawner)


async def refuse_bad_arguments(session: ClientSession, other_tenants_session: str) -> None:
    cases = [
        ("run_code", {"language": "ruby", "code": "1"}, "language"),
        ("run_code", {"language": "python"}, "code"),
        ("run_code", {"language": "python", "code": "1", "timeout_ms": 0}, "timeout_ms"),
        ("run_code", {"language": "python", "code": "1", "packages": ["two words"]}, "packages"),
        ("run_code", {"language": "python", "code": "1", "files": {"../x.py": ""}}, "files"),
        ("open_session", {"language": "python", "idle_timeout_seconds": -5}, "idle_timeout_seconds"),
        ("open_session", {"language": "python", "variant": "nope"}, "variant"),
        ("run_in_session", {"session_id": "", "code": "1"}, "session_id"),
        ("put_file", {"session_id": "s", "path": "a.bin", "content": "%%", "encoding": "base64"}, "content"),
        ("get_file", {"session_id": "s", "path": "../../etc/passwd"}, "path"),
    ]
    for tool, arguments, argument in cases:
        result = await call(session, tool, **arguments)
        assert result.isError, (tool, arguments)
        assert argument in text(result), (tool, text(result))
    for session_id in ("no-such-session", other_tenants_session):
        unknown = await call(session, "run_in_session", session_id=session_id, code="1")
        assert unknown.isError and "NOT_FOUND" in text(unknown), text(unknown)
        closing = await call(session, "close_session", session_id=session_id)
        assert closing.isError and "NOT_FOUND" in text(closing), text(closing)


def test_sessions_left_open_are_closed_when_the_server_stops(server_env, client, control_spawner):
    opened: list[str] = []

    async def scenario(session: ClientSession) -> None:
        opened.append(await open_python(session))

    over_stdio(server_env, scenario)
    [record] = client.sessions()
    assert (record.session_id, record.status) == (opened[0], "closed")
    assert_session_gone(control_spawner)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def http_server(env: dict[str, str]) -> Any:
    port = free_port()
    command = [sys.executable, "-m", "sandbox_mesh.cli", "mcp", "--http", "--port", str(port)]
    process = subprocess.Popen(command, env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "the MCP server did not listen within 30 s"
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert process.returncode == 0, process.stderr.read() if process.stderr else ""


def test_the_tools_over_streamable_http(server_env, client, control_spawner):
    async def scenario(session: ClientSession) -> None:
        listed = await session.list_tools()
        assert {tool.name for tool in listed.tools} == TOOLS
        once = await call(session, "run_code", language="python", code="print('over http')")
        assert "[stdout]\nover http" in text(once)
        session_id = await open_python(session)
        await call(session, "run_in_session", session_id=session_id, code="import math\ny = math.pi")
        later = await call(session, "run_in_session", session_id=session_id, code="round(y, 2)")
        assert "[last value]\n3.14" in text(later)
        bad = await call(session, "run_in_session", session_id=session_id, code="1", timeout_ms=-1)
        assert bad.isError and "timeout_ms" in text(bad)
        closed = await call(session, "close_session", session_id=session_id)
        assert f"session {session_id} closed" in text(closed)

    with http_server(server_env) as url:
        over_http(url, scenario)
    assert [s.status for s in client.sessions()] == ["closed"]
    assert_session_gone(control_spawner)


def test_a_web_page_cannot_drive_the_http_server(server_env, client, control_spawner):
    """DNS rebinding: a page whose name resolves to 127.0.0.1 sends its own
    Host (and Origin); the loopback server refuses both before any tool runs."""
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "page", "version": "1"}},
    }
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    with http_server(server_env) as url:
        port = url.split(":")[2].split("/")[0]
        forged_host = httpx.post(url, json=initialize, headers={**headers, "Host": f"attacker.invalid:{port}"})
        forged_origin = httpx.post(url, json=initialize, headers={**headers, "Origin": "http://attacker.invalid"})
        honest = httpx.post(url, json=initialize, headers=headers)
    assert forged_host.status_code == 421, forged_host.text
    assert forged_origin.status_code == 403, forged_origin.text
    assert honest.status_code == 200, honest.text
    assert client.sessions() == []
