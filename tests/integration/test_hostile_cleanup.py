"""What a program leaves in its workspace never stops the clean-up (issue:
one run must not stop clean-up or crash-loop the spawner). Each test runs the
attack in a real sandbox and checks that the execution ends with its real
status, is charged the CPU it used, and leaves nothing on the host."""

from __future__ import annotations

import pathlib

import pytest

from sandbox.common.v1 import execution_pb2 as common
from tests.integration.helpers import execute, request

pytestmark = pytest.mark.integration

DEPTH = 5_000  # 1,500 was enough to make shutil.rmtree raise RecursionError
PATH_MAX = 4096

NEST = """
import os
os.chdir({start!r})
for _ in range({depth}):
    os.mkdir('d')
    os.chdir('d')
open('leaf', 'w').write('x')
print(len({start!r}) + 2 * {depth} > {path_max}, flush=True)
"""

LOCK = """
import os
os.makedirs('/workspace/locked/box/inner')
open('/workspace/locked/box/inner/f', 'w').write('x')
open('/workspace/locked/box/g', 'w').write('x')
os.chmod('/workspace/locked/box/inner', 0o000)
os.chmod('/workspace/locked/box', 0o000)
os.chmod('/workspace/locked', 0o500)
print('locked', flush=True)
"""


def _leftovers(workspace_root, execution_id: str) -> list[pathlib.Path]:
    return [p for p in pathlib.Path(workspace_root).iterdir() if p.name.startswith(f"{execution_id}.")]


def _run_attack(stub, spawner_server, workspace_root, code: str):
    failures_before = spawner_server.spawner.cleanup_failures
    req = request({"main.py": code}, timeout_ms=60_000)
    outcome = execute(stub, req)
    assert outcome.result is not None
    assert outcome.result.usage.cpu_seconds > 0, outcome.result
    assert spawner_server.spawner.provisioner.wait_removed(30)  # removed after the result is sent
    assert _leftovers(workspace_root, req.execution_id) == []
    assert spawner_server.spawner.cleanup_failures == failures_before
    return outcome


def test_thousands_of_nested_directories_past_path_max(stub, spawner_server, workspace_root):
    code = NEST.format(start="/workspace", depth=DEPTH, path_max=PATH_MAX)
    outcome = _run_attack(stub, spawner_server, workspace_root, code)
    assert outcome.result.status == common.EXECUTION_STATUS_COMPLETED, outcome.result
    assert outcome.stdout == b"True\n"


def test_directories_locked_with_chmod_000(stub, spawner_server, workspace_root):
    outcome = _run_attack(stub, spawner_server, workspace_root, LOCK)
    assert outcome.result.status == common.EXECUTION_STATUS_COMPLETED, outcome.result
    assert outcome.stdout == b"locked\n"


def test_nested_directories_in_the_outputs(stub, spawner_server, workspace_root):
    """The harvest stops at its entry cap and says so; the clean-up removes
    the rest."""
    code = "open('/workspace/output/ok.txt', 'w').write('ok')\n" + NEST.format(
        start="/workspace/output", depth=DEPTH, path_max=PATH_MAX
    )
    outcome = _run_attack(stub, spawner_server, workspace_root, code)
    assert outcome.result.error_code == common.ERROR_CODE_OUTPUT_LIMIT, outcome.result
    assert "too many entries" in outcome.result.error_message
    assert [f.path for f in outcome.result.output_files] == ["ok.txt"]
