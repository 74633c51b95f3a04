"""`sandboxctl doctor` against real things, some of them broken on purpose:
a control where nothing listens, a wrong key, a .env others can read, an
engine that is not there, an image that does not exist or was built from
other sources, no compose on the PATH, a sandbox network that is not
internal, a secret file others can read, a filesystem out of inodes.
(The egress's checks are in tests/integration/egress/test_doctor_egress.py,
beside the egress they run against.)"""

from __future__ import annotations

import contextlib
import io
import json
import pathlib
import secrets
import shutil
import socket
import subprocess

import docker
import pytest
from click.testing import CliRunner

from sandbox_mesh import doctor
from sandbox_mesh.cli import main
from sandbox_mesh.doctor import FAIL, PASS, WARN, images
from tests.integration.conftest import SECRET
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
    # Every check ran; the compose mesh's own (its egress, the signed calls
    # between its services) warn, not fail, where no compose mesh is up.
    expected = {"engine", "compose", "images", "runtimes", "secrets", "disk", "data disk", "clock", "spawner"}
    assert expected | {"egress", "networks", "control→spawner", "spawner→egress"} <= set(checks)

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


# ---- compose, images, networks, secrets, data disk ---------------------------------

ROOT = pathlib.Path(__file__).resolve().parents[3]
TEST_LABELS = {"sandbox-mesh.doctor-test": "1"}


def test_compose_is_found_and_its_absence_fails(tmp_path):
    found = doctor.compose_check()
    assert found.status == PASS, found
    assert "(v2 plugin)" in found.detail or "(v1)" in found.detail
    # A PATH with nothing on it: neither the plugin nor docker-compose.
    empty = tmp_path / "bin"
    empty.mkdir()
    missing = doctor.compose_check(path=str(empty))
    assert missing.status == FAIL and "Compose" in missing.fix


@pytest.fixture
def fake_tree(tmp_path):
    """A checkout of images/runtime only, and no extra CA certificates."""
    tree = tmp_path / "tree"
    shutil.copytree(ROOT / "images" / "runtime", tree / "images" / "runtime")
    cas = tmp_path / "cas"
    cas.mkdir()
    return tree, cas


def test_an_image_built_from_this_tree_passes_and_from_another_warns(docker_api, fake_tree):
    """An image of our own, labelled as build.sh would label it for the fake
    tree (the mesh's own tags are left alone: other tests use them)."""
    tree, cas = fake_tree
    engine = docker.from_env()
    tag = f"sandbox-mesh/doctor-test:{secrets.token_hex(4)}"
    base_id = engine.images.get(images.BASE_IMAGE).id
    label = images.expected_inputs("runtime", base_id, tree, cas)
    dockerfile = f"FROM {images.BASE_IMAGE}\n"
    image, _ = engine.images.build(
        fileobj=io.BytesIO(dockerfile.encode()),
        tag=tag,
        labels={images.INPUTS_LABEL: label, **TEST_LABELS},
        rm=True,
    )
    kinds = {tag: ("runtime", images.BASE_IMAGE)}
    try:
        current = doctor.images_check(engine, (tag,), tree, cas, kinds)
        assert current.status == PASS and "current" in current.detail, current
        (tree / "images" / "runtime" / "runner.py").write_text("# changed since the image was built\n")
        stale = doctor.images_check(engine, (tag,), tree, cas, kinds)
        assert stale.status == WARN and tag in stale.detail and stale.fix == "make images"
    finally:
        engine.images.remove(image.id, force=True)
        engine.close()


@pytest.fixture
def sandbox_like_network(docker_api):
    """Networks labelled as the spawner labels its sandbox networks, for a
    spawner name no spawner has (so no reaper takes them)."""
    made = []

    def make(internal: bool):
        name = f"doctor-test-{secrets.token_hex(4)}"
        docker_api.create_network(
            name,
            driver="bridge",
            internal=internal,
            enable_ipv6=False,
            labels={"sandbox-mesh.role": "sandbox-network", "sandbox-mesh.spawner": name, **TEST_LABELS},
        )
        made.append(name)
        return name

    yield make
    for name in made:
        with contextlib.suppress(docker.errors.NotFound):
            docker_api.remove_network(name)


def test_an_internal_sandbox_network_passes_and_one_with_a_route_out_fails(sandbox_like_network):
    engine = docker.from_env()
    try:
        internal = sandbox_like_network(internal=True)
        passed = doctor.networks_check(engine)
        assert passed.status == PASS and "all internal with IPv6 off" in passed.detail, passed
        leaky = sandbox_like_network(internal=False)
        failed = doctor.networks_check(engine)
        assert failed.status == FAIL, failed
        assert f"{leaky} (not internal)" in failed.detail and internal not in failed.detail
        assert "docker network rm" in failed.fix
    finally:
        engine.close()


def test_a_secret_file_others_can_read_fails_the_doctor(control_server, env_file, tmp_path, monkeypatch):
    for name in ("SERVICE_SECRET", "EGRESS_SECRET", "EGRESS_SECRET_FILE"):
        monkeypatch.delenv(name, raising=False)
    secret_file = tmp_path / "egress.secret"
    secret_file.write_text(secrets.token_hex(32))
    secret_file.chmod(0o600)
    with env_file.open("a") as out:
        out.write(f"SERVICE_SECRET={secrets.token_hex(32)}\nEGRESS_SECRET={secrets.token_hex(32)}\n")
        out.write(f"EGRESS_SECRET_FILE={secret_file}\n")
    url = f"127.0.0.1:{control_server.port}"
    _code, checks = doctor_json(url, env_file)
    assert checks["secrets"]["status"] == PASS, checks["secrets"]
    secret_file.chmod(0o644)
    code, checks = doctor_json(url, env_file)
    assert code == 1
    assert checks["secrets"]["status"] == FAIL and "mode 0644" in checks["secrets"]["detail"]
    assert checks["secrets"]["fix"] == f"chmod 600 {secret_file}"


@pytest.fixture
def few_inodes(tmp_path):
    """A real filesystem of 40 inodes and room enough (a tmpfs takes memory only
    for what is written; the suite runs as root)."""
    where = tmp_path / "data"
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8g,nr_inodes=40", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


def test_control_data_out_of_inodes_warns(few_inodes):
    assert doctor.data_disk_check(few_inodes).status == PASS
    for number in range(37):
        (few_inodes / f"file-{number}").touch()
    low = doctor.data_disk_check(few_inodes)
    assert low.status == WARN and "low inodes" in low.detail, low
    assert str(few_inodes) in low.fix


@pytest.fixture
def control_like_container(docker_api):
    """A container of the services image with control's two settings for its
    spawner, on the host's network so it reaches the suite's spawner on
    loopback: where the doctor's probe runs in a compose mesh."""
    engine = docker.from_env()
    made = []

    def make(environment: dict[str, str]):
        container = engine.containers.run(
            images.SERVICES_IMAGE,
            ["sleep", "300"],
            detach=True,
            network_mode="host",
            user="10001",
            read_only=True,
            cap_drop=["ALL"],
            environment=environment,
            labels={"sandbox-mesh.role": "test", **TEST_LABELS},
        )
        made.append(container)
        return container

    yield make
    for container in made:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)
    engine.close()


def test_control_to_spawner_signed_call_from_a_service_container(control_spawner, control_like_container):
    engine = docker.from_env()
    address = f"127.0.0.1:{control_spawner.port}"
    names = ("CONTROL_SPAWNERS", "CONTROL_SPAWNER_SECRET")
    try:
        good = control_like_container({"CONTROL_SPAWNERS": address, "CONTROL_SPAWNER_SECRET": SECRET})
        passed = doctor.link_check(engine, "control→spawner", good.name, "spawner", *names)
        assert passed.status == PASS and address in passed.detail, passed

        other = control_like_container({"CONTROL_SPAWNERS": address, "CONTROL_SPAWNER_SECRET": secrets.token_hex(32)})
        refused = doctor.link_check(engine, "control→spawner", other.name, "spawner", *names)
        assert refused.status == FAIL and "UNAUTHENTICATED" in refused.detail, refused
        assert "make down && make up" in refused.fix

        nowhere = control_like_container(
            {"CONTROL_SPAWNERS": f"127.0.0.1:{free_port()}", "CONTROL_SPAWNER_SECRET": SECRET}
        )
        unreachable = doctor.link_check(engine, "control→spawner", nowhere.name, "spawner", *names)
        assert unreachable.status == FAIL and "UNAVAILABLE" in unreachable.detail, unreachable

        nowhere.stop(timeout=1)
        stopped = doctor.link_check(engine, "control→spawner", nowhere.name, "spawner", *names)
        assert stopped.status == FAIL and stopped.fix == "make up"
    finally:
        engine.close()
