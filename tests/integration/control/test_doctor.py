"""`sandboxctl doctor` against real things, some of them broken on purpose:
a control where nothing listens, a wrong key, a .env others can read, an
engine that is not there, an image that does not exist."""

from __future__ import annotations

import json
import pathlib
import socket

import docker
import pytest
from click.testing import CliRunner

from sandbox_mesh import doctor
from sandbox_mesh.cli import main
from sandbox_mesh.doctor import FAIL, PASS, WARN
from tests.integration.control.conftest import TENANT_KEYS

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def env_file(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / ".env"
    path.write_text(f"CONTROL_TENANT_KEYS={json.dumps(TENANT_KEYS)}\n")
    path.chmod(0o600)
    return path


def doctor_json(url: str, env_file: pathlib.Path) -> tuple[int, dict[str, dict[str, str]]]:
    args = ["--url", url, "--tenant", "tenant-a", "doctor", "--json", "--env-file", str(env_file)]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.output.startswith("{"), (result.output, result.exception)
    report = json.loads(result.output)
    return result.exit_code, {check["name"]: check for check in report["checks"]}


def test_a_control_where_nothing_listens_fails(env_file):
    url = f"127.0.0.1:{free_port()}"
    result = CliRunner().invoke(
        main,
        ["--url", url, "--tenant", "tenant-a", "doctor", "--env-file", str(env_file), "--spawner", url],
        catch_exceptions=False,
    )
    assert result.exit_code == 1
    line = next(line for line in result.output.splitlines() if line.startswith("fail  control"))
    assert "UNAVAILABLE" in line
    assert "fix: make up" in result.output


def test_a_real_control_passes_and_a_wrong_key_fails(control_server, env_file):
    url = f"127.0.0.1:{control_server.port}"
    _code, checks = doctor_json(url, env_file)
    # The key came from the .env file, as after `make up`.
    assert checks["control"]["status"] == PASS, checks["control"]
    assert str(env_file) in checks["control"]["detail"]
    assert checks["env file"]["status"] == PASS

    refused = doctor.control_check(url, "tenant-a", "not-the-key", env_file=env_file)
    assert refused.status == FAIL
    assert "UNAUTHENTICATED" in refused.detail or "PERMISSION_DENIED" in refused.detail
    assert "--key" in refused.fix


def test_an_env_file_others_can_read_fails(control_server, env_file):
    env_file.chmod(0o644)
    url = f"127.0.0.1:{control_server.port}"
    code, checks = doctor_json(url, env_file)
    assert code == 1
    assert checks["env file"]["status"] == FAIL
    assert checks["env file"]["fix"] == "chmod 600 .env"


def test_an_unreachable_engine_fails_and_skips_what_needs_it(tmp_path):
    def no_engine() -> docker.DockerClient:
        return docker.DockerClient(base_url=f"unix://{tmp_path}/no-docker.sock", timeout=2)

    checks = doctor.run_checks(
        doctor.Inputs(url=f"127.0.0.1:{free_port()}", key="", engine=no_engine, spawner=f"127.0.0.1:{free_port()}")
    )
    by_name = {check.name: check for check in checks}
    assert by_name["engine"].status == FAIL
    assert by_name["engine"].fix == "start it: make docker"
    assert "images" not in by_name and "clock" not in by_name
    assert doctor.exit_code(checks) == 1


def test_a_missing_image_fails_and_the_real_engine_passes(docker_api):
    engine = docker.from_env()
    try:
        assert doctor.engine_check(engine).status == PASS
        missing = doctor.images_check(engine, ("sandbox-mesh/no-such-image:never",))
        assert missing.status == FAIL and missing.fix == "make images"
        assert doctor.engine_clock_check(doctor.engine_info(engine)).status == PASS
        info = doctor.engine_info(engine)
        # Pass with gVisor registered, a warning (not a failure) without it.
        gvisor = all(name in (info.get("Runtimes") or {}) for name in doctor.GVISOR_RUNTIMES)
        assert doctor.engine_runtimes_check(info).status == (PASS if gvisor else WARN)
    finally:
        engine.close()


def test_a_healthy_spawner_passes(control_spawner):
    assert doctor.spawner_check(f"127.0.0.1:{control_spawner.port}").status == PASS
