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
    model_config = SettingsConfigDict(env_prefix="EGRESS_", frozen=True)

    # Proxy listen address (compose: 0.0.0.0:3128 on the sandbox network only).
    listen: str = "127.0.0.1:3128"
    # Names and *.suffix wildcards. Unset: derived from the runtime image's
    # own pip and npm configuration (needs the Docker engine); empty: none.
    allow_hosts: CommaList | None = None
    runtime_image: str = "sandbox-mesh/runtime:local"
    mode: Literal["passthrough", "intercept"] = "passthrough"
    allow_plain_http: bool = False
    # HMAC secret for per-execution proxy credentials (or a file holding it).
    secret: SecretStr | None = None
    secret_file: str | None = None
    # hosts(5)-style file the egress's own resolver consults before DNS.
    hosts_file: str | None = None
    dns: bool = True
    # CIDRs exempt from the global-unicast rule, e.g. a private mirror.
    allow_networks: CommaList = ()
    own_addresses: CommaList = ()
    # sandbox.egress.v1.Egress gRPC service: host:port, or unix:PATH (compose:
    # a socket on a volume shared with the spawner only, out of the sandbox
    # network's reach); empty disables it (and with it every admission, so
    # every credential is refused).
    grpc_listen: str = "127.0.0.1:50053"
    # CA bundle for verifying upstream servers in intercept mode.
    upstream_ca: str | None = None
    # Where the intercept-mode CA lives (mitmproxy's confdir; made on first
    # use, key included: keep it on storage of the egress's own).
    confdir: str = "/var/lib/sandbox-mesh/egress"
    # Intercept mode: the CA certificate (never the key) is written here at
    # start, for the spawner to mount into sandboxes; empty: not written.
    ca_cert_export: str = ""
    ring_size: int = Field(default=DEFAULT_RING_SIZE, ge=1)
    ring_executions: int = Field(default=DEFAULT_RING_EXECUTIONS, ge=1)
    decision_log: str = ""
    # Refusal lines written per source (execution, else address) and interval;
    # the rest are counted and reported in one summary line.
    refusal_log_burst: int = Field(default=DEFAULT_BURST, ge=1)
    refusal_log_interval_seconds: float = Field(default=DEFAULT_INTERVAL_SECONDS, gt=0)

    # Intercept mode: the package cache's directory (storage of the egress's
    # own, never mounted anywhere else); empty: no cache.
    cache_dir: str = ""
    cache_max_bytes: int = Field(default=DEFAULT_MAX_BYTES, ge=1)
    # host:port of the Prometheus /metrics (package cache); empty: off.
    metrics_listen: str = ""

    @model_validator(mode="after")
    def _has_secret(self) -> EgressSettings:
        if not self.secret and not self.secret_file:
            raise ValueError("EGRESS_SECRET or EGRESS_SECRET_FILE is required")
        return self

    def listen_host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)
