"""Tenant authentication for control's callers.

Every call names its tenant in `x-sandbox-tenant` metadata and is signed with
that tenant's key by the same HMAC scheme services use among themselves
(services/common/auth.py: `x-sandbox-signature` over method, time, nonce and
request). Control looks the key up by the tenant named, so a signature made
with one tenant's key never passes as another tenant. Health and reflection
stay open.

With CONTROL_INSECURE=1 and no keys, the header is trusted as sent (local
development only).
"""

from __future__ import annotations

import grpc

from services.common.auth import HEADER, OPEN_PREFIXES, CallDetails, ServerAuthInterceptor, Verifier, sign
from services.common.contract.ids import ID_RE

TENANT_HEADER = "x-sandbox-tenant"


def tenant_of(context: grpc.ServicerContext) -> str:
    """The caller's tenant; the interceptor has already authenticated it."""
    for key, value in context.invocation_metadata():
        if key == TENANT_HEADER:
            return value
    raise RuntimeError("tenant header missing after authentication")


def _refuse(handler, message: str):
    def abort(request, context):
        context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    def abort_stream(request, context):
        context.abort(grpc.StatusCode.UNAUTHENTICATED, message)
        yield  # pragma: no cover - abort raises

    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(
            abort_stream, handler.request_deserializer, handler.response_serializer
        )
    return grpc.unary_unary_rpc_method_handler(abort, handler.request_deserializer, handler.response_serializer)


class TenantAuthInterceptor(grpc.ServerInterceptor):
    def __init__(self, keys: dict[str, bytes] | None):
        """`keys` maps tenant -> key; None trusts the tenant header (insecure)."""
        self._per_tenant = None
        if keys is not None:
            self._per_tenant = {tenant: ServerAuthInterceptor(Verifier(key)) for tenant, key in keys.items()}

    def intercept_service(self, continuation, handler_call_details):
        method = handler_call_details.method
        if method.startswith(OPEN_PREFIXES):
            return continuation(handler_call_details)
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        tenant = dict(handler_call_details.invocation_metadata or ()).get(TENANT_HEADER)
        if not tenant or not ID_RE.match(tenant):
            return _refuse(handler, f"missing or malformed {TENANT_HEADER} metadata")
        if self._per_tenant is None:
            return handler
        interceptor = self._per_tenant.get(tenant)
        if interceptor is None:
            # Same answer as a bad signature: which tenants exist is no one's business.
            return _refuse(handler, "bad signature")
        return interceptor.intercept_service(lambda _details: handler, handler_call_details)


class TenantClientInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """For callers: `grpc.intercept_channel(channel, TenantClientInterceptor(tenant, key))`."""

    def __init__(self, tenant: str, key: bytes | None):
        self._tenant = tenant
        self._key = key

    def _details(self, details, request):
        metadata = [(k, v) for k, v in (details.metadata or []) if k not in (TENANT_HEADER, HEADER)]
        metadata.append((TENANT_HEADER, self._tenant))
        if self._key:
            metadata.append((HEADER, sign(self._key, details.method, request.SerializeToString(deterministic=True))))
        return CallDetails(details, metadata)

    def intercept_unary_unary(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details, request), request)

    def intercept_unary_stream(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details, request), request)
