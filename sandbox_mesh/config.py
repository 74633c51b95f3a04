"""Where the mesh is and who calls it: flags, else the environment, else the
defaults of a mesh `make up` started on this machine.

    url     SANDBOX_URL     127.0.0.1:50061
    tenant  SANDBOX_TENANT  demo
    key     SANDBOX_KEY (or SANDBOX_TENANT_KEY, as for services.control.sign),
            else the tenant's entry of CONTROL_TENANT_KEYS in the environment
            or in the `.env` file `make up` keeps (the current directory's or
            the nearest parent's)
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from collections.abc import Mapping

DEFAULT_URL = "127.0.0.1:50061"
DEFAULT_TENANT = "demo"
ENV_FILE = ".env"


class ConfigError(Exception):
    """The connection cannot be worked out; the message says what to set."""


@dataclasses.dataclass(frozen=True)
class Connection:
    url: str
    tenant: str
    # Empty for a control running insecure (CONTROL_INSECURE=1, no keys).
    key: str = dataclasses.field(repr=False, default="")


def find_env_file(start: pathlib.Path | None = None) -> pathlib.Path | None:
    """The `.env` of the current directory or its nearest parent holding one."""
    here = (start or pathlib.Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / ENV_FILE
        if candidate.is_file():
            return candidate
    return None


def _keys_in_env_file(env_file: pathlib.Path) -> str:
    raw = ""
    for line in env_file.read_text().splitlines():
        if line.startswith("CONTROL_TENANT_KEYS="):
            raw = line.partition("=")[2].strip().strip("'")
    return raw


def tenant_key(tenant: str, env_file: pathlib.Path | None, environ: Mapping[str, str] | None = None) -> str:
    """The tenant's key: SANDBOX_KEY or SANDBOX_TENANT_KEY, else the tenant's
    entry of CONTROL_TENANT_KEYS in the environment or in `env_file`."""
    env = os.environ if environ is None else environ
    for name in ("SANDBOX_KEY", "SANDBOX_TENANT_KEY"):
        if env.get(name):
            return env[name]
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
        raise ConfigError(f"no key for tenant {tenant!r}: set SANDBOX_KEY, or {place} must name it")
    return keys[tenant]


def resolve(
    url: str | None = None,
    tenant: str | None = None,
    key: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    env_file: pathlib.Path | None = None,
) -> Connection:
    """Each of url, tenant and key from its argument, else the environment,
    else the defaults; a key given as "" means an insecure control."""
    env = os.environ if environ is None else environ
    url = url or env.get("SANDBOX_URL") or DEFAULT_URL
    tenant = tenant or env.get("SANDBOX_TENANT") or DEFAULT_TENANT
    if key is None:
        key = tenant_key(tenant, env_file if env_file is not None else find_env_file(), env)
    return Connection(url=url, tenant=tenant, key=key)
