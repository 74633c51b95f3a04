"""The config file: where it is found, what it may say, and its place in the
precedence flags > environment > config file > .env."""

from __future__ import annotations

import json

import pytest

from sandbox_mesh.config import ConfigError, find_config_file, read_config_file, resolve


@pytest.fixture
def env_file(tmp_path):
    path = tmp_path / ".env"
    path.write_text(f"CONTROL_TENANT_KEYS={json.dumps({'demo': 'k-env-file', 'team': 'k-team-env-file'})}\n")
    return path


def config(folder, text):
    path = folder / "config.toml"
    path.write_text(text)
    return path


def test_the_file_beats_the_env_file_and_the_environment_beats_the_file(tmp_path, env_file):
    path = config(tmp_path, 'url = "file:1"\ntenant = "team"\nkey = "k-file"\n')
    from_file = resolve(environ={}, env_file=env_file, config_file=path)
    assert (from_file.url, from_file.tenant, from_file.key) == ("file:1", "team", "k-file")
    environ = {"SANDBOX_URL": "env:2", "SANDBOX_KEY": "k-env"}
    from_env = resolve(environ=environ, env_file=env_file, config_file=path)
    assert (from_env.url, from_env.tenant, from_env.key) == ("env:2", "team", "k-env")
    flagged = resolve("flag:3", "team", "k-flag", environ=environ, env_file=env_file, config_file=path)
    assert (flagged.url, flagged.key) == ("flag:3", "k-flag")


def test_the_files_key_is_only_for_the_files_tenant(tmp_path, env_file):
    path = config(tmp_path, 'tenant = "team"\nkey = "k-file"\n')
    other = resolve(tenant="demo", environ={}, env_file=env_file, config_file=path)
    assert (other.tenant, other.key) == ("demo", "k-env-file")
    by_env = resolve(environ={"SANDBOX_TENANT": "demo"}, env_file=env_file, config_file=path)
    assert by_env.key == "k-env-file"
    no_tenant = config(tmp_path, 'key = "k-demo-file"\n')
    assert resolve(environ={}, env_file=env_file, config_file=no_tenant).key == "k-demo-file"


def test_key_file_is_read_relative_to_the_config_file(tmp_path, env_file):
    (tmp_path / "team.key").write_text("k-from-key-file\n")
    path = config(tmp_path, 'tenant = "team"\nkey_file = "team.key"\n')
    assert read_config_file(path).key == "k-from-key-file"
    assert "k-from-key-file" not in repr(read_config_file(path))
    assert resolve(environ={}, env_file=env_file, config_file=path).key == "k-from-key-file"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('url = "a"\nkey = "k"\nkey_file = "f"\n', "key or key_file, not both"),
        ('uri = "a"\n', "unknown setting 'uri'"),
        ("url = 5\n", "url must be a string"),
        ("url = \n", "not TOML"),
        ('key_file = "missing.key"\n', "key_file"),
    ],
)
def test_a_bad_file_is_one_clear_error(tmp_path, text, message):
    path = config(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as caught:
        resolve(environ={}, config_file=path)
    assert str(path) in str(caught.value)


def test_where_the_file_is_found(tmp_path):
    explicit = tmp_path / "elsewhere.toml"
    assert find_config_file({"SANDBOX_CONFIG": str(explicit)}) == explicit
    with pytest.raises(ConfigError, match=r"elsewhere\.toml"):
        resolve(environ={"SANDBOX_CONFIG": str(explicit)})  # named, so it must exist
    assert find_config_file({"HOME": str(tmp_path)}) is None
    xdg = tmp_path / ".config" / "sandbox-mesh" / "config.toml"
    xdg.parent.mkdir(parents=True)
    xdg.write_text('url = "home:1"\nkey = ""\n')
    assert find_config_file({"HOME": str(tmp_path)}) == xdg
    other = tmp_path / "xdg"
    assert find_config_file({"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(other)}) is None
    assert resolve(environ={"HOME": str(tmp_path)}).url == "home:1"
    assert find_config_file({}) is None
