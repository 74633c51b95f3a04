"""scripts/env_secrets.sh: the mesh's secrets are made once and kept private."""

from __future__ import annotations

import os
import pathlib
import stat
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
NAMES = ("SERVICE_SECRET", "EGRESS_SECRET", "CONTROL_TENANT_KEYS")


def source(env_file: pathlib.Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in NAMES} | {"PYTHON": sys.executable}
    script = f'source scripts/env_secrets.sh "{env_file}" && echo "SERVICE_SECRET is $SERVICE_SECRET"'
    return subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, check=True)


def test_an_env_file_made_world_readable_becomes_private(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("EGRESS_SECRET=" + "ab" * 32 + "\n")
    env_file.chmod(0o644)
    source(env_file)
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert "EGRESS_SECRET=" + "ab" * 32 in env_file.read_text()


def test_secrets_are_made_on_first_use_in_a_private_file_and_kept(tmp_path):
    env_file = tmp_path / ".env"
    first = source(env_file)
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    text = env_file.read_text()
    assert all(f"\n{name}=" in "\n" + text for name in NAMES)
    second = source(env_file)
    assert env_file.read_text() == text
    assert first.stdout.splitlines()[-1] == second.stdout.splitlines()[-1]


def test_the_old_name_of_the_service_secret_is_renamed_in_place(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("SANDBOX_SECRET=" + "cd" * 32 + "\n")
    out = source(env_file).stdout
    assert "SERVICE_SECRET=" + "cd" * 32 in env_file.read_text()
    assert out.splitlines()[-1] == "SERVICE_SECRET is " + "cd" * 32
