"""`sandboxctl session` features that need control's interrupt, restart and
session files: Ctrl-C at the prompt interrupts a call and the prompt stays;
%put, %files, %get and %restart; files staged by `session create --file`."""

from __future__ import annotations

import re

import pytest

from tests.integration.control.test_sandboxctl_session import (  # noqa: F401 (fixtures)
    cli_terminal,
    client,
    connection,
    sandboxctl,
)
from tests.integration.control.test_sessions import assert_session_gone

pytestmark = pytest.mark.integration


def test_ctrl_c_interrupts_the_call_and_the_prompt_stays(control_server, client, control_spawner, tmp_path):  # noqa: F811
    terminal = cli_terminal(control_server, tmp_path, "--timeout", "50")
    try:
        mark = terminal.expect("[1]:")
        terminal.send("import time; print('sleeping', flush=True); time.sleep(60)\r")
        mark = terminal.expect("\nsleeping", start=mark)  # the output, not the echoed input
        terminal.send("\x03")  # Ctrl-C: cooked mode while a call runs, so SIGINT
        mark = terminal.expect("interrupting the call", start=mark)
        mark = terminal.expect("KeyboardInterrupt", timeout=20, start=mark)
        mark = terminal.expect("[2]:", start=mark)
        terminal.send("40 + 2\r")
        mark = terminal.expect("Out: 42", start=mark)
        mark = terminal.expect("[3]:", start=mark)
        terminal.send("\x04")
        terminal.expect(" closed", start=mark)
        assert terminal.wait() == 0
    finally:
        terminal.kill()
        opened = re.search(r"session (\S+) \(python\)", terminal.screen)
        if terminal.returncode != 0 and opened:
            client.close_session(opened.group(1))
    assert_session_gone(control_spawner)


def test_meta_commands_move_files_and_restart(connection, client, control_spawner, tmp_path):  # noqa: F811
    local = tmp_path / "local.txt"
    local.write_text("local bytes")
    fetched = tmp_path / "fetched.txt"
    cells = (
        "x = 1\nopen('out.txt', 'w').write('from the session')\n"
        f"# %%\n%put {local} data/in.txt\n"
        "# %%\nprint(open('data/in.txt').read())\n"
        "# %%\n%files\n"
        f"# %%\n%get out.txt {fetched}\n"
        "# %%\n%restart\n"
        "# %%\nprint('x' in dir())\n"
    )
    ran = sandboxctl(*connection, "session", stdin=cells)
    assert ran.exit_code == 0, ran.stderr
    assert "local bytes\n" in ran.stdout and "data/in.txt" in ran.stdout and ran.stdout.endswith("False\n")
    assert fetched.read_text() == "from the session"
    assert "put data/in.txt" in ran.stderr and "restarts: 1" in ran.stderr
    assert_session_gone(control_spawner)


def test_create_stages_files(connection, client, control_spawner, tmp_path):  # noqa: F811
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    created = sandboxctl(*connection, "session", "create", "--file", str(tmp_path / "data.csv"))
    assert created.exit_code == 0, created.stderr
    session_id = created.stdout.strip()
    try:
        ran = sandboxctl(*connection, "session", "run", session_id, "-", stdin="open('data.csv').read()")
        assert ran.exit_code == 0 and ran.stdout == "Out: 'a,b\\n1,2\\n'\n"
    finally:
        sandboxctl(*connection, "session", "close", session_id)
    assert_session_gone(control_spawner)
