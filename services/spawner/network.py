"""How executions that install packages reach the outside: a Docker network
(in production the internal sandbox network whose only way out is the
egress) and, when an egress proxy is configured, per-execution proxy
credentials and the egress's decisions for classifying EGRESS_DENIED."""

from __future__ import annotations

import dataclasses
import urllib.parse
from typing import Callable

import grpc

from sandbox.egress.v1 import egress_pb2, egress_pb2_grpc
from services.common.auth import ClientAuthInterceptor

SANDBOX_CA_PATH = "/etc/sandbox-mesh/egress-ca.pem"


@dataclasses.dataclass(frozen=True)
class NetworkAccess:
    name: str  # Docker network the sandbox joins
    proxy_url: str | None = None  # e.g. http://egress:3128
    # (execution id, tenant) -> proxy password; None: the proxy needs none.
    mint_token: Callable[[str, str], str] | None = None
    # execution id -> the egress's refusals for it ("host: reason").
    fetch_denials: Callable[[str], list[str]] | None = None
    # Host path of an intercepting egress's CA certificate (never its key),
    # mounted read-only into the sandbox and trusted by pip, npm, Python, Node.
    ca_cert: str | None = None

    def binds(self) -> dict[str, dict[str, str]]:
        if not self.ca_cert:
            return {}
        return {self.ca_cert: {"bind": SANDBOX_CA_PATH, "mode": "ro"}}

    def environment(self, execution_id: str, tenant: str) -> dict[str, str]:
        trust = {}
        if self.ca_cert:
            trust = {name: SANDBOX_CA_PATH for name in (
                "PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS", "npm_config_cafile"
            )}
        if not self.proxy_url:
            return trust
        parts = urllib.parse.urlsplit(self.proxy_url)
        netloc = parts.netloc
        if self.mint_token is not None:
            token = urllib.parse.quote(self.mint_token(execution_id, tenant), safe="")
            netloc = f"{execution_id}:{token}@{netloc}"
        url = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))
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

    def denials(self, execution_id: str) -> list[str]:
        if self.fetch_denials is None:
            return []
        return self.fetch_denials(execution_id)


def egress_denials_client(address: str, secret: bytes) -> Callable[[str], list[str]]:
    """A function that asks the egress what it refused for one execution."""
    channel = grpc.intercept_channel(grpc.insecure_channel(address), ClientAuthInterceptor(secret))
    stub = egress_pb2_grpc.EgressStub(channel)

    def fetch(execution_id: str) -> list[str]:
        reply = stub.GetDecisions(egress_pb2.GetDecisionsRequest(execution_id=execution_id), timeout=5)
        return [
            f"{d.host}:{d.port} {d.reason}" for d in reply.decisions if d.verdict == egress_pb2.VERDICT_DENY
        ]

    return fetch
