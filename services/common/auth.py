"""Service-to-service authentication: HMAC-signed gRPC metadata.

Every call carries `x-sandbox-signature: v2:<unix ms>:<nonce>:<hex mac>`, the
MAC being HMAC-SHA256 with the shared secret over the method name, the
principal the call is made as (the tenant for control's callers, empty between
services), the timestamp, the nonce and the SHA-256 of the request message
serialised deterministically. The server checks the MAC, that the timestamp is
inside the replay window, and that the nonce was not seen within it.

Each header the server reads must arrive once, exactly as named: a repeated
header, or one under another spelling (other case, a `-bin` suffix), refuses
the call, so that no two pieces of code can read two different values. What
the server established is handed to the handler in an AuthenticatedContext,
never re-read from metadata.

Health checks and reflection stay open: they reveal nothing but the schema and
are what probes and grpcurl need.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable

import grpc

HEADER = "x-sandbox-signature"
# Control's callers name their tenant in this header; the signature covers it.
TENANT_HEADER = "x-sandbox-tenant"
VERSION = "v2"
OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
BINARY_SUFFIX = "-bin"
NONCE_RE = re.compile(r"[A-Za-z0-9_-]{16,64}\Z")

Metadata = Iterable[tuple[str, "str | bytes"]]
# (method, metadata, serialised request) -> the principal; raises AuthError.
Authenticate = Callable[[str, Metadata, bytes], str]


class AuthError(Exception):
    pass


def _mac(secret: bytes, method: str, principal: str, timestamp_ms: int, nonce: str, body: bytes) -> str:
    # Newline-separated: no field can hold one (a gRPC path, a principal
    # matching its pattern, digits, a nonce matching NONCE_RE), and the digest
    # has a fixed length.
    message = b"\n".join(
        [
            VERSION.encode(),
            method.encode(),
            principal.encode(),
            str(timestamp_ms).encode(),
            nonce.encode(),
            hashlib.sha256(body).digest(),
        ]
    )
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def sign(
    secret: bytes,
    method: str,
    body: bytes,
    *,
    principal: str = "",
    now_ms: int | None = None,
    nonce: str | None = None,
) -> str:
    timestamp = int(time.time() * 1000) if now_ms is None else now_ms
    nonce = nonce or secrets.token_hex(16)
    return f"{VERSION}:{timestamp}:{nonce}:{_mac(secret, method, principal, timestamp, nonce, body)}"


def single_header(metadata: Metadata | None, name: str) -> str | None:
    """The value of header `name` (lower case), None when absent.

    Refused (AuthError): the header repeated, or sent under another spelling
    of its name (other case, `-bin` suffix), or with a binary value."""
    values = []
    for key, value in metadata or ():
        if key.lower().removesuffix(BINARY_SUFFIX) != name:
            continue
        if key != name or not isinstance(value, str):
            raise AuthError(f"{name} metadata sent under another name")
        values.append(value)
    if len(values) > 1:
        raise AuthError(f"{name} metadata repeated")
    return values[0] if values else None


class Verifier:
    def __init__(self, secret: bytes, window_seconds: float = 60.0, max_nonces: int = 200_000):
        if not secret:
            raise ValueError("an empty secret authenticates nothing")
        self._secret = secret
        self._window_ms = int(window_seconds * 1000)
        self._max_nonces = max_nonces
        self._seen: collections.OrderedDict[str, int] = collections.OrderedDict()
        self._lock = threading.Lock()

    def verify(
        self, method: str, body: bytes, header: str | None, *, principal: str = "", now_ms: int | None = None
    ) -> None:
        """Raises AuthError with the reason; returns None when the call is
        authentic and was signed as `principal`."""
        if not header:
            raise AuthError(f"missing {HEADER} metadata")
        parts = header.split(":")
        if len(parts) != 4 or parts[0] != VERSION:
            raise AuthError(f"malformed {HEADER} metadata")
        _, timestamp_text, nonce, mac = parts
        if not timestamp_text.isdigit() or not NONCE_RE.match(nonce) or "\n" in principal:
            raise AuthError(f"malformed {HEADER} metadata")
        timestamp = int(timestamp_text)
        expected = _mac(self._secret, method, principal, timestamp, nonce, body)
        if not hmac.compare_digest(expected, mac):
            raise AuthError("bad signature")
        now = int(time.time() * 1000) if now_ms is None else now_ms
        if abs(now - timestamp) > self._window_ms:
            raise AuthError("signature expired (outside the replay window)")
        with self._lock:
            self._forget_older_than(now - self._window_ms)
            if nonce in self._seen:
                raise AuthError("replayed signature")
            if len(self._seen) >= self._max_nonces:
                raise AuthError("too many calls in the replay window")
            self._seen[nonce] = timestamp

    def _forget_older_than(self, cutoff_ms: int) -> None:
        # Entries are in arrival order, close enough to timestamp order; a few
        # stragglers only stay a little longer.
        while self._seen:
            timestamp = next(iter(self._seen.values()))
            if timestamp >= cutoff_ms:
                return
            self._seen.popitem(last=False)


def _body(request) -> bytes:
    return request.SerializeToString(deterministic=True)


class AuthenticatedContext:
    """The servicer context a handler gets once its call is authenticated:
    grpc's own context (every method passes through) plus `principal`, who the
    verifier established the caller to be."""

    def __init__(self, context: grpc.ServicerContext, principal: str):
        self._context = context
        self.principal = principal

    def __getattr__(self, name: str):
        return getattr(self._context, name)


class AuthInterceptor(grpc.ServerInterceptor):
    """Authenticates every call but health and reflection with `authenticate`.

    intercept_service runs on the server's polling thread and the handler in
    the thread pool, so the check runs inside the wrapped handler and what it
    established travels as the handler's context argument."""

    def __init__(self, authenticate: Authenticate):
        self._authenticate = authenticate

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(OPEN_PREFIXES):
            return handler
        metadata = tuple(handler_call_details.invocation_metadata or ())
        authenticate = self._authenticate

        def authenticated(request, context) -> AuthenticatedContext:
            try:
                principal = authenticate(method, metadata, _body(request))
            except AuthError as exc:
                context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
                raise  # pragma: no cover - abort raises
            return AuthenticatedContext(context, principal)

        if handler.unary_unary:
            inner = handler.unary_unary

            def unary_unary(request, context):
                return inner(request, authenticated(request, context))

            return grpc.unary_unary_rpc_method_handler(
                unary_unary, handler.request_deserializer, handler.response_serializer
            )
        if handler.unary_stream:
            inner_stream = handler.unary_stream

            def unary_stream(request, context):
                yield from inner_stream(request, authenticated(request, context))

            return grpc.unary_stream_rpc_method_handler(
                unary_stream, handler.request_deserializer, handler.response_serializer
            )
        raise NotImplementedError(f"{method}: only unary requests are authenticated")


class ServerAuthInterceptor(AuthInterceptor):
    """Service-to-service calls: signed with the shared secret, no principal."""

    def __init__(self, verifier: Verifier):
        def authenticate(method: str, metadata: Metadata, body: bytes) -> str:
            verifier.verify(method, body, single_header(metadata, HEADER))
            return ""

        super().__init__(authenticate)


class CallDetails(grpc.ClientCallDetails):
    """The details of an outgoing call with replaced metadata."""

    def __init__(self, details, metadata):
        self.method = details.method
        self.timeout = details.timeout
        self.metadata = metadata
        self.credentials = details.credentials
        self.wait_for_ready = details.wait_for_ready
        self.compression = details.compression


class ClientAuthInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Signs every call: `grpc.intercept_channel(channel, ClientAuthInterceptor(secret))`."""

    def __init__(self, secret: bytes):
        self._secret = secret

    def _signed(self, details, request):
        metadata = [(k, v) for k, v in (details.metadata or []) if k != HEADER]
        metadata.append((HEADER, sign(self._secret, details.method, _body(request))))
        return CallDetails(details, metadata)

    def intercept_unary_unary(self, continuation, client_call_details, request):
        return continuation(self._signed(client_call_details, request), request)

    def intercept_unary_stream(self, continuation, client_call_details, request):
        return continuation(self._signed(client_call_details, request), request)


def tenant_headers(tenant: str, key: bytes | None, method: str, request) -> list[tuple[str, str]]:
    """The metadata of one call to control as `tenant`, signed with its key
    (unsigned when `key` is empty: a control running insecure)."""
    headers = [(TENANT_HEADER, tenant)]
    if key:
        headers.append((HEADER, sign(key, method, _body(request), principal=tenant)))
    return headers


class TenantClientInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """For control's callers: `grpc.intercept_channel(channel, TenantClientInterceptor(tenant, key))`."""

    def __init__(self, tenant: str, key: bytes | None):
        self._tenant = tenant
        self._key = key

    def _details(self, details, request):
        metadata = [(k, v) for k, v in (details.metadata or []) if k not in (TENANT_HEADER, HEADER)]
        metadata.extend(tenant_headers(self._tenant, self._key, details.method, request))
        return CallDetails(details, metadata)

    def intercept_unary_unary(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details, request), request)

    def intercept_unary_stream(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details, request), request)


class AsyncServerAuthInterceptor(grpc.aio.ServerInterceptor):
    """ServerAuthInterceptor for grpc.aio servers (the egress serves on
    mitmproxy's event loop); unary-unary calls only, which is all it serves."""

    def __init__(self, verifier: Verifier):
        self._verifier = verifier

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(OPEN_PREFIXES):
            return handler
        if not handler.unary_unary:
            raise NotImplementedError(f"{method}: only unary-unary calls are authenticated on grpc.aio")
        metadata = tuple(handler_call_details.invocation_metadata or ())
        verifier = self._verifier
        inner = handler.unary_unary

        async def unary_unary(request, context):
            try:
                verifier.verify(method, _body(request), single_header(metadata, HEADER))
            except AuthError as exc:
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
            return await inner(request, context)

        return grpc.unary_unary_rpc_method_handler(
            unary_unary, handler.request_deserializer, handler.response_serializer
        )
