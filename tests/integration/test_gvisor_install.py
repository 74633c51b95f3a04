"""gVisor installed and registered by `make up`/`make test`
(scripts/ensure_gvisor.sh) and each of its runtimes running a container of the
runtime image (scripts/check_runtimes.sh), on the real engine.

Where the distribution offers no runsc, ensure_gvisor.sh says so and these
tests are skipped with its line as the reason.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import time

import pytest

pytestmark = pytest.mark.integration

ROOT = pathlib.Path(__file__).resolve().parents[2]
DAEMON_JSON = pathlib.Path("/etc/docker/daemon.json")
GVISOR_RUNTIMES = ("runsc", "runsc-network")
CHECK_LABEL = "sandbox-mesh.role=runtime-check"
IMAGE_WITHOUT_PYTHON = "sandbox-mesh/base:bookworm"
DOCKER_PIDFILE = pathlib.Path("/var/run/docker.pid")
RELOAD_WAIT_SECONDS = 20


def run_script(name: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in ("SANDBOX_GVISOR", "RUNTIME_IMAGE")} | env
    command = [str(ROOT / "scripts" / name)]
    return subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=600, check=False)


def engine_runtimes(docker_api) -> dict:
    return docker_api.info()["Runtimes"]


def check_leftovers(docker_api) -> None:
    containers = docker_api.containers(all=True, filters={"label": [CHECK_LABEL]})
    assert containers == [], f"check containers left behind: {[c['Id'][:12] for c in containers]}"
    networks = docker_api.networks(filters={"label": [CHECK_LABEL]})
    assert networks == [], f"check networks left behind: {[n['Name'] for n in networks]}"


def reload_engine() -> None:
    pid = int(DOCKER_PIDFILE.read_text())
    assert pathlib.Path(f"/proc/{pid}/comm").read_text().strip() == "dockerd"
    os.kill(pid, signal.SIGHUP)


def wait_for_runtimes(docker_api, offered: bool) -> None:
    deadline = time.monotonic() + RELOAD_WAIT_SECONDS
    while time.monotonic() < deadline:
        if all(name in engine_runtimes(docker_api) for name in GVISOR_RUNTIMES) == offered:
            return
        time.sleep(0.2)
    raise AssertionError(f"the engine still {'lacks' if offered else 'offers'} {GVISOR_RUNTIMES}")


@pytest.fixture(scope="module")
def gvisor(docker_api):
    """ensure_gvisor.sh run once; skips the module where gVisor cannot be had."""
    ensured = run_script("ensure_gvisor.sh")
    assert ensured.returncode == 0, ensured.stderr
    unavailable = [line for line in ensured.stderr.splitlines() if line.startswith("gVisor (runsc) unavailable")]
    if unavailable:
        pytest.skip(unavailable[0])
    return ensured


def test_ensure_registers_both_runtimes_and_a_second_run_changes_nothing(docker_api, gvisor):
    runtimes = engine_runtimes(docker_api)
    for name, network in zip(GVISOR_RUNTIMES, ("none", "host"), strict=True):
        assert runtimes[name]["runtimeArgs"] == ["--platform=ptrace", f"--network={network}"], runtimes
    registered = json.loads(DAEMON_JSON.read_text())["runtimes"]
    assert {name: registered[name] for name in GVISOR_RUNTIMES} == {name: runtimes[name] for name in GVISOR_RUNTIMES}
    before = DAEMON_JSON.read_bytes(), DAEMON_JSON.stat().st_mtime_ns

    again = run_script("ensure_gvisor.sh")
    assert again.returncode == 0, again.stderr
    assert (DAEMON_JSON.read_bytes(), DAEMON_JSON.stat().st_mtime_ns) == before
    assert "reloading" not in again.stderr, "an engine already configured is not reloaded"
    assert "the engine offers runc, runsc runsc-network" in again.stderr
    assert engine_runtimes(docker_api) == runtimes


def test_each_gvisor_runtime_runs_a_container_and_leaves_nothing(docker_api, gvisor):
    checked = run_script("check_runtimes.sh")
    assert checked.returncode == 0, checked.stderr
    assert "runsc runs a container: ok" in checked.stderr
    assert "runsc-network runs a container: ok" in checked.stderr
    assert "sandbox runtimes: runc and gVisor (runsc runsc-network)" in checked.stderr
    assert "WARNING" not in checked.stderr
    check_leftovers(docker_api)


def test_a_runtime_that_fails_is_a_warning_with_the_engines_error_and_stays_registered(docker_api, gvisor):
    # An image without python3: the engine's error names the missing program.
    docker_api.inspect_image(IMAGE_WITHOUT_PYTHON)
    before = engine_runtimes(docker_api)
    checked = run_script("check_runtimes.sh", RUNTIME_IMAGE=IMAGE_WITHOUT_PYTHON, RUNTIME_CHECK_TIMEOUT_SECONDS="60")
    assert checked.returncode == 0, checked.stderr
    for name in GVISOR_RUNTIMES:
        warning = [line for line in checked.stderr.splitlines() if f"runtime {name} failed to run a container" in line]
        assert len(warning) == 1, checked.stderr
        assert "python3" in warning[0], "the engine's own error is shown"
    assert "runc only (no gVisor runtime ran a container)" in checked.stderr
    assert engine_runtimes(docker_api) == before, "nothing is unregistered"
    check_leftovers(docker_api)


def test_sandbox_gvisor_0_skips_both_scripts(docker_api):
    before = engine_runtimes(docker_api), DAEMON_JSON.read_bytes() if DAEMON_JSON.exists() else None
    for name in ("ensure_gvisor.sh", "check_runtimes.sh"):
        skipped = run_script(name, SANDBOX_GVISOR="0")
        assert skipped.returncode == 0, skipped.stderr
        assert "skipped (SANDBOX_GVISOR=0)" in skipped.stderr
    assert (engine_runtimes(docker_api), DAEMON_JSON.read_bytes() if DAEMON_JSON.exists() else None) == before
    check_leftovers(docker_api)


def test_a_fresh_daemon_json_is_written_before_the_engine_starts_and_other_keys_kept(tmp_path, gvisor):
    # No engine answers (a `docker` that fails): the file is written for the
    # engine to read when it starts, and no engine is signalled.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "docker").chmod(0o755)
    daemon_json = tmp_path / "etc-docker" / "daemon.json"
    daemon_json.parent.mkdir()
    daemon_json.write_text('{"log-level": "warn", "runtimes": {"kata": {"path": "/usr/bin/kata-runtime"}}}\n')
    env = dict(
        PATH=f"{bin_dir}:{os.environ['PATH']}",
        DOCKER_DAEMON_JSON=str(daemon_json),
        DOCKER_PIDFILE=str(tmp_path / "no.pid"),
    )
    first = run_script("ensure_gvisor.sh", **env)
    assert first.returncode == 0, first.stderr
    assert "the engine is not running; it reads" in first.stderr
    config = json.loads(daemon_json.read_text())
    assert config["log-level"] == "warn"
    assert set(config["runtimes"]) == {"kata", *GVISOR_RUNTIMES}
    written = daemon_json.read_bytes()
    second = run_script("ensure_gvisor.sh", **env)
    assert second.returncode == 0, second.stderr
    assert daemon_json.read_bytes() == written
    assert "registered" not in second.stderr


def test_runtimes_missing_from_a_running_engine_are_registered_and_the_engine_reloaded(docker_api, gvisor):
    original = DAEMON_JSON.read_bytes()
    config = json.loads(original)
    without = {**config, "runtimes": {k: v for k, v in config["runtimes"].items() if k not in GVISOR_RUNTIMES}}
    try:
        DAEMON_JSON.write_text(json.dumps(without))
        reload_engine()
        wait_for_runtimes(docker_api, offered=False)

        ensured = run_script("ensure_gvisor.sh")
        assert ensured.returncode == 0, ensured.stderr
        assert "reloading the engine (SIGHUP to dockerd" in ensured.stderr
        assert "the engine offers runc, runsc runsc-network" in ensured.stderr
        assert json.loads(DAEMON_JSON.read_text()) == config
        assert all(name in engine_runtimes(docker_api) for name in GVISOR_RUNTIMES)
    finally:
        # The operator's own file back, byte for byte, and the engine with it.
        if DAEMON_JSON.read_bytes() != original:
            DAEMON_JSON.write_bytes(original)
            reload_engine()
        wait_for_runtimes(docker_api, offered=True)
