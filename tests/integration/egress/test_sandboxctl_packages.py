"""`sandboxctl run` end to end as a person uses it: a multi-file program
with a pip package, stdin and an output file, through control, a spawner and
the egress the suite starts (the package comes in through the egress)."""

from __future__ import annotations

import secrets

import pytest
from click.testing import CliRunner

from sandbox_mesh.cli import main
from services.control.server import start as start_control
from services.spawner.server import start as start_spawner
from tests.integration.conftest import assert_nothing_left, make_settings
from tests.integration.control.conftest import TENANT_KEYS, control_settings
from tests.integration.egress.conftest import PROXY_PORT

pytestmark = pytest.mark.integration

MAIN = """\
import sys
import tabulate
from helpers import shout
text = sys.stdin.read()
open("/workspace/output/shouted.txt", "w").write(shout(text))
print(tabulate.__version__, shout(text))
"""


def test_run_a_project_with_a_package_stdin_and_an_output_file(mesh, registry_egress, docker_api, tmp_path):
    root = tmp_path / "workspaces"
    root.mkdir()
    name = f"cli-{secrets.token_hex(4)}"
    spawner = start_spawner(
        make_settings(
            name,
            root,
            egress_container=registry_egress.container.id,
            egress_proxy_port=PROXY_PORT,
            egress_secret=mesh.secret,
            egress_grpc=registry_egress.grpc_target,
            install_timeout_ms=240_000,
        )
    )
    try:
        control = start_control(control_settings(spawner.port, tmp_path, f"sqlite:///{tmp_path}/control.db"))
        try:
            project = tmp_path / "project"
            project.mkdir()
            (project / "main.py").write_text(MAIN)
            (project / "helpers.py").write_text("def shout(s):\n    return s.upper()\n")
            (tmp_path / "input.txt").write_text("quiet words")
            out = tmp_path / "out"
            connection = ["--url", f"127.0.0.1:{control.port}", "--tenant", "tenant-a"]
            run = ["run", str(project), "--entry", "main.py", "--pip", "tabulate==0.9.0", "--timeout", "60"]
            files = ["--stdin", str(tmp_path / "input.txt"), "--out", str(out)]
            result = CliRunner().invoke(
                main, [*connection, "--key", TENANT_KEYS["tenant-a"], *run, *files], catch_exceptions=False
            )
            assert result.exit_code == 0, result.stdout + result.stderr
            assert result.stdout == "0.9.0 QUIET WORDS\n"  # not in the image: installed
            assert "COMPLETED" in result.stderr  # the summary line
            [written] = list(out.rglob("shouted.txt"))
            assert written.read_text() == "QUIET WORDS"
            [ended] = spawner.spawner.executions().ended  # the spawner knows it by control's key
            decisions = list(registry_egress.decisions(ended.execution_id))
            assert decisions and all(d.tenant == "tenant-a" for d in decisions), "not through the egress"
        finally:
            control.stop()
    finally:
        spawner.stop(grace_seconds=5)
    assert spawner.spawner.cleanup_failures == 0
    assert_nothing_left(docker_api, name, root, spawner.spawner.cgroups)
