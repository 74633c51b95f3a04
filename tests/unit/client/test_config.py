"""sandbox_mesh.config: flags, else environment, else a `make up` mesh's defaults."""

from __future__ import annotations

import json

import pytest

from sandbox_mesh.config import DEFAULT_TENANT, DEFAULT_URL, ConfigError, find_env_file, resolve, tenant_key


def env_file(folder, keys):
    path = folder / ".env"
    path.write_text(f"OTHER=1\nCONTROL_TENANT_KEYS={json.dumps(keys)}\n")
    return path


def test_defaults_read_the_demo_key_from_the_env_file(tmp_path):
    path = env_file(tmp_path, {"demo": "k-demo", "other": "k-other"})
    connection = resolve(environ={}, env_file=path)
    assert (connection.url, connection.tenant, connection.key) == (DEFAULT_URL, DEFAULT_TENANT, "k-demo")
    assert "k-demo" not in repr(connection)


def test_flags_beat_the_environment(tmp_path):
    environ = {"SANDBOX_URL": "env:1", "SANDBOX_TENANT": "envt", "SANDBOX_KEY": "envk"}
    assert resolve(environ=environ, env_file=tmp_path / "none") == resolve("env:1", "envt", "envk", environ={})
    flagged = resolve("flag:2", "flagt", "flagk", environ=environ)
    assert (flagged.url, flagged.tenant, flagged.key) == ("flag:2", "flagt", "flagk")


def test_key_sources_in_order(tmp_path):
    path = env_file(tmp_path, {"demo": "from-file"})
    assert tenant_key("demo", path, {}) == "from-file"
    assert tenant_key("demo", path, {"CONTROL_TENANT_KEYS": '{"demo": "from-env"}'}) == "from-env"
    assert tenant_key("demo", path, {"SANDBOX_TENANT_KEY": "legacy"}) == "legacy"
    assert tenant_key("demo", path, {"SANDBOX_KEY": "key", "SANDBOX_TENANT_KEY": "legacy"}) == "key"


def test_a_missing_key_says_what_to_set(tmp_path):
    with pytest.raises(ConfigError, match="SANDBOX_KEY"):
        tenant_key("nobody", env_file(tmp_path, {"demo": "k"}), {})
    with pytest.raises(ConfigError, match="not JSON"):
        tenant_key("demo", None, {"CONTROL_TENANT_KEYS": "{oops"})


def test_an_empty_key_means_an_insecure_control():
    assert resolve("u", "t", "", environ={}).key == ""


def test_the_env_file_is_found_in_a_parent(tmp_path):
    path = env_file(tmp_path, {})
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    assert find_env_file(nested) == path.resolve()
