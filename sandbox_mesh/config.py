"""Where the mesh is and who calls it. Each setting comes from the first of:
a flag (or argument), the environment, the config file, the defaults of a
mesh `make up` started on this machine.

    url     --url     SANDBOX_URL     config `url`     127.0.0.1:50061
    tenant  --tenant  SANDBOX_TENANT  config `tenant`  demo
    key     --key     SANDBOX_KEY (or SANDBOX_TENANT_KEY, as for services.control.sign),
            else config `key` or `key_file` (for the config file's tenant only),
            else the tenant's entry of CONTROL_TENANT_KEYS in the environment
            or in the `.env` file `make up` keeps (the current directory's or
            the nearest parent's)

The config file is $SANDBOX_CONFIG (which must exist), else
$XDG_CONFIG_HOME/sandbox-mesh/config.toml (XDG_CONFIG_HOME defaults to
~/.config) when it exists:

    url = "mesh.internal:50061"
    tenant = "analytics"
    key_file = "analytics.key"   # relative to the config file; or key = "..."
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import tomllib
from collections.abc import Mapping

DEFAULT_URL = "127.0.0.1:50061"
DEFAULT_TENANT = "demo"
ENV_FILE = ".env"
CONFIG_ENV = "SANDBOX_CONFIG"
CONFIG_RELATIVE = pathlib.Path("sandbox-mesh", "config.toml")
CONFIG_KEYS = ("url", "tenant", "key", "key_file")


class ConfigError(Exception):
    """The connection cannot be worked out; the message says what to set."""


@dataclasses.dataclass(frozen=True)
class Connection:
    url: str
    tenant: str
    # Empty for a control running insecure (CONTROL_INSECURE=1, no keys).
    key: str = dataclasses.field(repr=False, default="")


@dataclasses.dataclass(frozen=True)
class FileConfig:
    """What a config file says; None where it says nothing."""

    url: str | None = None
    tenant: str | None = None
    key: str | None = dataclasses.field(repr=False, default=None)


def find_env_file(start: pathlib.Path | None = None) -> pathlib.Path | None:
    """The `.env` of the current directory or its nearest parent holding one."""
    here = (start or pathlib.Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / ENV_FILE
        if candidate.is_file():
            return candidate
    return None


def find_config_file(environ: Mapping[str, str] | None = None) -> pathlib.Path | None:
    """$SANDBOX_CONFIG, else the XDG config file when it exists. Only the
    given environment is read (HOME included), so tests stay hermetic."""
    env = os.environ if environ is None else environ
    if env.get(CONFIG_ENV):
        return pathlib.Path(env[CONFIG_ENV]).expanduser()
    base = env.get("XDG_CONFIG_HOME") or (str(pathlib.Path(env["HOME"], ".config")) if env.get("HOME") else "")
    if not base:
        return None
    candidate = pathlib.Path(base) / CONFIG_RELATIVE
    return candidate if candidate.is_file() else None


def read_config_file(path: pathlib.Path) -> FileConfig:
    """A config file's settings; ConfigError names the file and the mistake."""
    try:
        with path.open("rb") as source:
            values = tomllib.load(source)
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: not TOML: {exc}") from None
    for name, value in values.items():
        if name not in CONFIG_KEYS:
            raise ConfigError(f"config file {path}: unknown setting {name!r} (known: {', '.join(CONFIG_KEYS)})")
        if not isinstance(value, str):
            raise ConfigError(f"config file {path}: {name} must be a string")
    if "key" in values and "key_file" in values:
        raise ConfigError(f"config file {path}: set key or key_file, not both")
    key = values.get("key")
    if "key_file" in values:
        key_path = path.parent / pathlib.Path(values["key_file"]).expanduser()
        try:
            key = key_path.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"config file {path}: key_file {key_path}: {exc.strerror or exc}") from None
    return FileConfig(url=values.get("url"), tenant=values.get("tenant"), key=key)


def _keys_in_env_file(env_file: pathlib.Path) -> str:
    raw = ""
    for line in env_file.read_text().splitlines():
        if line.startswith("CONTROL_TENANT_KEYS="):
            raw = line.partition("=")[2].strip().strip("'")
    return raw


def tenant_key(
    tenant: str,
    env_file: pathlib.Path | None,
    environ: Mapping[str, str] | None = None,
    configured: str | None = None,
) -> str:
    """The tenant's key: SANDBOX_KEY or SANDBOX_TENANT_KEY, else `configured`
    (the config file's), else the tenant's entry of CONTROL_TENANT_KEYS in
    the environment or in `env_file`."""
    env = os.environ if environ is None else environ
    for name in ("SANDBOX_KEY", "SANDBOX_TENANT_KEY"):
        if env.get(name):
            return env[name]
    if configured is not None:
        return configured
    raw = env.get("CONTROL_TENANT_KEYS", "")
    where = "CONTROL_TENANT_KEYS"
    if not raw and env_file is not None and env_file.exists():
        raw = _keys_in_env_file(env_file)
        where = f"CONTROL_TENANT_KEYS in {env_file}"
    try:
        keys = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where} is not JSON: {exc}") from None
    if not isinstance(keys, dict) or not isinstance(keys.get(tenant), str):
        place = f"CONTROL_TENANT_KEYS (or {env_file})" if env_file else "CONTROL_TENANT_KEYS"
        raise ConfigError(
            f"no key for tenant {tenant!r}: set SANDBOX_KEY, a config file's key, or {place} must name it"
        )
    return keys[tenant]


def resolve(
    url: str | None = None,
    tenant: str | None = None,
    key: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    env_file: pathlib.Path | None = None,
    config_file: pathlib.Path | None = None,
) -> Connection:
    """Each of url, tenant and key from its argument, else the environment,
    else the config file (`config_file`, else find_config_file()), else the
    defaults; a key given as "" means an insecure control."""
    env = os.environ if environ is None else environ
    path = config_file if config_file is not None else find_config_file(env)
    configured = read_config_file(path) if path is not None else FileConfig()
    url = url or env.get("SANDBOX_URL") or configured.url or DEFAULT_URL
    tenant = tenant or env.get("SANDBOX_TENANT") or configured.tenant or DEFAULT_TENANT
    if key is None:
        # The file's key belongs to the file's tenant: calling as another
        # tenant (a flag, SANDBOX_TENANT) must not sign with it.
        file_key = configured.key if tenant == (configured.tenant or DEFAULT_TENANT) else None
        key = tenant_key(tenant, env_file if env_file is not None else find_env_file(), env, file_key)
    return Connection(url=url, tenant=tenant, key=key)
