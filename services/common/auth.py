"""Service-to-service authentication: HMAC-signed gRPC metadata.

Every call carries `x-sandbox-signature: v1:<unix ms>:<nonce>:<hex mac>`, the
MAC being HMAC-SHA256 with the shared secret over the method name, the
timestamp, the nonce and the SHA-256 of the request message serialised
deterministically. The server checks the MAC, that the timestamp is inside the
replay window, and that the nonce was not seen within it.

Health checks and reflection stay open: they reveal nothing but the schema and
are what probes and grpcurl need.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import secrets
import threading
import time

import grpc

HEADER = "x-sandbox-signature"
VERSION = "v1"
OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


class AuthError(Exception):
    pass


def _mac(secret: bytes, method: str, timestamp_ms: int, nonce: str, body: bytes) -> str:
    message = b"\n".join(
        [VERSION.encode(), method.encode(), str(timestamp_ms).encode(), nonce.encode(), hashlib.sha256(body).digest()]
    )
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def sign(secret: bytes, method: str, body: bytes, *, now_ms: int | None = None, nonce: str | None = None) -> str:
    timestamp = int(time.time() * 1000) if now_ms is None else now_ms
    nonce = nonce or secrets.token_hex(16)
    return f"{VERSION}:{timestamp}:{nonce}:{_mac(secret, method, timestamp, nonce, body)}"


class Verifier:
    def __init__(self, secret: bytes, window_seconds: float = 60.0, max_nonces: int = 200_000):
        if not secret:
            raise ValueError("an empty secret authenticates nothing")
        self._secret = secret
        self._window_ms = int(window_seconds * 1000)
        self._max_nonces = max_nonces
        self._seen: collections.OrderedDict[str, int] = collections.OrderedDict()
        self._lock = threading.Lock()

    def verify(self, method: str, body: bytes, header: str | None, *, now_ms: int | None = None) -> None:
        """Raises AuthError with the reason; returns None when the call is authentic."""
        if not header:
            raise AuthError(f"missing {HEADER} metadata")
        parts = header.split(":")
        if len(parts) != 4 or parts[0] != VERSION:
            raise AuthError(f"malformed {HEADER} metadata")
        _, timestamp_text, nonce, mac = parts
        if not timestamp_text.isdigit() or not 16 <= len(nonce) <= 64:
            raise AuthError(f"malformed {HEADER} metadata")
        timestamp = int(timestamp_text)
        expected = _mac(self._secret, method, timestamp, nonce, body)
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
            nonce, timestamp = next(iter(self._seen.items()))
            if timestamp >= cutoff_ms:
                return
            self._seen.popitem(last=False)


def _body(request) -> bytes:
    return request.SerializeToString(deterministic=True)


def _needs_check(handler, method: str) -> bool:
    return handler is not None and not method.startswith(OPEN_PREFIXES)


def _header(handler_call_details) -> str | None:
    return dict(handler_call_details.invocation_metadata or ()).get(HEADER)


def _refusal(verifier: Verifier, method: str, request, header: str | None) -> str | None:
    """Why the call is refused, or None when it is authentic."""
    try:
        verifier.verify(method, _body(request), header)
    except AuthError as exc:
        return str(exc)
    return None


class ServerAuthInterceptor(grpc.ServerInterceptor):
    def __init__(self, verifier: Verifier):
        self._verifier = verifier

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        if not _needs_check(handler, method):
            return handler
        header = _header(handler_call_details)
        verifier = self._verifier

        def check(request, context):
            refusal = _refusal(verifier, method, request, header)
            if refusal is not None:
                context.abort(grpc.StatusCode.UNAUTHENTICATED, refusal)

        if handler.unary_unary:
            inner = handler.unary_unary

            def unary_unary(request, context):
                check(request, context)
                return inner(request, context)

            return grpc.unary_unary_rpc_method_handler(
                unary_unary, handler.request_deserializer, handler.response_serializer
            )
        if handler.unary_stream:
            inner_stream = handler.unary_stream

            def unary_stream(request, context):
                check(request, context)
                yield from inner_stream(request, context)

            return grpc.unary_stream_rpc_method_handler(
                unary_stream, handler.request_deserializer, handler.response_serializer
            )
        raise NotImplementedError(f"{method}: only unary requests are authenticated")


class AsyncServerAuthInterceptor(grpc.aio.ServerInterceptor):
    """The same check for grpc.aio servers (the egress serves on mitmproxy's
    event loop)."""

    def __init__(self, verifier: Verifier):
        self._verifier = verifier

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if not _needs_check(handler, method):
            return handler
        if not handler.unary_unary:
            raise NotImplementedError(f"{method}: only unary-unary calls are authenticated on grpc.aio")
        header = _header(handler_call_details)
        verifier = self._verifier
        inner = handler.unary_unary

        async def unary_unary(request, context):
            refusal = _refusal(verifier, method, request, header)
            if refusal is not None:
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, refusal)
            return await inner(request, context)

        return grpc.unary_unary_rpc_method_handler(
            unary_unary, handler.request_deserializer, handler.response_serializer
        )


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
        metadata = list(details.metadata or [])
        metadata.append((HEADER, sign(self._secret, details.method, _body(request))))
        return CallDetails(details, metadata)

    def intercept_unary_unary(self, continuation, client_call_details, request):
        return continuation(self._signed(client_call_details, request), request)

    def intercept_unary_stream(self, continuation, client_call_details, request):
        return continuation(self._signed(client_call_details, request), request)
