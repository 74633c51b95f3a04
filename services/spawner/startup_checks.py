"""What the spawner checks once, at start, so that it refuses to start
rather than fail every execution."""

from __future__ import annotations

from services.spawner.config import SpawnerSettings
from services.spawner.workspace import WorkspaceLimits, check_can_create


class ConfigurationError(Exception):
    pass


def check_workspaces(settings: SpawnerSettings) -> None:
    """Every workspace is a filesystem the spawner makes and mounts: refuse
    to start where it cannot, rather than fail every execution."""
    try:
        check_can_create(
            settings.workspace_root, WorkspaceLimits(settings.max_workspace_bytes, settings.max_workspace_inodes)
        )
    except Exception as exc:
        raise ConfigurationError(
            f"cannot make a workspace under SPAWNER_WORKSPACE_ROOT={settings.workspace_root!r} ({exc!r}); "
            "the spawner must run as root with CAP_SYS_ADMIN, /dev/loop-control, access to loop "
            "devices and mkfs.ext4"
        ) from exc


def checked_ca_cert(path: str) -> str:
    """The intercepting egress's CA certificate is mounted into sandboxes:
    make sure it is a certificate and that no key came along with it."""
    try:
        with open(path, encoding="ascii", errors="replace") as file:
            pem = file.read()
    except OSError as exc:
        raise ConfigurationError(f"SPAWNER_EGRESS_CA_CERT: {exc}") from None
    if "PRIVATE KEY" in pem:
        raise ConfigurationError("SPAWNER_EGRESS_CA_CERT holds a private key; mount the certificate only")
    if "BEGIN CERTIFICATE" not in pem:
        raise ConfigurationError("SPAWNER_EGRESS_CA_CERT is not a PEM certificate")
    return path
