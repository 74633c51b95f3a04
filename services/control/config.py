"""Control settings, read from CONTROL_* environment variables, and the
limits built from them.

Each field's docstring is its line in the README's configuration table
(scripts/gen_config_docs.py); docs/control.md explains them (artifact and
pre-staging caps in docs/control-artifacts.md and docs/control-runs.md). The domain services
take their limits as the plain objects below, built here from the settings
and handed to them by server.py; none reads the environment itself.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from services.common.contract.limits import MIN_TIMEOUT_MS, RequestLimits
from services.common.settings import CommaList

# The mesh's own request limits (MESH_*): an artifact within them can always
# be staged, and so can the outputs of an earlier run pre-staged within them.
MESH_LIMITS = RequestLimits()


MIB = 1024 * 1024
GIB = 1024 * MIB
SECONDS_PER_HOUR = 3600

# Quota defaults (per tenant; see ControlSettings).
DEFAULT_MAX_IN_FLIGHT = 4
DEFAULT_DAILY_CPU_SECONDS = 3600.0
# Four slots held all day long would take 24 x 4 hours.
DEFAULT_DAILY_SLOT_SECONDS = 4.0 * SECONDS_PER_HOUR
DEFAULT_SLOT_SHARE = 0.5
# Previews alone (two of CONTROL_PREVIEW_BYTES each) make at most about
# 2.5 GiB of 20,000 records.
DEFAULT_MAX_STORED_EXECUTIONS = 20_000
DEFAULT_MAX_STORED_OUTPUT_BYTES = 1 * GIB
DEFAULT_MAX_STORED_ARTIFACTS = 1_000
DEFAULT_MAX_STORED_ARTIFACT_BYTES = 256 * MIB
DEFAULT_RETENTION_DAYS = 30.0
DEFAULT_QUEUE_TIMEOUT_SECONDS = 30.0


@dataclasses.dataclass(frozen=True)
class QuotaLimits:
    """One tenant's quota: what it may run (in flight, CPU and slot time per
    UTC day, its share of the mesh's slots) and what it may keep."""

    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    daily_cpu_seconds: float = DEFAULT_DAILY_CPU_SECONDS
    daily_slot_seconds: float = DEFAULT_DAILY_SLOT_SECONDS
    # The most slots the tenant may hold at once is
    # max(1, floor(the mesh's slots x slot_share)).
    slot_share: float = DEFAULT_SLOT_SHARE
    max_stored_executions: int = DEFAULT_MAX_STORED_EXECUTIONS
    max_stored_output_bytes: int = DEFAULT_MAX_STORED_OUTPUT_BYTES
    max_stored_artifacts: int = DEFAULT_MAX_STORED_ARTIFACTS
    max_stored_artifact_bytes: int = DEFAULT_MAX_STORED_ARTIFACT_BYTES


def default_quota(tenant: str) -> QuotaLimits:
    """Every tenant's quota when no settings say otherwise."""
    return QuotaLimits()


# The keys of a CONTROL_TENANT_QUOTAS entry, and the type of each value (as
# annotated: a name, with postponed annotations).
QUOTA_KEYS = {field.name: field.type for field in dataclasses.fields(QuotaLimits)}


@dataclasses.dataclass(frozen=True)
class ExecutionLimits:
    """What one execution may ask for, and what its record keeps."""

    default_timeout_ms: int
    max_timeout_ms: int
    # Bytes of stdout and of stderr kept in the record.
    preview_bytes: int
    # The mesh's size and count limits, checked at control's door.
    requests: RequestLimits = MESH_LIMITS
    # The longest an execution waits in the queue for a slot (the caller's
    # own deadline may cut it shorter).
    max_queue_seconds: float = DEFAULT_QUEUE_TIMEOUT_SECONDS
    # Finished executions are deleted this long after they finished (0: kept).
    retention_days: float = DEFAULT_RETENTION_DAYS


@dataclasses.dataclass(frozen=True)
class ArtifactLimits:
    """Caps of one artifact."""

    max_files: int = MESH_LIMITS.max_files
    max_file_bytes: int = MESH_LIMITS.max_file_bytes
    max_total_bytes: int = MESH_LIMITS.max_total_file_bytes
    max_path_length: int = MESH_LIMITS.max_path_length
    max_packages: int = MESH_LIMITS.max_packages

    @classmethod
    def of(cls, limits: RequestLimits) -> ArtifactLimits:
        """An artifact is staged as one request: its caps are the request's."""
        return cls(
            limits.max_files,
            limits.max_file_bytes,
            limits.max_total_file_bytes,
            limits.max_path_length,
            limits.max_packages,
        )


@dataclasses.dataclass(frozen=True)
class PrestageLimits:
    """Bounds of what one run pre-stages from an earlier one."""

    max_bytes: int = MESH_LIMITS.max_total_file_bytes
    max_files: int = MESH_LIMITS.max_files
    max_file_bytes: int = MESH_LIMITS.max_file_bytes
    max_path_length: int = MESH_LIMITS.max_path_length

    @classmethod
    def of(cls, limits: RequestLimits) -> PrestageLimits:
        """Prior outputs travel in the run's request: the request's caps bound them."""
        return cls(limits.max_total_file_bytes, limits.max_files, limits.max_file_bytes, limits.max_path_length)


class ControlSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONTROL_", frozen=True, use_attribute_docstrings=True)

    listen: str = "127.0.0.1:50061"
    """gRPC listen address."""
    metrics_listen: str = "127.0.0.1:9465"
    """Prometheus /metrics over HTTP (host:port; port 0 picks a free one); empty to turn off."""
    data_dir: str = "/var/lib/sandbox-mesh/control"
    """The SQLite database (when `CONTROL_DATABASE_URL` is empty) and the blob store of output and artifact files."""
    database_url: str = ""
    """SQLAlchemy URL, e.g. `postgresql+psycopg://user:pw@host/db`; empty: SQLite at `<data dir>/control.db` in WAL
    mode."""

    spawners: CommaList = ("127.0.0.1:50051",)
    """Spawner addresses (`host:port`), comma-separated."""
    spawner_secret: SecretStr | None = None
    """The spawners' `SPAWNER_SECRET`; every call to a spawner is signed with it."""
    tenant_keys: Annotated[dict[str, SecretStr], NoDecode] = Field(default_factory=dict)
    """Tenants and their keys, JSON `{"tenant": "key", ...}`; a caller proves its tenant by signing every call with
    its key (docs/control.md, Tenants)."""
    insecure: bool = False
    """Start without the two secrets above (unsigned spawner calls, tenant header trusted as sent); local
    development only."""

    # Per-tenant quota defaults, overridable per tenant with `tenant_quotas`
    # = JSON {"tenant": {"max_in_flight": 2, "daily_cpu_seconds": 60}}; its
    # keys are the names below (the fields of QuotaLimits).
    max_in_flight: int = Field(default=DEFAULT_MAX_IN_FLIGHT, ge=1)
    """Executions in flight (queued or running) per tenant."""
    daily_cpu_seconds: float = Field(default=DEFAULT_DAILY_CPU_SECONDS, ge=0)
    """CPU seconds per tenant per UTC day (pre-debited with the requested timeout)."""
    daily_slot_seconds: float = Field(default=DEFAULT_DAILY_SLOT_SECONDS, ge=0)
    """Wall-clock seconds holding a spawner slot per tenant per UTC day (sleeping counts)."""
    slot_share: float = Field(default=DEFAULT_SLOT_SHARE, gt=0, le=1)
    """A tenant holds at most max(1, floor(mesh slots × share)) slots at once, its other executions wait in the fair
    queue; set `1` for a single tenant."""
    # Storage: records of executions (runs included), bytes of their output
    # files, artifacts, bytes of artifact files.
    max_stored_executions: int = Field(default=DEFAULT_MAX_STORED_EXECUTIONS, ge=0)
    """Execution records kept per tenant (runs included)."""
    max_stored_output_bytes: int = Field(default=DEFAULT_MAX_STORED_OUTPUT_BYTES, ge=0)
    """Bytes of output files kept per tenant (more are dropped, named, `OUTPUT_LIMIT`)."""
    max_stored_artifacts: int = Field(default=DEFAULT_MAX_STORED_ARTIFACTS, ge=0)
    """Artifacts per tenant."""
    max_stored_artifact_bytes: int = Field(default=DEFAULT_MAX_STORED_ARTIFACT_BYTES, ge=0)
    """Bytes of artifact files per tenant."""
    tenant_quotas: Annotated[dict[str, dict[str, float]], NoDecode] = Field(default_factory=dict)
    """Per-tenant overrides of the eight limits above, by their names without the prefix: `{"t": {"max_in_flight":
    2, "daily_cpu_seconds": 60, "slot_share": 1}}`."""

    default_runtime: Literal["", "runc", "gvisor"] = ""
    """Sandbox runtime (`runc`, `gvisor`) of a request naming none; empty: the spawners' own default
    (`SPAWNER_DEFAULT_RUNTIME`)."""
    untrusted_tenants: CommaList = ()
    """Tenants whose executions always run on `gvisor`, whatever they ask (docs/security.md), comma-separated."""

    # Finished executions, their output files and runs are deleted this long
    # after they finished (0 keeps them); the sweeper looks this often.
    retention_days: float = Field(default=DEFAULT_RETENTION_DAYS, ge=0)
    """Finished executions, their files and runs, and the records of ended sessions, are deleted this long after
    they ended; `0` keeps them."""
    retention_sweep_seconds: float = Field(default=float(SECONDS_PER_HOUR), gt=0)
    """How often the retention sweeper looks."""

    # Timeout range; the requested timeout is what the CPU budget is
    # pre-debited with.
    default_timeout_ms: int = Field(default=10_000, ge=MIN_TIMEOUT_MS)
    """Timeout when a request asks for none."""
    max_timeout_ms: int = Field(default=300_000, ge=MIN_TIMEOUT_MS)
    """The longest timeout a request may ask for."""

    queue_timeout_seconds: float = Field(default=DEFAULT_QUEUE_TIMEOUT_SECONDS, ge=0)
    """Longest wait for a slot in the fair queue (a caller's own sooner deadline cuts it shorter); then
    `RESOURCE_EXHAUSTED`, nothing charged."""
    unhealthy_seconds: float = Field(default=10.0, ge=0)
    """A spawner whose call failed is skipped this long."""
    drain_seconds: float = Field(default=30.0, ge=0)
    """On SIGTERM: how long executions in flight may still finish (nothing new is admitted meanwhile) before the
    rest are cancelled."""
    flush_interval_seconds: float = Field(default=1.0, gt=0)
    """Heartbeats and preview writes of running executions are batched this often."""
    watchdog_interval_seconds: float = Field(default=5.0, gt=0)
    """How often the watchdog looks for executions whose heartbeat stopped."""
    watchdog_min_seconds: float = Field(default=10.0, ge=0)
    """The watchdog fails an execution whose heartbeat is older than max(2 × its timeout, this)."""
    replica_id: str = Field(
        default_factory=lambda: f"control-{secrets.token_hex(6)}", pattern=r"^[A-Za-z0-9_.-]{1,64}$"
    )
    """This replica's name in the records of the executions it admits. Give each replica its own stable name (a
    restart then settles what its previous run left at once); the default, a new random name per start, makes a
    restart wait for the previous name's lease to run out. Two live replicas must never share a name."""
    lease_seconds: float = Field(default=15.0, gt=0)
    """A replica's lease on its executions lasts this long past its latest renewal (renewed every third of it);
    more than any clock skew between replicas. Past it, other replicas settle what it relayed."""
    reconcile_interval_seconds: float = Field(default=2.0, gt=0)
    """How often control asks the spawners what runs there and settles the executions whose relay is gone (first
    right after start)."""
    session_spawner_grace_seconds: float = Field(default=10.0, ge=0)
    """Open sessions of a spawner that has not answered for this long are recorded `FAILED` (the session sweeper
    asks every `CONTROL_RECONCILE_INTERVAL_SECONDS`; a spawner that answers without them fails them at once)."""

    preview_bytes: int = Field(default=64 * 1024, ge=0)
    """Bytes of stdout and of stderr kept in the record."""

    # The mesh's size and count limits (MESH_*), the same numbers the spawner reads.
    limits: RequestLimits = Field(default_factory=RequestLimits)

    @field_validator("tenant_keys", "tenant_quotas", mode="before")
    @classmethod
    def _json(cls, value):
        if isinstance(value, str):
            return json.loads(value) if value.strip() else {}
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ControlSettings:
        if not self.default_timeout_ms <= self.max_timeout_ms:
            raise ValueError("default_timeout_ms must not exceed max_timeout_ms")
        if not self.spawners:
            raise ValueError("at least one spawner address is required")
        for tenant, limits in self.tenant_quotas.items():
            unknown = set(limits) - set(QUOTA_KEYS)
            if unknown:
                raise ValueError(f"tenant_quotas[{tenant!r}]: unknown keys {sorted(unknown)}")
            share = limits.get("slot_share", self.slot_share)
            if not 0 < share <= 1:
                raise ValueError(f"tenant_quotas[{tenant!r}]: slot_share must be in (0, 1]")
            if any(value < 0 for value in limits.values()):
                raise ValueError(f"tenant_quotas[{tenant!r}]: limits must not be negative")
        return self

    def quota_for(self, tenant: str) -> QuotaLimits:
        overrides = self.tenant_quotas.get(tenant, {})
        values: dict[str, Any] = {}  # int or float, as each field of QuotaLimits
        for name, kind in QUOTA_KEYS.items():
            value = overrides.get(name, getattr(self, name))
            values[name] = int(value) if kind == "int" else float(value)
        return QuotaLimits(**values)

    def execution_limits(self) -> ExecutionLimits:
        return ExecutionLimits(
            self.default_timeout_ms,
            self.max_timeout_ms,
            self.preview_bytes,
            requests=self.limits,
            max_queue_seconds=self.queue_timeout_seconds,
            retention_days=self.retention_days,
        )

    def artifact_limits(self) -> ArtifactLimits:
        return ArtifactLimits.of(self.limits)

    def prestage_limits(self) -> PrestageLimits:
        return PrestageLimits.of(self.limits)

    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir}/control.db"
