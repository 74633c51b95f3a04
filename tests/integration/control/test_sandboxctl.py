"""sandboxctl against a real control and spawner: through click's CliRunner,
and as a real process (streamed output, exit codes, Ctrl-C)."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from sandbox_mesh import Client
from sandbox_mesh.cli import main
from tests.integration.control.conftest import TENANT_KEYS

pytestmark = pytest.mark.integration
ROOT = pathlib.Path(__file__).resolve().parents[3]

MAIN = """
import sys
from helpers import shout
data = sys.stdin.read()
print(shout(data), sys.argv[1:])
print("careful", file=sys.stderr)
open("/workspace/output/report.txt", "w").write(shout(data))
sys.exit(int(sys.argv[1]))
"""


@pytest.fixture
def connection(control_server):
    return ["--url", f"127.0.0.1:{control_server.port}", "--tenant", "tenant-a", "--key", TENANT_KEYS["tenant-a"]]


@pytest.fixture
def project(tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "main.py").write_text(MAIN)
    (folder / "helpers.py").write_text("def shout(s):\n    return s.upper()\n")
    (folder / ".secret").write_text("never sent")
    (tmp_path / "input.txt").write_text("quiet words")
    return folder


def sandboxctl(*args: str, stdin: bytes | None = None):
    return CliRunner().invoke(main, list(args), input=stdin, catch_exceptions=False)


def test_run_a_folder_with_stdin_args_and_an_output_file(connection, project, tmp_path):
    out = tmp_path / "out"
    result = sandboxctl(
        *connection, "run", str(project), "--stdin", str(tmp_path / "input.txt"), "--out", str(out), "--", "3"
    )
    assert result.exit_code == 3
    assert result.stdout == "QUIET WORDS ['3']\n"
    assert "careful" in result.stderr
    assert "FAILED RUNTIME_ERROR exit 3 · wall" in result.stderr and "peak" in result.stderr
    assert (out / "report.txt").read_text() == "QUIET WORDS"


def test_output_files_default_to_outputs_under_the_execution_id(connection, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "job.py").write_text("open('/workspace/output/a.txt', 'w').write('A')")
    result = sandboxctl(*connection, "run", "job.py")
    assert result.exit_code == 0, result.stderr
    [written] = (tmp_path / "outputs").glob("*/a.txt")
    assert written.read_text() == "A" and written.parent.name in result.stderr


def test_json_prints_one_object_per_event(connection, tmp_path):
    (tmp_path / "hello.js").write_text("console.log('hi from node')")
    result = sandboxctl(*connection, "run", str(tmp_path / "hello.js"), "--json")
    assert result.exit_code == 0
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events[0]["kind"] == "accepted" and events[-1]["kind"] == "finished"
    assert {"kind": "output", "stream": "stdout", "data": "hi from node\n", "step_index": 0} in events
    assert events[-1]["execution"]["status"] == "COMPLETED" and events[-1]["execution"]["language"] == "node"


def test_a_timeout_exits_124(connection, tmp_path):
    (tmp_path / "slow.py").write_text("import time; time.sleep(30)")
    result = sandboxctl(*connection, "run", str(tmp_path / "slow.py"), "--timeout", "1")
    assert result.exit_code == 124 and "FAILED TIMEOUT" in result.stderr


def test_a_refused_request_is_one_line_naming_the_field(connection, tmp_path):
    (tmp_path / "a.py").write_text("print(1)")
    result = sandboxctl(*connection, "run", str(tmp_path / "a.py"), "--timeout", "100000")
    assert result.exit_code == 125
    [line] = result.stderr.splitlines()
    assert line.startswith("sandboxctl: INVALID_ARGUMENT: limits.timeout_ms:")
    result = sandboxctl(*connection, "run", str(tmp_path / "a.py"), "--npm", "lodash")
    assert (
        result.exit_code == 2
        and result.stderr.strip() == "sandboxctl: --npm: npm packages need a Node program, not python"
    )


def test_a_wrong_key_and_an_unreachable_control_are_one_line(control_server, tmp_path):
    (tmp_path / "a.py").write_text("print(1)")
    wrong = sandboxctl("--url", f"127.0.0.1:{control_server.port}", "--tenant", "tenant-a", "--key", "x", "quota")
    assert wrong.exit_code == 125 and wrong.stderr.startswith("sandboxctl: UNAUTHENTICATED:")
    assert "Traceback" not in wrong.stderr


def test_executions_ls_show_cancel_and_quota(connection, tmp_path):
    (tmp_path / "a.py").write_text("print(1)")
    run = sandboxctl(*connection, "run", str(tmp_path / "a.py"), "--json")
    execution_id = json.loads(run.stdout.splitlines()[0])["execution_id"]
    listed = sandboxctl(*connection, "executions", "ls", "--limit", "200")
    assert listed.exit_code == 0 and execution_id in listed.stdout and "COMPLETED" in listed.stdout
    shown = sandboxctl(*connection, "executions", "show", execution_id, "--json")
    assert json.loads(shown.stdout)["status"] == "COMPLETED"
    cancelled = sandboxctl(*connection, "executions", "cancel", execution_id)
    assert cancelled.exit_code == 0 and "had finished: COMPLETED" in cancelled.stdout
    missing = sandboxctl(*connection, "executions", "show", "no-such-execution")
    assert missing.exit_code == 125 and missing.stderr.startswith("sandboxctl: NOT_FOUND:")
    quota = sandboxctl(*connection, "quota", "--json")
    assert quota.exit_code == 0 and json.loads(quota.stdout)["tenant"] == "tenant-a"


def cli_process(control_server, *args: str) -> subprocess.Popen:
    env = dict(
        os.environ,
        PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'stubs'}",
        SANDBOX_URL=f"127.0.0.1:{control_server.port}",
        SANDBOX_TENANT="tenant-a",
        SANDBOX_KEY=TENANT_KEYS["tenant-a"],
    )
    return subprocess.Popen(
        [sys.executable, "-m", "sandbox_mesh.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.PIPE,
    )


def test_a_real_process_streams_and_exits_with_the_programs_code(control_server, tmp_path):
    program = tmp_path / "count.py"
    program.write_text("import sys\nfor i in range(3): print(i, flush=True)\nsys.exit(7)")
    process = cli_process(control_server, "run", str(program), "--out", str(tmp_path / "o"))
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 7, stderr
    assert stdout == b"0\n1\n2\n"
    # piped: no spinner, just the summary
    assert b"\x1b" not in stderr and b"FAILED RUNTIME_ERROR exit 7" in stderr


def test_ctrl_c_cancels_the_execution_and_exits_130(control_server, tmp_path):
    program = tmp_path / "wait.py"
    program.write_text("import time\nprint('started', flush=True)\ntime.sleep(60)")
    process = cli_process(control_server, "run", str(program), "--json")
    assert process.stdout is not None
    execution_id = None
    for line in process.stdout:
        event = json.loads(line)
        execution_id = execution_id or event.get("execution_id")
        if event["kind"] == "output":
            break
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert f"cancelled {execution_id}".encode() in stderr and b"Traceback" not in stderr
    with Client(f"127.0.0.1:{control_server.port}", "tenant-a", TENANT_KEYS["tenant-a"]) as client:
        deadline = time.monotonic() + 30
        while client.get(execution_id).status != "CANCELLED" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert client.get(execution_id).status == "CANCELLED"
