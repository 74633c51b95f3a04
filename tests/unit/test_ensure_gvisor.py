"""scripts/ensure_gvisor.sh where gVisor cannot be had: one line says why, the
set-up goes on (exit 0). Run with a PATH of stand-ins (no runsc, an apt that
offers none or fails), so nothing is installed and no engine is touched."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "ensure_gvisor.sh"
REAL_TOOLS = ("awk", "cat", "dirname", "env", "grep", "sleep", "tr")


def stand_ins(tmp_path: pathlib.Path, candidate: str, install_status: int) -> pathlib.Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in REAL_TOOLS:
        real = shutil.which(tool)
        assert real, tool
        (bin_dir / tool).symlink_to(real)
    calls = tmp_path / "calls"
    scripts = {
        "id": "echo 0",
        "apt-cache": f'echo "runsc:"; echo "  Installed: (none)"; echo "  Candidate: {candidate}"',
        # update succeeds; install exits with install_status
        "apt-get": f'echo "apt-get $*" >>"{calls}"; case " $* " in *" install "*) exit {install_status};; esac',
        "docker": f'echo "docker $*" >>"{calls}"; exit 1',
    }
    for name, body in scripts.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    return bin_dir


def ensure(tmp_path: pathlib.Path, bin_dir: pathlib.Path, **env: str) -> subprocess.CompletedProcess:
    bash = shutil.which("bash")
    assert bash
    environment = {
        "PATH": str(bin_dir),
        "HOME": str(tmp_path),
        "DOCKER_DAEMON_JSON": str(tmp_path / "daemon.json"),
        "DOCKER_PIDFILE": str(tmp_path / "no.pid"),
        **env,
    }
    return subprocess.run([bash, str(SCRIPT)], env=environment, capture_output=True, text=True, check=False)


def unavailable_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("gVisor (runsc) unavailable: ")]


def calls(tmp_path: pathlib.Path) -> list[str]:
    path = tmp_path / "calls"
    return path.read_text().splitlines() if path.exists() else []


def test_no_candidate_after_an_update_is_one_line_and_exit_0(tmp_path):
    bin_dir = stand_ins(tmp_path, candidate="(none)", install_status=0)
    result = ensure(tmp_path, bin_dir)
    assert result.returncode == 0, result.stderr
    assert unavailable_lines(result.stderr) == [
        "gVisor (runsc) unavailable: the distribution offers no runsc package"
        " (apt-cache policy runsc: no candidate); sandboxes run on runc only"
    ]
    assert [c.split()[:2] for c in calls(tmp_path)] == [["apt-get", "update"]], "no install tried, no engine asked"
    assert not (tmp_path / "daemon.json").exists()


def test_a_failing_install_is_one_line_and_exit_0(tmp_path):
    bin_dir = stand_ins(tmp_path, candidate="0.0~20221219.0-2", install_status=100)
    result = ensure(tmp_path, bin_dir)
    assert result.returncode == 0, result.stderr
    assert unavailable_lines(result.stderr) == [
        "gVisor (runsc) unavailable: apt-get install runsc failed; sandboxes run on runc only"
    ]
    assert [c.split()[:2] for c in calls(tmp_path)] == [["apt-get", "install"]], "a candidate needs no update"
    assert not (tmp_path / "daemon.json").exists()


def test_without_apt_it_says_so(tmp_path):
    bin_dir = stand_ins(tmp_path, candidate="(none)", install_status=0)
    (bin_dir / "apt-get").unlink()
    result = ensure(tmp_path, bin_dir)
    assert result.returncode == 0, result.stderr
    assert unavailable_lines(result.stderr) == [
        "gVisor (runsc) unavailable: no runsc on PATH and no apt-get to install it; sandboxes run on runc only"
    ]


def test_sandbox_gvisor_0_skips_everything(tmp_path):
    bin_dir = stand_ins(tmp_path, candidate="(none)", install_status=0)
    result = ensure(tmp_path, bin_dir, SANDBOX_GVISOR="0")
    assert result.returncode == 0, result.stderr
    assert "skipped (SANDBOX_GVISOR=0)" in result.stderr
    assert unavailable_lines(result.stderr) == []
    assert calls(tmp_path) == []


@pytest.mark.parametrize("name", ["ensure_gvisor.sh", "check_runtimes.sh"])
def test_the_scripts_make_runs_are_executable(name):
    assert os.access(ROOT / "scripts" / name, os.X_OK)
