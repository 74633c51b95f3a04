"""scripts/engine_runtimes.py: gVisor's two runtimes merged into daemon.json,
every other setting kept, a file already right never rewritten."""

from __future__ import annotations

import json
import pathlib
import stat
import subprocess
import sys

import pytest

from scripts import engine_runtimes
from scripts.engine_runtimes import DaemonJsonError, gvisor_runtimes, merge_runtimes, register

ROOT = pathlib.Path(__file__).resolve().parents[2]
RUNSC = "/opt/gvisor/bin/runsc"
WANTED = gvisor_runtimes(RUNSC)
# As an operator might have written it by hand: other keys, another runtime,
# its own layout.
HAND_WRITTEN = (
    '{"log-level": "warn",\n "storage-driver": "overlay2",\n "runtimes": {"kata": {"path": "/usr/bin/kata-runtime"}}}\n'
)


def test_both_runtimes_use_ptrace_one_without_network_one_in_the_containers_namespace():
    assert {
        "runsc": {"path": RUNSC, "runtimeArgs": ["--platform=ptrace", "--network=none"]},
        "runsc-network": {"path": RUNSC, "runtimeArgs": ["--platform=ptrace", "--network=host"]},
    } == WANTED


def test_merge_keeps_every_other_key_and_runtime():
    config = {"log-level": "warn", "default-runtime": "runc", "runtimes": {"kata": {"path": "/usr/bin/kata"}}}
    merged = merge_runtimes(config, WANTED)
    assert merged == {
        "log-level": "warn",
        "default-runtime": "runc",
        "runtimes": {"kata": {"path": "/usr/bin/kata"}, **WANTED},
    }
    assert config["runtimes"] == {"kata": {"path": "/usr/bin/kata"}}, "the input is not changed"


def test_merge_replaces_a_runtime_of_the_same_name_that_differs():
    config = {"runtimes": {"runsc": {"path": "/usr/local/bin/runsc", "runtimeArgs": ["--platform=kvm"]}}}
    assert merge_runtimes(config, WANTED)["runtimes"] == WANTED


def test_merge_is_idempotent():
    once = merge_runtimes({"debug": True}, WANTED)
    assert merge_runtimes(once, WANTED) == once


def test_a_name_the_engine_defines_elsewhere_is_not_written_again():
    merged = merge_runtimes({}, WANTED, defined_elsewhere=frozenset({"runsc"}))
    assert merged == {"runtimes": {"runsc-network": WANTED["runsc-network"]}}


@pytest.mark.parametrize("config", [{"runtimes": []}, {"runtimes": "runsc"}])
def test_runtimes_that_are_not_an_object_are_refused(config):
    with pytest.raises(DaemonJsonError, match="runtimes"):
        merge_runtimes(config, WANTED)


def test_a_missing_file_is_made_world_readable_with_both_runtimes(tmp_path):
    path = tmp_path / "docker" / "daemon.json"
    assert register(path, RUNSC, {}) is True
    assert json.loads(path.read_text()) == {"runtimes": WANTED}
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_a_second_run_leaves_the_file_byte_identical(tmp_path):
    path = tmp_path / "daemon.json"
    path.write_text(HAND_WRITTEN)
    path.chmod(0o600)
    assert register(path, RUNSC, {}) is True
    first = path.read_bytes()
    assert json.loads(first) == {
        "log-level": "warn",
        "storage-driver": "overlay2",
        "runtimes": {"kata": {"path": "/usr/bin/kata-runtime"}, **WANTED},
    }
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, "the file's mode is kept"
    assert register(path, RUNSC, {}) is False
    assert path.read_bytes() == first


def test_a_file_already_right_in_its_own_layout_is_not_rewritten(tmp_path):
    path = tmp_path / "daemon.json"
    runsc, runsc_network = json.dumps(WANTED["runsc"]), json.dumps(WANTED["runsc-network"])
    text = f'{{\n  "runtimes": {{\n    "runsc": {runsc},\n    "runsc-network": {runsc_network}\n  }}\n}}\n'
    path.write_text(text)
    engine = {"runc": {"path": "runc"}, **WANTED}
    assert register(path, RUNSC, engine) is False
    assert path.read_text() == text


def test_a_file_that_is_not_json_is_left_alone_and_named(tmp_path, capsys):
    path = tmp_path / "daemon.json"
    path.write_text('{"log-level": "warn",')
    assert engine_runtimes.main(["--daemon-json", str(path), "--runsc", RUNSC]) == 1
    assert path.read_text() == '{"log-level": "warn",'
    assert f"{path}: it is not valid JSON" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["daemon.json"], "no temporary file left"


def test_a_top_level_that_is_not_an_object_is_refused(tmp_path):
    path = tmp_path / "daemon.json"
    path.write_text("[]")
    with pytest.raises(DaemonJsonError, match="top level"):
        register(path, RUNSC, {})


def test_the_command_runs_on_the_standard_library_alone(tmp_path):
    # ensure_gvisor.sh runs it with the system's python3, before any virtualenv.
    path = tmp_path / "daemon.json"
    path.write_text(HAND_WRITTEN)
    engine = json.dumps({"runc": {"path": "runc"}, "kata": {"path": "/usr/bin/kata-runtime"}})
    command = [sys.executable, "-I", str(ROOT / "scripts" / "engine_runtimes.py")]
    command += ["--daemon-json", str(path), "--runsc", RUNSC, "--engine-runtimes", engine]
    outputs = [subprocess.run(command, capture_output=True, text=True, check=True).stdout for _ in range(2)]
    assert outputs == ["changed\n", "unchanged\n"]
    assert json.loads(path.read_text())["runtimes"] == {"kata": {"path": "/usr/bin/kata-runtime"}, **WANTED}
