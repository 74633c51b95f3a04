"""The mesh a benchmark calls: one it starts in-process (control on SQLite
in a temporary directory and one spawner, both on 127.0.0.1:0, with names,
workspace root and labels of their own, all removed at the end), or the one
`make up` started (--target), called as a tenant the way clients call it."""

from __future__ import annotations

import contextlib
import dataclasses
import pathlib
import secrets
import shutil
import tempfile
from collections.abc import Iterator

import docker
import grpc
from pydantic import SecretStr

from sandbox.control.v1 import control_pb2_grpc
from sandbox_mesh.config import ConfigError, tenant_key
from services.common.auth import TenantClientInterceptor
from services.control.config import ControlSettings
from services.control.server import start as start_control
from services.spawner import sandbox
from services.spawner.config import SpawnerSettings
from services.spawner.server import start as start_spawner

MIB = 1024 * 1024
OWN_TENANT = "bench"
CAPACITY = 4


@dataclasses.dataclass
class Mesh:
    """What the figures need to know about the mesh they call."""

    address: str
    tenant: str
    key: str
    own: bool
    # The spawner's settings where the bench started it (None with --target).
    spawner: SpawnerSettings | None = None
    notes: list[str] = dataclasses.field(default_factory=list)

    @contextlib.contextmanager
    def stub(self) -> Iterator[control_pb2_grpc.ControlStub]:
        # Output chunks and the finished record stay far below gRPC's default 4 MiB.
        with grpc.insecure_channel(self.address) as channel:
            grpc.channel_ready_future(channel).result(timeout=15)
            signed = grpc.intercept_channel(channel, TenantClientInterceptor(self.tenant, self.key.encode()))
            yield control_pb2_grpc.ControlStub(signed)


def has_setting(name: str) -> bool:
    """Whether this tree's spawner knows a setting (work landing meanwhile
    adds some: the warm pool, the hand-off)."""
    return name in SpawnerSettings.model_fields


def target_mesh(address: str, tenant: str, env_file: pathlib.Path) -> Mesh:
    try:
        return Mesh(address, tenant, tenant_key(tenant, env_file), own=False)
    except ConfigError as exc:
        raise SystemExit(str(exc)) from None


def spawner_settings(name: str, root: str, secret: str, *, max_output_bytes: int, warm_pool: str, handoff: str):
    values: dict[str, object] = dict(
        listen="127.0.0.1:0",
        # No metrics endpoint: its default port is the one a mesh from `make up` publishes.
        metrics_listen="",
        name=name,
        workspace_root=root,
        capacity=CAPACITY,
        secret=secret,
        default_timeout_ms=20_000,
        max_timeout_ms=120_000,
        max_output_bytes=max_output_bytes,
        drain_seconds=5,
    )
    notes = []
    if has_setting("warm_pool"):
        values["warm_pool"] = warm_pool
        notes.append(f"spawner warm pool: {warm_pool!r}")
    else:
        notes.append("spawner warm pool: not available in this tree (every execution takes the cold path)")
    if handoff and has_setting("handoff"):
        values["handoff"] = handoff
        notes.append(f"spawner hand-off: {handoff}")
    elif handoff:
        notes.append(f"spawner hand-off {handoff!r}: not available in this tree")
    return SpawnerSettings(**values), notes  # type: ignore[arg-type]


def leftover_containers(api: docker.APIClient, name: str) -> list[str]:
    found = api.containers(all=True, filters={"label": [f"{sandbox.LABEL_SPAWNER}={name}"]})
    return [c["Id"] for c in found]


@contextlib.contextmanager
def own_mesh(*, max_output_bytes: int, warm_pool: str, handoff: str) -> Iterator[Mesh]:
    """Control (SQLite) and one spawner in this process; everything they made
    is removed at the end (the spawner's own shutdown first, then whatever
    still carries its label)."""
    name = f"bench-{secrets.token_hex(4)}"
    root = tempfile.mkdtemp(prefix="bench-workspaces-")
    data = tempfile.mkdtemp(prefix="bench-control-")
    secret, key = secrets.token_hex(32), secrets.token_hex(16)
    settings, notes = spawner_settings(
        name, root, secret, max_output_bytes=max_output_bytes, warm_pool=warm_pool, handoff=handoff
    )
    spawner = control = None
    api = docker.APIClient(version="auto")
    try:
        spawner = start_spawner(settings)
        control = start_control(
            ControlSettings(
                listen="127.0.0.1:0",
                data_dir=data,
                spawners=(f"127.0.0.1:{spawner.port}",),
                spawner_secret=SecretStr(secret),
                tenant_keys={OWN_TENANT: SecretStr(key)},
                # The bench's one tenant may fill every slot (concurrency 4) and
                # run all day long without meeting a budget.
                max_in_flight=2 * CAPACITY,
                slot_share=1.0,
                daily_cpu_seconds=1e9,
                daily_slot_seconds=1e9,
                default_timeout_ms=20_000,
                max_timeout_ms=120_000,
            )
        )
        yield Mesh(f"127.0.0.1:{control.port}", OWN_TENANT, key, own=True, spawner=settings, notes=notes)
    finally:
        if control is not None:
            control.stop(grace_seconds=5)
        if spawner is not None:
            spawner.stop(grace_seconds=5)
        for container in leftover_containers(api, name):
            with contextlib.suppress(docker.errors.APIError):
                api.remove_container(container, force=True, v=True)
        api.close()
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(data, ignore_errors=True)
