"""Tenant authentication for control's callers.

Every call names its tenant in `x-sandbox-tenant` metadata and is signed with
that tenant's key by the same HMAC scheme services use among themselves
(services/common/auth.py: `x-sandbox-signature` over method, tenant, time,
nonce and request). Control looks the key up by the tenant named and the MAC
covers that name, so a signature made with one tenant's key never passes as
another tenant. Either header repeated, or sent under another spelling of its
name, is refused. The tenant established here reaches the servicers through
their context (`tenant_of`), never by reading metadata again. Health and
reflection stay open.

With CONTROL_INSECURE=1 and no keys, the tenant header is trusted as sent
(local development only).
"""

from __future__ import annotations

import grpc

from services.common.auth import (
    HEADER,
    TENANT_HEADER,
    AuthenticatedContext,
    AuthError,
    AuthInterceptor,
    Metadata,
    TenantClientInterceptor,
    Verifier,
    single_header,
)
from services.common.contract.ids import ID_RE

# The client half lives in services.common.auth so that clients (sandbox_mesh)
# need no import from control; re-exported here for control's callers.
__all__ = ["TENANT_HEADER", "TenantAuthInterceptor", "TenantAuthenticator", "TenantClientInterceptor", "tenant_of"]


def tenant_of(context: grpc.ServicerContext) -> str:
    """The caller's tenant, as TenantAuthInterceptor established it."""
    if not isinstance(context, AuthenticatedContext) or not context.principal:
        raise RuntimeError("call reached a servicer without tenant authentication")
    return context.principal


class TenantAuthenticator:
    """`keys` maps tenant -> key; None trusts the tenant header (insecure)."""

    def __init__(self, keys: dict[str, bytes] | None):
        self._verifiers = None if keys is None else {tenant: Verifier(key) for tenant, key in keys.items()}

    def __call__(self, method: str, metadata: Metadata, body: bytes) -> str:
        tenant = single_header(metadata, TENANT_HEADER)
        signature = single_header(metadata, HEADER)
        if not tenant or not ID_RE.match(tenant):
            raise AuthError(f"missing or malformed {TENANT_HEADER} metadata")
        if self._verifiers is None:
            return tenant
        verifier = self._verifiers.get(tenant)
        if verifier is None:
            # Same answer as a bad signature: which tenants exist is no one's business.
            raise AuthError("bad signature")
        verifier.verify(method, body, signature, principal=tenant)
        return tenant


class TenantAuthInterceptor(AuthInterceptor):
    def __init__(self, keys: dict[str, bytes] | None):
        """`keys` maps tenant -> key; None trusts the tenant header (insecure)."""
        super().__init__(TenantAuthenticator(keys))
