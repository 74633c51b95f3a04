"""The per-execution egress proxy credential, verified without a round-trip.

The spawner mints it and the egress verifies it. For every execution the
proxy user name is the execution id and the password a token::

    v1.<tenant>.<expiry unix seconds>.<base64url HMAC-SHA256(secret, "v1|id|tenant|expiry")>

The tenant and expiry travel in the token; the MAC binds them to the execution
id, so a token is useless under another execution's name, after its expiry, or
with any field changed. Comparison is constant-time.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import re
import time

from services.common.contract.ids import ID_RE, ID_RULE

VERSION = "v1"
MIN_SECRET_BYTES = 16
MAX_TOKEN_LENGTH = 256
_EXPIRY = re.compile(r"[0-9]{1,12}\Z")
_MAC = re.compile(r"[A-Za-z0-9_-]{43}\Z")  # 32 bytes, unpadded base64url


class Refusal:
    """Machine-readable reasons a credential is refused."""

    MISSING = "credentials_missing"
    MALFORMED = "credentials_malformed"
    BAD_SIGNATURE = "credentials_bad_signature"
    EXPIRED = "credentials_expired"


@dataclasses.dataclass(frozen=True)
class Identity:
    execution_id: str
    tenant: str
    expires_at: int


def _secret_bytes(secret: bytes | str) -> bytes:
    key = secret.encode() if isinstance(secret, str) else bytes(secret)
    if len(key) < MIN_SECRET_BYTES:
        raise ValueError(f"the egress secret must be at least {MIN_SECRET_BYTES} bytes")
    return key


def _mac(key: bytes, execution_id: str, tenant: str, expiry: int) -> str:
    message = f"{VERSION}|{execution_id}|{tenant}|{expiry}".encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def mint(secret: bytes | str, execution_id: str, tenant: str, ttl_seconds: int, now: float | None = None) -> str:
    """The proxy password for ``execution_id`` (the proxy user name)."""
    if not ID_RE.match(execution_id or ""):
        raise ValueError(f"execution_id {ID_RULE}")
    if not ID_RE.match(tenant or ""):
        raise ValueError(f"tenant {ID_RULE}")
    if ttl_seconds <= 0:
        raise ValueError("ttl_seconds must be positive")
    expiry = int(time.time() if now is None else now) + int(ttl_seconds)
    return f"{VERSION}.{tenant}.{expiry}.{_mac(_secret_bytes(secret), execution_id, tenant, expiry)}"


def verify(secret: bytes | str, username: str | None, token: str | None, now: float | None = None) -> Identity | str:
    """The identity the credentials prove, or a ``Refusal`` reason string."""
    key = _secret_bytes(secret)
    if not username and not token:
        return Refusal.MISSING
    if not isinstance(username, str) or not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        return Refusal.MALFORMED
    parts = token.split(".")
    if len(parts) != 4 or parts[0] != VERSION:
        return Refusal.MALFORMED
    _, tenant, expiry_text, mac = parts
    if not (ID_RE.match(username) and ID_RE.match(tenant) and _EXPIRY.match(expiry_text) and _MAC.match(mac)):
        return Refusal.MALFORMED
    expiry = int(expiry_text)
    if not hmac.compare_digest(_mac(key, username, tenant, expiry).encode(), mac.encode()):
        return Refusal.BAD_SIGNATURE
    if (time.time() if now is None else now) >= expiry:
        return Refusal.EXPIRED
    return Identity(username, tenant, expiry)


def parse_proxy_authorization(value: str | None) -> tuple[str, str] | str:
    """(user, password) from a ``Proxy-Authorization: Basic ...`` header value,
    or a ``Refusal`` reason string."""
    if value is None or value.strip() == "":
        return Refusal.MISSING
    scheme, _, encoded = value.strip().partition(" ")
    if scheme.lower() != "basic" or not encoded or len(encoded) > 4 * MAX_TOKEN_LENGTH:
        return Refusal.MALFORMED
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("ascii")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return Refusal.MALFORMED
    user, sep, password = decoded.partition(":")
    if not sep:
        return Refusal.MALFORMED
    return user, password


def proxy_authorization(username: str, token: str) -> str:
    """The header value a client sends (tests, and the spawner's proxy URLs)."""
    return "Basic " + base64.b64encode(f"{username}:{token}".encode()).decode()
