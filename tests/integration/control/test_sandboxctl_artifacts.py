"""`sandboxctl artifacts ...` against a real control and spawner: every
subcommand called for real, its exit code and --json output checked."""

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
import os, sys
from lib.helper import shout
previous = "/workspace/output/count.txt"
count = int(open(previous).read()) + 1 if os.path.exists(previous) else 1
open(previous, "w").write(str(count))
print(shout("run"), count, sys.argv[1:])
"""


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch):
    # Output files default to ./outputs/<run id>/: keep them in the test's folder.
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def connection(control_server):
    return ["--url", f"127.0.0.1:{control_server.port}", "--tenant", "tenant-a", "--key", TENANT_KEYS["tenant-a"]]


@pytest.fixture
def project(tmp_path):
    folder = tmp_path / "project"
    (folder / "lib").mkdir(parents=True)
    (folder / "main.py").write_text(MAIN)
    (folder / "lib" / "helper.py").write_text("def shout(s):\n    return s.upper()\n")
    (folder / "fail.py").write_text("import sys; print('failing'); sys.exit(5)")
    return folder


def sandboxctl(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def ok_json(*args: str):
    result = sandboxctl(*args, "--json")
    assert result.exit_code == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def create(connection, *extra: str) -> str:
    [artifact] = ok_json(*connection, "artifacts", "create", "--language", "python", *extra)
    assert artifact["revision"] == 1 and artifact["file_count"] == 0
    return artifact["artifact_id"]


def test_create_put_show_ls_get(connection, project, tmp_path):
    artifact_id = create(connection, "--title", "demo project", "--entry", "main.py")
    put = sandboxctl(*connection, "artifacts", "put", artifact_id, str(project))
    assert put.exit_code == 0, put.stderr
    assert put.stdout.splitlines()[-1].endswith("-> revision 4")
    [shown] = ok_json(*connection, "artifacts", "show", artifact_id)
    assert shown["revision"] == 4 and shown["entry"] == "main.py" and shown["title"] == "demo project"
    assert [f["path"] for f in shown["files"]] == ["fail.py", "lib/helper.py", "main.py"]
    readable = sandboxctl(*connection, "artifacts", "show", artifact_id)
    assert readable.exit_code == 0 and "lib/helper.py" in readable.stdout and "revision 4" in readable.stdout
    listed = sandboxctl(*connection, "artifacts", "ls", "--limit", "200")
    assert listed.exit_code == 0 and artifact_id in listed.stdout and "demo project" in listed.stdout
    assert artifact_id in [a["artifact_id"] for a in ok_json(*connection, "artifacts", "ls", "--limit", "200")]

    # one file replaced in place under a path of our choosing
    (tmp_path / "new.py").write_text("print('replaced')")
    [replaced] = ok_json(*connection, "artifacts", "put", artifact_id, str(tmp_path / "new.py"), "fail.py")
    assert replaced["files"][0]["path"] == "fail.py" and replaced["files"][0]["modified_revision"] == 5

    out = tmp_path / "copy"
    [got] = ok_json(*connection, "artifacts", "get", artifact_id, "--out", str(out))
    assert got["files"] == ["fail.py", "lib/helper.py", "main.py"]
    assert (out / "lib" / "helper.py").read_text() == (project / "lib" / "helper.py").read_text()
    assert (out / "fail.py").read_text() == "print('replaced')"
    one = sandboxctl(*connection, "artifacts", "get", artifact_id, "main.py", "--out", str(tmp_path / "one"))
    assert one.exit_code == 0 and (tmp_path / "one" / "main.py").read_text() == MAIN
    escape = sandboxctl(*connection, "artifacts", "get", artifact_id, "../x.py", "--out", str(tmp_path / "one"))
    assert escape.exit_code == 2 and escape.stderr.startswith("sandboxctl: PATH: refusing to write")


def test_run_streams_prestages_and_lists_runs(connection, project, tmp_path):
    artifact_id = create(connection, "--entry", "main.py")
    assert sandboxctl(*connection, "artifacts", "put", artifact_id, str(project)).exit_code == 0
    out = tmp_path / "out"
    first = sandboxctl(*connection, "artifacts", "run", artifact_id, "--out", str(out), "--", "a")
    assert first.exit_code == 0, first.stderr
    assert first.stdout == "RUN 1 ['a']\n" and "COMPLETED exit 0" in first.stderr
    assert (out / "count.txt").read_text() == "1"
    # the latest COMPLETED run's output files are pre-staged
    events = ok_json(*connection, "artifacts", "run", artifact_id, "--out", str(out))
    assert events[0]["kind"] == "accepted" and events[-1]["kind"] == "finished"
    printed = "".join(e["data"] for e in events if e["kind"] == "output" and e["stream"] == "stdout")
    assert printed == "RUN 2 []\n" and events[-1]["execution"]["status"] == "COMPLETED"
    fresh = sandboxctl(*connection, "artifacts", "run", artifact_id, "--inputs", "none", "--out", str(out))
    assert fresh.stdout == "RUN 1 []\n"
    failed = sandboxctl(*connection, "artifacts", "run", artifact_id, "--path", "fail.py")
    assert failed.exit_code == 5 and failed.stdout == "failing\n" and "FAILED RUNTIME_ERROR exit 5" in failed.stderr
    steps = sandboxctl(*connection, "artifacts", "run", artifact_id, "--step", "main.py x", "--step", "fail.py")
    assert steps.exit_code == 5 and steps.stdout.endswith("failing\n")

    runs = ok_json(*connection, "artifacts", "runs", artifact_id)
    assert [r["execution"]["status"] for r in runs] == ["FAILED", "FAILED", "COMPLETED", "COMPLETED", "COMPLETED"]
    assert runs[0]["steps"] == [["main.py", "x"], ["fail.py"]] and runs[1]["path"] == "fail.py"
    assert {r["revision"] for r in runs} == {4} and runs[-1]["artifact_id"] == artifact_id
    readable = sandboxctl(*connection, "artifacts", "runs", artifact_id, "--limit", "2")
    assert readable.exit_code == 0 and len(readable.stdout.splitlines()) == 3 and "fail.py" in readable.stdout
    # a run is an execution: its logs and record are Control's
    logs = sandboxctl(*connection, "executions", "logs", runs[1]["run_id"])
    assert logs.exit_code == 0 and logs.stdout == "failing\n"
    missing = sandboxctl(*connection, "artifacts", "run", artifact_id, "--path", "nope.py")
    assert missing.exit_code == 125 and missing.stderr.count("\n") == 1
    assert missing.stderr.startswith("sandboxctl: ")


def test_rm_mv_packages_and_refused_writes(connection, project, tmp_path):
    artifact_id = create(connection, "--entry", "main.py")
    assert sandboxctl(*connection, "artifacts", "put", artifact_id, str(project)).exit_code == 0
    moved = sandboxctl(*connection, "artifacts", "mv", artifact_id, "main.py", "app.py")
    assert moved.exit_code == 0 and moved.stdout.strip() == "renamed main.py to app.py -> revision 5"
    [shown] = ok_json(*connection, "artifacts", "show", artifact_id)
    assert shown["entry"] == "app.py"  # the entry follows its file
    removed = sandboxctl(*connection, "artifacts", "rm", artifact_id, "fail.py")
    assert removed.exit_code == 0 and removed.stdout.strip() == "removed fail.py -> revision 6"
    entry = sandboxctl(*connection, "artifacts", "rm", artifact_id, "app.py")
    assert entry.exit_code == 125 and entry.stderr.startswith("sandboxctl: FAILED_PRECONDITION:")
    stale = sandboxctl(*connection, "artifacts", "rm", artifact_id, "lib/helper.py", "--revision", "2")
    assert stale.exit_code == 125 and stale.stderr.startswith("sandboxctl: ABORTED:")
    gone = sandboxctl(*connection, "artifacts", "mv", artifact_id, "fail.py", "x.py")
    assert gone.exit_code == 125 and gone.stderr.startswith("sandboxctl: NOT_FOUND:")

    assert sandboxctl(*connection, "artifacts", "packages", artifact_id).stdout == ""
    [added] = ok_json(*connection, "artifacts", "packages", artifact_id, "--pip", "requests==2.32.3", "--revision", "6")
    assert added == {
        "artifact_id": artifact_id,
        "revision": 7,
        "packages": [{"name": "requests", "version": "==2.32.3"}],
    }
    listed = sandboxctl(*connection, "artifacts", "packages", artifact_id)
    assert listed.exit_code == 0 and listed.stdout == "requests==2.32.3\n"
    bad = sandboxctl(*connection, "artifacts", "packages", artifact_id, "--pip", "no such==name")
    assert bad.exit_code == 125 and bad.stderr.startswith("sandboxctl: INVALID_ARGUMENT:")

    missing = sandboxctl(*connection, "artifacts", "show", "art_doesnotexist")
    assert missing.exit_code == 125 and missing.stderr.startswith("sandboxctl: NOT_FOUND:")
    other = CliRunner().invoke(
        main,
        [*connection[:2], "--tenant", "tenant-b", "--key", TENANT_KEYS["tenant-b"], "artifacts", "show", artifact_id],
    )
    assert other.exit_code == 125 and other.stderr.startswith("sandboxctl: NOT_FOUND:")
    language = sandboxctl(*connection, "artifacts", "create", "--language", "ruby")
    assert language.exit_code == 2


def test_ctrl_c_cancels_the_run_and_exits_130(control_server, connection):
    artifact_id = create(connection, "--entry", "wait.py")
    with Client(f"127.0.0.1:{control_server.port}", "tenant-a", TENANT_KEYS["tenant-a"]) as client:
        client.artifacts.put(artifact_id, "wait.py", "import time\nprint('started', flush=True)\ntime.sleep(60)")
        env = dict(
            os.environ,
            PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'stubs'}",
            SANDBOX_URL=f"127.0.0.1:{control_server.port}",
            SANDBOX_TENANT="tenant-a",
            SANDBOX_KEY=TENANT_KEYS["tenant-a"],
        )
        process = subprocess.Popen(
            [sys.executable, "-m", "sandbox_mesh.cli", "artifacts", "run", artifact_id, "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert process.stdout is not None
        run_id = None
        for line in process.stdout:
            event = json.loads(line)
            run_id = run_id or event.get("execution_id")
            if event["kind"] == "output":
                break
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 130, stderr
        assert f"cancelled {run_id}".encode() in stderr and b"Traceback" not in stderr
        deadline = time.monotonic() + 30
        while client.artifacts.get_run(run_id).status != "CANCELLED" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert client.artifacts.get_run(run_id).status == "CANCELLED"
