"""`sandboxctl session` against a real control and spawner: `session run`
and its exit codes, create/ls/show/close, piped cells with an image saved,
and the interactive prompt on a real pseudo-terminal (multi-line cells, an
image saved, history, Ctrl-D closing the session)."""

from __future__ import annotations

import json
import os
import pathlib
import re
import sys

import pytest
from click.testing import CliRunner

from sandbox_mesh import Client
from sandbox_mesh.cli import main
from tests.integration.control.conftest import TENANT_KEYS
from tests.integration.control.terminal import Terminal
from tests.integration.control.test_sessions import assert_session_gone

pytestmark = pytest.mark.integration
ROOT = pathlib.Path(__file__).resolve().parents[3]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PLOT = "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [1, 4, 9])\nplt.show()\n"


@pytest.fixture
def connection(control_server):
    return ["--url", f"127.0.0.1:{control_server.port}", "--tenant", "tenant-a", "--key", TENANT_KEYS["tenant-a"]]


@pytest.fixture
def client(control_server):
    with Client(f"127.0.0.1:{control_server.port}", "tenant-a", TENANT_KEYS["tenant-a"]) as client:
        yield client


def session_of_image(client: Client, image: pathlib.Path) -> str:
    """Images are named after their call (ex-…-1.png): the call's session."""
    return client.get(image.name.rsplit("-", 1)[0]).session_id


def sandboxctl(*args: str, stdin: str | None = None):
    return CliRunner().invoke(main, list(args), input=stdin, catch_exceptions=False)


def test_session_run_and_its_exit_codes(connection, client, control_spawner, tmp_path):
    created = sandboxctl(*connection, "session", "create", "--timeout", "20", "--idle-timeout", "300")
    assert created.exit_code == 0, created.stderr
    session_id = created.stdout.strip()
    try:
        (tmp_path / "first.py").write_text("x = 41\nprint('set', flush=True)\nx + 1\n")
        ran = sandboxctl(*connection, "session", "run", session_id, str(tmp_path / "first.py"))
        assert ran.exit_code == 0, ran.stderr
        assert ran.stdout == "set\nOut: 42\n"
        as_json = sandboxctl(*connection, "session", "run", session_id, "-", "--json", stdin="x * 2")
        outcome = json.loads(as_json.stdout)
        assert as_json.exit_code == 0 and (outcome["status"], outcome["text"]) == ("ok", "82")
        failed = sandboxctl(*connection, "session", "run", session_id, "-", stdin="1 / 0")
        assert failed.exit_code == 1
        assert "ZeroDivisionError: division by zero" in failed.stderr and "1 / 0" in failed.stderr
        slow = sandboxctl(
            *connection, "session", "run", session_id, "-", "--timeout", "1", stdin="import time\ntime.sleep(60)"
        )
        assert slow.exit_code == 124 and "time limit" in slow.stderr
        listed = sandboxctl(*connection, "session", "ls", "--open")
        assert listed.exit_code == 0 and listed.stdout.startswith("SESSION")
        assert any(line.split()[:2] == [session_id, "open"] for line in listed.stdout.splitlines())
        shown = sandboxctl(*connection, "session", "show", session_id)
        assert "status: open" in shown.stdout and "calls: 4" in shown.stdout and "call timeout: 20s" in shown.stdout
        assert json.loads(sandboxctl(*connection, "session", "show", session_id, "--json").stdout)["calls"] == 4
    finally:
        closed = sandboxctl(*connection, "session", "close", session_id)
    assert closed.exit_code == 0 and closed.stdout == f"{session_id} closed\n"
    ended = sandboxctl(*connection, "session", "run", session_id, "-", stdin="1")
    assert ended.exit_code == 125 and "FAILED_PRECONDITION" in ended.stderr
    missing = sandboxctl(*connection, "session", "show", "no-such-session")
    assert missing.exit_code == 125 and "NOT_FOUND" in missing.stderr
    assert_session_gone(control_spawner)


def test_piped_cells_run_in_order_and_images_are_saved(
    connection, client, control_spawner, tmp_path, datascience_image
):
    images = tmp_path / "images"
    cells = (
        "total = 0\nfor i in range(4):\n    total += i\n\ntotal\n"
        f"# %%\n{PLOT}'plotted'\n"
        "# %%\n%info\n"
        "# %% the last cell\nprint(total * 2)\n"
    )
    ran = sandboxctl(*connection, "session", "--variant", "datascience", "--images-dir", str(images), stdin=cells)
    assert ran.exit_code == 0, ran.stderr
    saved = sorted(images.iterdir())
    assert len(saved) == 1 and saved[0].read_bytes().startswith(PNG_MAGIC)
    assert ran.stdout == f"Out: 6\n[image saved: {saved[0]}]\nOut: 'plotted'\n12\n"
    assert "language: python (datascience)" in ran.stderr
    assert client.get_session(session_of_image(client, saved[0])).status == "closed"
    assert ran.stderr.splitlines()[-1].endswith(" closed")
    assert_session_gone(control_spawner)


def test_piped_cells_stop_at_the_first_failure_and_keep_leaves_it_open(connection, client, control_spawner):
    cells = "x = 1\n# %%\nraise ValueError('stop here')\n# %%\nprint('never')\n"
    ran = sandboxctl(*connection, "session", "--keep", stdin=cells)
    assert ran.exit_code == 1 and "never" not in ran.stdout
    assert "ValueError: stop here" in ran.stderr
    last = ran.stderr.strip().splitlines()[-1]
    assert last.startswith("session ") and "left open" in last
    session_id = last.split()[1]
    attached = sandboxctl(*connection, "session", session_id, stdin="x + 1\n")  # `session ID` attaches
    assert attached.exit_code == 0 and attached.stdout == "Out: 2\n"
    assert client.get_session(session_id).status == "closed"
    assert_session_gone(control_spawner)


def cli_terminal(control_server, tmp_path, *args: str) -> Terminal:
    env = dict(
        os.environ,
        PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'stubs'}",
        SANDBOX_URL=f"127.0.0.1:{control_server.port}",
        SANDBOX_TENANT="tenant-a",
        SANDBOX_KEY=TENANT_KEYS["tenant-a"],
        XDG_STATE_HOME=str(tmp_path / "state"),
        TERM="xterm-256color",
        PROMPT_TOOLKIT_NO_CPR="1",
        COLUMNS="200",
        LINES="50",
    )
    return Terminal([sys.executable, "-m", "sandbox_mesh.cli", "session", *args], env, str(tmp_path))


def test_the_prompt_on_a_terminal(control_server, client, control_spawner, tmp_path, datascience_image):
    images = tmp_path / "images"
    terminal = cli_terminal(control_server, tmp_path, "--variant", "datascience", "--images-dir", str(images))
    try:
        terminal.expect("Esc+Enter runs it")
        mark = terminal.expect("[1]:")
        # a block goes on to the next line (indented); an empty line runs it
        terminal.send("for i in range(3):\r")
        terminal.send("print('line', i * 10)\r")
        terminal.send("\r")
        mark = terminal.expect("line 20", start=mark)
        terminal.send("x = 7\r")
        mark = terminal.expect("[3]:", start=mark)
        # Esc+Enter runs a cell as it is, even in the middle of a block
        terminal.send("def f():\r")
        terminal.send("return x * 6\r\x1b\r")
        mark = terminal.expect("[4]:", start=mark)
        terminal.send("f()\r")
        mark = terminal.expect("Out: 42", start=mark)
        terminal.send("import matplotlib.pyplot as plt; plt.plot([1, 2, 3], [1, 4, 9]); plt.show()\r")
        mark = terminal.expect("[image saved: ", start=mark)
        terminal.expect(".png]", start=mark)
        terminal.send("1 / 0\r")
        mark = terminal.expect("ZeroDivisionError: division by zero", start=mark)
        terminal.send("%info\r")
        mark = terminal.expect("calls: 6", start=mark)
        mark = terminal.expect("[7]:", start=mark)  # raw mode again: before it, Ctrl-D is the line discipline's
        terminal.send("\x04")  # Ctrl-D: leave, closing the session
        terminal.expect(" closed", start=mark)
        assert terminal.wait() == 0
    finally:
        terminal.kill()
        opened = re.search(r"session (\S+) \(python\)", terminal.screen)
        if terminal.returncode != 0 and opened:  # the prompt failed: its session must not outlive the test
            client.close_session(opened.group(1))
    [image] = sorted(images.iterdir())
    assert image.read_bytes().startswith(PNG_MAGIC)
    history = (tmp_path / "state" / "sandbox-mesh" / "session-history").read_text()
    assert "x * 6" in history and "for i in range(3):" in history
    assert client.get_session(session_of_image(client, image)).status == "closed"
    assert_session_gone(control_spawner)
