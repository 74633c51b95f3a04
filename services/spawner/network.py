"""How executions that install packages reach the outside: a Docker network
(in production the internal sandbox network whose only way out is the
egress) and, when an egress proxy is configured, per-execution proxy
credentials and the egress's decisions for classifying EGRESS_DENIED."""

from __future__ import annotations

import dataclasses
import urllib.parse
from typing import Callable


@dataclasses.dataclass(frozen=True)
class NetworkAccess:
    name: str  # Docker network the sandbox joins
    proxy_url: str | None = None  # e.g. http://egress:3128
    # (execution id, tenant) -> proxy password; None: the proxy needs none.
    mint_token: Callable[[str, str], str] | None = None
    # execution id -> the egress's refusals for it ("host: reason").
    fetch_denials: Callable[[str], list[str]] | None = None

    def environment(self, execution_id: str, tenant: str) -> dict[str, str]:
        if not self.proxy_url:
            return {}
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
        }

    def denials(self, execution_id: str) -> list[str]:
        if self.fetch_denials is None:
            return []
        return self.fetch_denials(execution_id)
