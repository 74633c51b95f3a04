"""Egress settings, read from EGRESS_* environment variables (lists are
comma-separated, services/common/settings.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.settings import CommaList
from services.egress.audit import DEFAULT_RING_EXECUTIONS, DEFAULT_RING_SIZE
from services.egress.cache import DEFAULT_MAX_BYTES
from services.egress.refusal_limit import DEFAULT_BURST, DEFAULT_INTERVAL_SECONDS


class EgressSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EGRESS_", frozen=True, use_attribute_docstrings=True)

    listen: str = "127.0.0.1:3128"
    """Proxy listen address (compose: `0.0.0.0:3128`, on the sandboxes' networks only)."""
    allow_hosts: CommaList | None = None
    """Names and `*.suffix` wildcards the sandboxes may reach; unset: derived from the runtime image's own pip and
    npm settings (needs the Docker engine); empty: none."""
    runtime_image: str = "sandbox-mesh/runtime:local"
    """Image the allowlist is derived from."""
    mode: Literal["passthrough", "intercept"] = "passthrough"
    """`passthrough` (TLS end to end; names, addresses and SNI checked) or `intercept` (TLS terminated with the
    egress's CA; only reads reach the registries). `make up` sets `intercept`."""
    allow_plain_http: bool = False
    """Allow plain HTTP to port 80."""
    secret: SecretStr | None = None
    """HMAC secret for per-execution proxy credentials and gRPC calls (at least 16 bytes); this or
    `EGRESS_SECRET_FILE` is required."""
    secret_file: str | None = None
    """A file holding that secret instead."""
    hosts_file: str | None = None
    """hosts(5)-style file the egress's own resolver consults before DNS."""
    dns: bool = True
    """Fall back to the system resolver."""
    allow_networks: CommaList = ()
    """CIDRs exempt from the global-unicast rule (a LAN mirror, a TLS-intercepting gateway)."""
    own_addresses: CommaList = ()
    """Extra addresses of the proxy itself, always refused as destinations."""
    grpc_listen: str = "127.0.0.1:50053"
    """`sandbox.egress.v1.Egress` (admissions, decisions): `host:port` or `unix:PATH`; empty disables it, and with
    it every admission (every credential is then refused)."""
    upstream_ca: str | None = None
    """CA bundle for verifying upstream servers (intercept); unset: mitmproxy's bundle."""
    confdir: str = "/var/lib/sandbox-mesh/egress"
    """Intercept CA directory (key included; keep it persistent and private)."""
    ca_cert_export: str = ""
    """Intercept: the CA certificate alone is written here at every start, for the spawner to mount into sandboxes;
    empty: not written."""
    ring_size: int = Field(default=DEFAULT_RING_SIZE, ge=1)
    """Decisions kept in memory per execution (the in-memory decision ring)."""
    ring_executions: int = Field(default=DEFAULT_RING_EXECUTIONS, ge=1)
    """Executions whose decisions the ring keeps."""
    decision_log: str = ""
    """File for decision lines; empty: stdout."""
    refusal_log_burst: int = Field(default=DEFAULT_BURST, ge=1)
    """Refusal lines written per source (execution, else address) and interval; the rest are counted in one summary
    line."""
    refusal_log_interval_seconds: float = Field(default=DEFAULT_INTERVAL_SECONDS, gt=0)
    """That interval."""

    cache_dir: str = ""
    """Intercept: directory of the package cache (storage of the egress's own); empty: no cache (compose:
    `/var/lib/sandbox-mesh/egress-cache`)."""
    cache_max_bytes: int = Field(default=DEFAULT_MAX_BYTES, ge=1)
    """Size bound of the package cache, least recently used out first."""
    metrics_listen: str = ""
    """`host:port` of the egress's Prometheus `/metrics` (package cache); empty: not served."""

    @model_validator(mode="after")
    def _has_secret(self) -> EgressSettings:
        if not self.secret and not self.secret_file:
            raise ValueError("EGRESS_SECRET or EGRESS_SECRET_FILE is required")
        return self

    def listen_host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)
