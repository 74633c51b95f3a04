"""How executions with packages (or `network`) reach the outside: a network
of their own whose only other member is the egress
(services/spawner/netpool.py), the egress's proxy at its address on that
network and, when an egress secret is configured, per-execution proxy
credentials, the egress's admission of each execution (credentials good
only from its sandbox's address, until revoked when it ends) and the
egress's decisions for classifying EGRESS_DENIED."""

from __future__ import annotations

import dataclasses
import logging
import pathlib
import urllib.parse
from collections.abc import Callable

import docker
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sandbox.egress.v1 import egress_pb2, egress_pb2_grpc
from services.common.auth import ClientAuthInterceptor
from services.common.tracing import ClientTraceInterceptor
from services.spawner.netpool import Lease, NetworkPool

log = logging.getLogger(__name__)

# Where a sandbox finds the intercepting egress's CA certificate.
SANDBOX_CA_DIR = "/etc/sandbox-mesh/egress-ca"
# Each call to the egress; the egress answers from memory.
EGRESS_RPC_TIMEOUT_SECONDS = 5.0
# Before admitting an execution that needs the egress: a quick answer or none.
EGRESS_CHECK_TIMEOUT_SECONDS = 2.0
# A restarted egress is found again within seconds (gRPC's default backoff
# grows to two minutes between reconnection attempts).
MAX_RECONNECT_BACKOFF_MS = 2000
DEFAULT_PROXY_PORT = 3128
PRIVATE_KEY_MARKER = "PRIVATE KEY"


class EgressError(RuntimeError):
    """The egress did not do what the spawner asked (the details are logged;
    the message is stable)."""


class EgressUnavailable(Exception):
    def __init__(self) -> None:
        super().__init__(
            "the egress (the only way out for packages and network) does not answer; "
            "retry once it is back, or run without packages and network"
        )


class EgressClient:
    """The egress's gRPC service as the spawner uses it; calls are signed."""

    def __init__(self, address: str, secret: bytes):
        # Admit and Revoke carry the execution's trace (services/common/tracing.py).
        plain = grpc.insecure_channel(address, options=[("grpc.max_reconnect_backoff_ms", MAX_RECONNECT_BACKOFF_MS)])
        channel = grpc.intercept_channel(plain, ClientTraceInterceptor(), ClientAuthInterceptor(secret))
        self.stub = egress_pb2_grpc.EgressStub(channel)
        self.health = health_pb2_grpc.HealthStub(plain)

    def require(self) -> None:
        """Raises EgressUnavailable unless the egress answers now as serving."""
        try:
            reply = self.health.Check(health_pb2.HealthCheckRequest(service=""), timeout=EGRESS_CHECK_TIMEOUT_SECONDS)
        except grpc.RpcError as exc:
            log.error("the egress does not answer: %s", exc)
            raise EgressUnavailable() from None
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            raise EgressUnavailable()

    def denials(self, execution_id: str) -> list[str]:
        """The egress's refusals for one execution ("host:port reason")."""
        reply = self.stub.GetDecisions(
            egress_pb2.GetDecisionsRequest(execution_id=execution_id), timeout=EGRESS_RPC_TIMEOUT_SECONDS
        )
        return [f"{d.host}:{d.port} {d.reason}" for d in reply.decisions if d.verdict == egress_pb2.VERDICT_DENY]

    def admit(self, execution_id: str, address: str) -> None:
        try:
            self.stub.Admit(
                egress_pb2.AdmitRequest(execution_id=execution_id, address=address),
                timeout=EGRESS_RPC_TIMEOUT_SECONDS,
            )
        except grpc.RpcError as exc:
            log.error("execution %s: the egress did not admit %s: %s", execution_id, address, exc)
            raise EgressError("the egress did not admit the execution") from None

    def revoke(self, execution_id: str) -> bool:
        """Whether the egress still had the execution admitted (not, after
        the egress restarted: it keeps admissions in memory)."""
        try:
            reply = self.stub.Revoke(
                egress_pb2.RevokeRequest(execution_id=execution_id), timeout=EGRESS_RPC_TIMEOUT_SECONDS
            )
            return reply.was_admitted
        except grpc.RpcError as exc:
            log.error("execution %s: the egress did not revoke its credentials: %s", execution_id, exc)
            raise EgressError(f"execution {execution_id}: the egress did not revoke its credentials") from None


@dataclasses.dataclass(frozen=True)
class NetworkAccess:
    pool: NetworkPool  # lends each execution a network of its own
    proxy_port: int = DEFAULT_PROXY_PORT  # the egress's proxy, on every network
    # (execution id, tenant) -> proxy password; None: the proxy needs none.
    mint_token: Callable[[str, str], str] | None = None
    # The egress's gRPC service: admissions and decisions.
    egress: EgressClient | None = None
    # An intercepting egress's CA certificate (never its key), mounted
    # read-only into the sandbox and trusted by pip, npm, Python and Node:
    # the file as this spawner sees it, which is also its host path unless
    # `ca_volume` names the Docker volume holding it (a spawner in a
    # container, compose); then that volume is mounted instead.
    ca_cert: str | None = None
    ca_volume: str | None = None

    def lease(self) -> Lease:
        """A network of the execution's own, the egress its only other member."""
        return self.pool.lease()

    def release(self, lease: Lease) -> None:
        """Call once the execution's sandbox is removed."""
        self.pool.release(lease)

    @property
    def sandbox_ca_path(self) -> str:
        return f"{SANDBOX_CA_DIR}/{pathlib.PurePath(self.ca_cert or '').name}"

    def binds(self) -> dict[str, dict[str, str]]:
        if not self.ca_cert:
            return {}
        if self.ca_volume:
            return {self.ca_volume: {"bind": SANDBOX_CA_DIR, "mode": "ro"}}
        return {self.ca_cert: {"bind": self.sandbox_ca_path, "mode": "ro"}}

    def environment(self, execution_id: str, tenant: str, egress_address: str) -> dict[str, str]:
        """The proxy at the egress's address on the sandbox's network (an
        address, not a name: the sandbox resolves none), with the execution's
        credentials; and the intercepting egress's CA."""
        trust = {}
        if self.ca_cert:
            trust = {
                name: self.sandbox_ca_path
                for name in (
                    "PIP_CERT",
                    "REQUESTS_CA_BUNDLE",
                    "SSL_CERT_FILE",
                    "NODE_EXTRA_CA_CERTS",
                    "npm_config_cafile",
                )
            }
        netloc = f"{egress_address}:{self.proxy_port}"
        if self.mint_token is not None:
            token = urllib.parse.quote(self.mint_token(execution_id, tenant), safe="")
            netloc = f"{execution_id}:{token}@{netloc}"
        url = f"http://{netloc}"
        # Both spellings: pip and Python read the upper case, npm and curl
        # also the lower case.
        return {
            "HTTPS_PROXY": url,
            "HTTP_PROXY": url,
            "https_proxy": url,
            "http_proxy": url,
            "NO_PROXY": "",
            "no_proxy": "",
            "npm_config_proxy": url,
            "npm_config_https_proxy": url,
            **trust,
        }

    @staticmethod
    def address_of(api: docker.APIClient, container_id: str, network: str) -> str:
        """The sandbox's address on its network, as the egress sees its
        connections."""
        networks = api.inspect_container(container_id)["NetworkSettings"]["Networks"] or {}
        entry = networks.get(network)
        if entry is None and len(networks) == 1:  # the network was named by id
            entry = next(iter(networks.values()))
        address = (entry or {}).get("IPAddress")
        if not address:
            raise EgressError(f"the sandbox has no address on {network}")
        return address

    def admit(self, execution_id: str, address: str) -> None:
        """From now on the egress accepts this execution's credentials, from
        ``address`` only. Call before any program runs in the sandbox."""
        if self.egress is not None:
            self.egress.admit(execution_id, address)

    def admit_sandbox(self, api: docker.APIClient, container_id: str, execution_id: str, network: str) -> None:
        """``admit`` with the started sandbox's address on ``network``
        (looked up only when there is an egress to tell)."""
        if self.egress is not None:
            self.admit(execution_id, self.address_of(api, container_id, network))

    def require(self) -> None:
        """Raises EgressUnavailable unless the egress answers (when there is one to ask)."""
        if self.egress is not None:
            self.egress.require()

    def revoke(self, execution_id: str) -> bool:
        """From now on the egress refuses this execution's credentials; False
        when the egress had lost its admission (it restarted meanwhile)."""
        return self.egress.revoke(execution_id) if self.egress is not None else True

    def denials(self, execution_id: str) -> list[str]:
        if self.egress is None:
            return []
        return self.egress.denials(execution_id)


def check_ca_volume(api: docker.APIClient, volume: str, ca_cert: str) -> None:
    """The volume mounted into sandboxes must exist (the engine would make an
    empty one) and hold no private key next to the certificate (every file
    in the certificate's directory, this spawner's view of the volume, is
    read). Raises ValueError."""
    try:
        api.inspect_volume(volume)
    except docker.errors.NotFound:
        raise ValueError(f"no such Docker volume: {volume!r}") from None
    for path in pathlib.Path(ca_cert).parent.iterdir():
        if path.is_file() and PRIVATE_KEY_MARKER in path.read_text(encoding="ascii", errors="replace"):
            raise ValueError(f"{path.name} in the CA volume holds a private key; it is mounted into sandboxes")
