"""sandboxctl's newer commands against a real control and spawner: run
--step, executions logs, groups cancel, outputs get (and its refusal to
write outside --out), sign (its headers used by grpcurl for real)."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from sandbox_mesh import Client
from sandbox_mesh.cli import main
from sandbox_mesh.events import Execution, StoredFile
from tests.integration.control.conftest import TENANT_KEYS

pytestmark = pytest.mark.integration
VENV_BIN = pathlib.Path(sys.executable).parent
ROOT = pathlib.Path(__file__).resolve().parents[3]


@pytest.fixture
def connection(control_server):
    return ["--url", f"127.0.0.1:{control_server.port}", "--tenant", "tenant-a", "--key", TENANT_KEYS["tenant-a"]]


@pytest.fixture
def client(control_server):
    with Client(f"127.0.0.1:{control_server.port}", "tenant-a", TENANT_KEYS["tenant-a"]) as client:
        yield client


def sandboxctl(*args: str, stdin: bytes | None = None):
    return CliRunner().invoke(main, list(args), input=stdin, catch_exceptions=False)


def execution_id_of(result) -> str:
    return json.loads(result.stdout.splitlines()[0])["execution_id"]


def test_run_steps_in_order_with_their_own_arguments(connection, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "prep.py").write_text("import sys; print('prep', sys.argv[1:])")
    (project / "main.py").write_text("print('main')")
    result = sandboxctl(*connection, "run", str(project), "--step", "prep.py --fast 'a b'", "--step", "main.py")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "prep ['--fast', 'a b']\nmain\n"
    steps = sandboxctl(*connection, "run", str(project), "--step", "main.py", "--json")
    events = [json.loads(line) for line in steps.stdout.splitlines()]
    assert steps.exit_code == 0 and [e["path"] for e in events if e["kind"] == "step"] == ["main.py"]
    missing = sandboxctl(*connection, "run", str(project), "--step", "nope.py")
    assert missing.exit_code == 2 and missing.stderr.strip() == "sandboxctl: --step: 'nope.py' is not among the files"
    both = sandboxctl(*connection, "run", str(project), "--step", "main.py", "--", "x")
    assert both.exit_code == 2 and "sandboxctl: --step: either steps or an entry" in both.stderr


def test_a_failing_step_stops_the_run_with_its_exit_code(connection, tmp_path):
    (tmp_path / "fail.py").write_text("raise SystemExit(4)")
    result = sandboxctl(*connection, "run", str(tmp_path / "fail.py"), "--step", "fail.py")
    assert result.exit_code == 4 and "FAILED RUNTIME_ERROR exit 4" in result.stderr


def test_executions_logs_prints_what_control_kept(connection, tmp_path):
    (tmp_path / "talk.py").write_text("import sys; print('to out'); print('to err', file=sys.stderr)")
    execution_id = execution_id_of(sandboxctl(*connection, "run", str(tmp_path / "talk.py"), "--json"))
    logs = sandboxctl(*connection, "executions", "logs", execution_id)
    assert logs.exit_code == 0 and logs.stdout == "to out\n" and logs.stderr == "to err\n"
    as_json = json.loads(sandboxctl(*connection, "executions", "logs", execution_id, "--json").stdout)
    assert as_json == {
        "execution_id": execution_id,
        "status": "COMPLETED",
        "stdout": "to out\n",
        "stderr": "to err\n",
        "stdout_truncated": False,
        "stderr_truncated": False,
    }
    missing = sandboxctl(*connection, "executions", "logs", "no-such-execution")
    assert missing.exit_code == 125 and missing.stderr.startswith("sandboxctl: NOT_FOUND:")


def cli_process(control_server, *args: str) -> subprocess.Popen:
    env = dict(
        os.environ,
        PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'stubs'}",
        SANDBOX_URL=f"127.0.0.1:{control_server.port}",
        SANDBOX_TENANT="tenant-a",
        SANDBOX_KEY=TENANT_KEYS["tenant-a"],
    )
    return subprocess.Popen(
        [sys.executable, "-m", "sandbox_mesh.cli", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def test_groups_cancel_cancels_every_running_execution_of_the_group(control_server, connection, client, tmp_path):
    program = tmp_path / "wait.py"
    program.write_text("import time; print('up', flush=True); time.sleep(60)")
    # Real processes: CliRunner swaps sys.stdout and cannot run in threads.
    runs = [cli_process(control_server, "run", str(program), "--group", "s1") for _ in range(2)]
    deadline = time.monotonic() + 60
    while len(list(client.executions(statuses=["RUNNING"], group_id="s1"))) < 2:
        assert time.monotonic() < deadline, "the group's executions never ran"
        time.sleep(0.2)
    cancelled = sandboxctl(*connection, "groups", "cancel", "s1", "--json")
    assert cancelled.exit_code == 0
    record = json.loads(cancelled.stdout)
    assert record["group_id"] == "s1" and len(record["cancelled_execution_ids"]) == 2
    for process in runs:
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 130 and b"CANCELLED" in stderr
    again = sandboxctl(*connection, "groups", "cancel", "s1")
    assert again.exit_code == 0 and again.stdout.startswith("cancelled 0 execution(s) of group s1")
    bad = sandboxctl(*connection, "groups", "cancel", "no spaces allowed")
    assert bad.exit_code == 125 and bad.stderr.startswith("sandboxctl: INVALID_ARGUMENT:")
    assert "group_id" in bad.stderr


def test_outputs_get_writes_every_file_or_one(connection, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "make.py").write_text(
        "import os\nos.makedirs('/workspace/output/sub')\n"
        "open('/workspace/output/a.txt', 'w').write('A')\nopen('/workspace/output/sub/b.txt', 'w').write('B')"
    )
    execution_id = execution_id_of(sandboxctl(*connection, "run", str(tmp_path / "make.py"), "--json"))
    every = sandboxctl(*connection, "outputs", "get", execution_id)
    folder = tmp_path / "outputs" / execution_id
    assert every.exit_code == 0 and (folder / "a.txt").read_text() == "A" and (folder / "sub/b.txt").read_text() == "B"
    one = sandboxctl(*connection, "outputs", "get", execution_id, "sub/b.txt", "--out", "mine", "--json")
    assert one.exit_code == 0 and json.loads(one.stdout)["files"] == ["sub/b.txt"]
    assert [p.name for p in (tmp_path / "mine").rglob("*") if p.is_file()] == ["b.txt"]
    missing = sandboxctl(*connection, "outputs", "get", execution_id, "nope.txt", "--out", "x")
    assert missing.exit_code == 125 and missing.stderr.startswith("sandboxctl: NOT_FOUND:")


def test_outputs_get_never_writes_outside_the_folder(connection, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "make.py").write_text("open('/workspace/output/a.txt', 'w').write('A')")
    execution_id = execution_id_of(sandboxctl(*connection, "run", str(tmp_path / "make.py"), "--json"))
    out = tmp_path / "out"
    asked = sandboxctl(*connection, "outputs", "get", execution_id, "../escaped.txt", "--out", str(out))
    assert asked.exit_code == 2 and asked.stderr.startswith("sandboxctl: PATH: refusing to write")

    # A hostile control naming files outside the folder: every one refused.
    real_get = Client.get
    for hostile in ("../escaped.txt", "/tmp/escaped.txt", "a/../../escaped.txt", "link/escaped.txt"):

        def lying_get(self, execution_id, hostile=hostile) -> Execution:
            record = real_get(self, execution_id)
            return Execution(**{**record.__dict__, "output_files": (StoredFile(hostile, 1, ""),)})

        monkeypatch.setattr(Client, "get", lying_get)
        out.mkdir(exist_ok=True)
        (out / "link").unlink(missing_ok=True)
        (out / "link").symlink_to(tmp_path)
        result = sandboxctl(*connection, "outputs", "get", execution_id, "--out", str(out))
        assert result.exit_code == 125, hostile
        assert result.stderr.startswith("sandboxctl: DATA_LOSS: refusing to write") and "Traceback" not in result.stderr
    assert not list(tmp_path.rglob("escaped.txt")) and not pathlib.Path("/tmp/escaped.txt").exists()


def test_sign_prints_headers_grpcurl_can_call_with(control_server, connection, tmp_path):
    headers = sandboxctl(*connection, "sign", "GetQuota")
    assert headers.exit_code == 0
    assert headers.stdout.startswith("-H 'x-sandbox-tenant: tenant-a' -H 'x-sandbox-signature: v2:")
    as_json = json.loads(sandboxctl(*connection, "sign", "Artifacts/ListArtifacts", "--json").stdout)
    assert as_json["method"] == "sandbox.control.v1.Artifacts/ListArtifacts" and as_json["tenant"] == "tenant-a"
    command = sandboxctl(*connection, "sign", "--grpcurl", "sandbox.control.v1.Control/GetQuota", "{}").stdout
    env = dict(os.environ, PATH=f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}")
    called = subprocess.run(["bash", "-c", command], check=False, env=env, capture_output=True, text=True, timeout=60)
    assert called.returncode == 0, called.stderr
    assert json.loads(called.stdout)["tenant"] == "tenant-a"
    # Signed for one call: the same headers again are a replay.
    again = subprocess.run(["bash", "-c", command], check=False, env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode != 0 and "replayed signature" in again.stderr


def test_the_readmes_grpcurl_execute_is_one_command(connection):
    request = json.dumps(
        {
            "language": "LANGUAGE_PYTHON",
            "files": [{"path": "main.py", "content": "cHJpbnQoImhlbGxvIik="}],
            "entry": "main.py",
        }
    )
    command = sandboxctl(*connection, "sign", "--grpcurl", "Control/Execute", request).stdout
    called = subprocess.run(["bash", "-c", command], check=False, capture_output=True, text=True, timeout=120)
    assert called.returncode == 0, called.stderr
    events = [json.loads(chunk) for chunk in called.stdout.replace("}\n{", "}\x00{").split("\x00")]
    assert events[-1]["finished"]["status"] == "EXECUTION_STATUS_COMPLETED"


def test_sign_names_what_is_wrong(connection):
    unknown = sandboxctl(*connection, "sign", "Control/Nope")
    assert unknown.exit_code == 2 and unknown.stderr.startswith("sandboxctl: METHOD: 'Control/Nope' is no method")
    bad = sandboxctl(*connection, "sign", "GetExecution", '{"execution": 1}')
    assert bad.exit_code == 2 and bad.stderr.startswith("sandboxctl: REQUEST: not a GetExecutionRequest in JSON")
