"""The pure parts of `sandboxctl doctor`: verdicts, thresholds, formatting, exit code."""

from __future__ import annotations

import datetime
import json
import pathlib

from sandbox_mesh import doctor
from sandbox_mesh.doctor import FAIL, PASS, WARN, Check

UTC = datetime.UTC


def test_exit_code_is_non_zero_only_on_a_failure() -> None:
    assert doctor.exit_code([Check("a", PASS, ""), Check("b", WARN, "", "x")]) == 0
    assert doctor.exit_code([Check("a", PASS, ""), Check("b", FAIL, "", "x")]) == 1


def test_format_shows_the_fix_only_when_not_passing() -> None:
    assert "fix" not in doctor.format_check(Check("engine", PASS, "Docker 27", "never shown"))
    text = doctor.format_check(Check("images", FAIL, "missing: x", "make images"))
    assert text.startswith("fail  images")
    assert text.splitlines()[1].strip() == "fix: make images"


def test_json_lists_every_check() -> None:
    value = doctor.as_json([Check("a", PASS, "ok"), Check("b", FAIL, "bad", "fix it")])
    assert json.loads(json.dumps(value)) == {
        "ok": False,
        "checks": [
            {"name": "a", "status": "pass", "detail": "ok", "fix": ""},
            {"name": "b", "status": "fail", "detail": "bad", "fix": "fix it"},
        ],
    }


def test_runtimes_gvisor_missing_is_a_warning_runc_missing_a_failure() -> None:
    assert doctor.runtimes_status({"runc": {}, "runsc": {}, "runsc-network": {}}).status == PASS
    warned = doctor.runtimes_status({"runc": {}})
    assert warned.status == WARN and "ensure_gvisor.sh" in warned.fix
    assert doctor.runtimes_status({"runsc": {}}).status == FAIL


def test_disk_thresholds() -> None:
    where = pathlib.Path("/w")
    gib = 1024**3
    assert doctor.disk_status(where, 3 * gib, 50, 100).status == PASS
    assert doctor.disk_status(where, 1 * gib, 50, 100).status == WARN
    assert doctor.disk_status(where, 3 * gib, 5, 100).status == WARN
    # No inode counts (some filesystems): judged on bytes alone.
    assert doctor.disk_status(where, 3 * gib, 0, 0).status == PASS


def test_nearest_existing_parent(tmp_path: pathlib.Path) -> None:
    assert doctor.nearest_existing(tmp_path / "not" / "yet") == tmp_path


def test_engine_time_with_nanoseconds() -> None:
    parsed = doctor.parse_engine_time("2026-11-29T14:17:42.5662348Z")
    assert parsed == datetime.datetime(2026, 11, 29, 14, 17, 42, 566234, tzinfo=UTC)
    assert doctor.parse_engine_time("2026-11-29T14:17:42Z").second == 42
    assert doctor.parse_engine_time("2026-11-29T15:17:42.5+01:00").hour == 15


def test_clock_skew_threshold() -> None:
    now = datetime.datetime(2026, 1, 1, tzinfo=UTC)
    assert doctor.clock_status(now + datetime.timedelta(seconds=4), now).status == PASS
    assert doctor.clock_status(now - datetime.timedelta(seconds=6), now).status == FAIL


def test_env_file_modes(tmp_path: pathlib.Path) -> None:
    env = tmp_path / ".env"
    assert doctor.env_file_check(env).status == WARN
    assert doctor.env_file_check(None).status == WARN
    env.write_text("CONTROL_TENANT_KEYS={}\n")
    env.chmod(0o600)
    assert doctor.env_file_check(env).status == PASS
    env.chmod(0o644)
    failed = doctor.env_file_check(env)
    assert failed.status == FAIL and failed.fix == "chmod 600 .env"


def test_key_source_names_where_the_key_came_from(tmp_path: pathlib.Path) -> None:
    env = tmp_path / ".env"
    assert doctor.key_source("k", {}, env) == "--key"
    assert doctor.key_source(None, {"SANDBOX_KEY": "k"}, env) == "SANDBOX_KEY"
    assert doctor.key_source(None, {}, env) == f"CONTROL_TENANT_KEYS in {env}"


def test_secrets_present_long_enough_and_their_files_private(tmp_path: pathlib.Path) -> None:
    env = tmp_path / ".env"
    env.write_text("SERVICE_SECRET=" + "a" * 32 + "\nEGRESS_SECRET=" + "b" * 32 + '\nCONTROL_TENANT_KEYS={"t": "k"}\n')
    assert doctor.secrets_check(env, environ={}).status == PASS
    short = doctor.secrets_check(env, environ={"EGRESS_SECRET": "short"})
    assert short.status == FAIL and "EGRESS_SECRET shorter" in short.detail
    missing = doctor.secrets_check(None, environ={})
    assert missing.status == WARN and "SERVICE_SECRET" in missing.detail and "make up" in missing.fix
    secret_file = tmp_path / "egress.secret"
    secret_file.write_text("c" * 32)
    secret_file.chmod(0o600)
    with_file = {"EGRESS_SECRET_FILE": str(secret_file)}
    assert doctor.secrets_check(env, environ=with_file).status == PASS
    secret_file.chmod(0o644)
    loose = doctor.secrets_check(env, environ=with_file)
    assert loose.status == FAIL and "mode 0644" in loose.detail
    assert loose.fix == f"chmod 600 {secret_file}"
