"""The egress mitmproxy addon: the sandbox network's only way out.

Every client connection is checked step by step, and nothing reaches an
upstream server until every step passed:

1. ``http_connect``: proxy credentials (407: valid, of an execution the
   spawner admitted and not revoked, used from the address it was admitted
   with, services/egress/admissions.py), the CONNECT host and port against
   the policy (403), the name resolved by the egress itself and every address
   checked (403), the first address pinned.
2. ``tls_clienthello``: the SNI must be present and equal the CONNECT host;
   otherwise the tunnel is refused before any upstream connection is opened.
   In passthrough mode the TLS connection is then relayed end to end.
3. ``server_connect``: the single chokepoint for upstream connections. Only an
   address pinned by a check that passed, on this client connection, may be
   connected to; anything else (including any name, which would need a second
   lookup) is killed before connecting.

Plain HTTP requests are refused unless ``egress_allow_plain_http``; then Host
must equal the request-URI host and the same checks and pinning apply. In
intercept mode every request inside a tunnel must name the tunnel's host.
Every request the egress sees (intercepted or plain) must also pass
``policy.check_request``: GET or HEAD, no body, no upgrade; HTTP/2 must be
off for that (in HTTP/1.1 only the headers can announce a body).

Options and the checks of mitmproxy's own options are in options.py; the gRPC
service and the refusal-summary timer run beside the proxy (background.py);
the package cache is a second addon, for the requests marked here (cache_addon.py).
"""

from __future__ import annotations

import logging
import time
from typing import IO

from mitmproxy import connection, ctx, http, tls
from mitmproxy.proxy import layer
from mitmproxy.proxy.server_hooks import ServerConnectionHookData

from services.common.contract import egress_token
from services.egress import cache_addon, options, policy
from services.egress.admissions import Admissions
from services.egress.audit import ALLOW, DENY, DecisionLog, Record
from services.egress.background import Background
from services.egress.connections import (
    ClientState,
    Metered,
    Tunnel,
    peer_address,
    refuse,
    split_host_header,
)
from services.egress.metrics import DecisionCounts
from services.egress.options import PASSTHROUGH
from services.egress.resolver import Resolver

log = logging.getLogger(__name__)

TLS_PORTS = frozenset({443})
PLAIN_PORTS = frozenset({80})
# URLs in decision records are cut here: a record is evidence, not a copy of
# whatever a sandbox chose to send.
MAX_RECORDED_URL_LENGTH = 2048


class Reason:
    """Reasons decided by the addon (policy and credential reasons come from
    ``policy.Reason`` and ``egress_token.Refusal``)."""

    SNI_MISSING = "sni_missing"
    SNI_MISMATCH = "sni_mismatch"
    TLS_REQUIRED = "tls_required"
    NOT_PINNED = "upstream_not_pinned"
    PLAIN_HTTP_REFUSED = "plain_http_refused"
    HOST_HEADER_MISSING = "host_header_missing"
    HOST_HEADER_MISMATCH = "host_header_mismatch"
    REQUEST_HOST_MISMATCH = "request_host_mismatch"
    NO_TUNNEL = "no_tunnel"


class EgressAddon:
    def __init__(
        self,
        secret: bytes | None = None,
        decision_stream: IO[str] | None = None,
        clock=time.time,
    ):
        self._secret_arg = secret
        self.secret: bytes | None = secret
        self.decision_stream = decision_stream
        self.clock = clock
        self.allowlist = policy.Allowlist.parse([])
        self.permitted_networks: tuple = ()
        self.own_addresses: set[str] = set()
        self.resolver = Resolver(use_system=True)
        self.decision_counts = DecisionCounts()  # kept across reconfigurations, which replace the log
        self.decisions = DecisionLog(stream=decision_stream, observer=self.decision_counts.observe)
        self.admissions = Admissions()
        self.clients: dict[str, ClientState] = {}
        self.background = Background(lambda: self.decisions, clock)

    # --- options ------------------------------------------------------------

    def load(self, loader):
        options.declare(loader)

    def configure(self, updated: set[str]):
        options.apply(self, ctx.options, updated)

    # --- beside the proxy ----------------------------------------------------

    async def running(self):
        assert self.secret is not None  # configure() refuses to go on without one
        o = ctx.options
        await self.background.start(
            o.egress_grpc_listen, self.secret, self.decisions_for, self.admissions, o.egress_refusal_log_interval
        )

    async def done(self):
        await self.background.stop()

    def decisions_for(self, execution_id: str) -> tuple[list[Record], int]:
        return self.decisions.get(execution_id)

    # --- bookkeeping --------------------------------------------------------

    def _state(self, client: connection.Client) -> ClientState:
        state = self.clients.get(client.id)
        if state is None:
            peer = client.peername
            state = ClientState(peer=f"{peer[0]}:{peer[1]}" if peer else "")
            self.clients[client.id] = state
        return state

    def _record(self, state: ClientState, kind: str, host: str, port: int, user: str = "") -> Record:
        return Record(time=self.clock(), kind=kind, host=host, port=port, client=state.peer, claimed_user=user)

    def _deny(self, record: Record, reason: str) -> None:
        record.decision, record.reason, record.closed = DENY, reason, True
        self.decisions.emit(record)

    def _authenticate(self, flow: http.HTTPFlow, record: Record) -> bool:
        parsed = egress_token.parse_proxy_authorization(flow.request.headers.get("Proxy-Authorization"))
        if isinstance(parsed, str):
            result: egress_token.Identity | str = parsed
        else:
            record.claimed_user = parsed[0]
            if self.secret is None:  # configure() refuses to go on without one
                raise RuntimeError("egress: no credential secret configured")
            result = egress_token.verify(self.secret, parsed[0], parsed[1], now=self.clock())
        if isinstance(result, str):
            self._deny(record, result)
            refuse(flow, 407, result)
            return False
        # A valid credential, but is it good here and now? Until this passes
        # the record names no execution: a copied credential must not plant
        # decisions in its execution's record.
        refusal = self.admissions.check(result.execution_id, peer_address(flow.client_conn))
        if refusal is not None:
            self._deny(record, refusal)
            refuse(flow, 407, refusal)
            return False
        record.execution_id, record.tenant = result.execution_id, result.tenant
        flow.request.headers.pop("Proxy-Authorization", None)
        return True

    async def _check_destination(
        self, flow: http.HTTPFlow, record: Record, host: str, port: int, ports: frozenset[int]
    ) -> tuple[str, str] | None:
        """Policy on name and port, own resolution, address checks. Returns the
        checked name and the address to pin, or None after refusing the flow."""
        decision = policy.check_host(host, self.allowlist)
        if not decision:
            self._deny(record, decision.reason)
            self.decisions.add(record)
            refuse(flow, 403, decision.reason)
            return None
        name = decision.allowed_value()
        decision = policy.check_port(port, ports)
        if not decision:
            self._deny(record, decision.reason)
            self.decisions.add(record)
            refuse(flow, 403, decision.reason)
            return None
        addresses = await self.resolver.resolve(name)
        decision = policy.check_addresses(addresses, self.own_addresses, self.permitted_networks)
        if not decision:
            record.resolved_address = decision.value or ""
            self._deny(record, decision.reason)
            self.decisions.add(record)
            refuse(flow, 502 if decision.reason == policy.Reason.UNRESOLVABLE else 403, decision.reason)
            return None
        record.resolved_address = decision.allowed_value()
        return name, record.resolved_address

    # --- hooks --------------------------------------------------------------

    def next_layer(self, nextlayer: layer.NextLayer):
        # Meter the first layer decided on each client connection (just below
        # the proxy-mode layer; mitmproxy's own next_layer addon, which runs
        # before this one, decided it): every event of the connection passes
        # through it.
        if nextlayer.layer is None or isinstance(nextlayer.layer, Metered):
            return
        state = self._state(nextlayer.context.client)
        if not state.metered:
            state.metered = True
            # Metered wraps the decided layer and passes every event through.
            nextlayer.layer = Metered(nextlayer.layer, state)  # type: ignore[assignment]

    async def http_connect(self, flow: http.HTTPFlow):
        state = self._state(flow.client_conn)
        host, port = flow.request.host, flow.request.port
        record = self._record(state, "connect", host, port)
        if state.tunnel is not None:  # one tunnel per client connection, no CONNECT inside it
            record.execution_id, record.tenant = state.tunnel.record.execution_id, state.tunnel.record.tenant
            self._deny(record, Reason.NO_TUNNEL)
            self.decisions.add(record)
            refuse(flow, 403, Reason.NO_TUNNEL)
            return
        if not self._authenticate(flow, record):
            return
        checked = await self._check_destination(flow, record, host, port, TLS_PORTS)
        if checked is None:
            return
        name, address = checked
        record.decision, record.reason = ALLOW, policy.Reason.ALLOWED
        state.tunnel = Tunnel(name=name, port=port, address=address, record=record)
        # mitmproxy takes the upstream address from the CONNECT request after
        # this hook: make it the checked address, so no name is ever looked up
        # again (server_connect still admits it only after the SNI check).
        flow.request.data.host = address
        state.open_records.append(record)
        self.decisions.add(record)

    def tls_clienthello(self, data: tls.ClientHelloData):
        state = self._state(data.context.client)
        tunnel = state.tunnel
        # Whatever happens next, the egress never terminates TLS it refused:
        # a refused connection is relayed to nowhere (server_connect kills it).
        if tunnel is None or tunnel.refused or tunnel.sni_checked:
            data.ignore_connection = True
            return
        sni = data.client_hello.sni
        tunnel.record.sni = sni or ""
        reason: str | None
        if not sni:
            reason = Reason.SNI_MISSING
        else:
            normal = policy.normalize_host(sni)
            reason = None if normal == tunnel.name else Reason.SNI_MISMATCH  # a refusal never equals a name
        if reason:
            tunnel.refused = True
            data.ignore_connection = True
            self._deny(tunnel.record, reason)
            return
        tunnel.sni_checked = True
        state.permitted.add((tunnel.address, tunnel.port))
        if ctx.options.egress_mode == PASSTHROUGH:
            data.ignore_connection = True

    def server_connect(self, data: ServerConnectionHookData):
        state = self.clients.get(data.client.id)
        address = data.server.address
        if state is not None and address is not None and (str(address[0]), address[1]) in state.permitted:
            return
        data.server.error = "egress: upstream connection not permitted"
        tunnel = state.tunnel if state else None
        if tunnel is not None and not tunnel.sni_checked:
            if not tunnel.record.emitted:
                # CONNECT passed but no acceptable TLS ClientHello came first.
                self._deny(tunnel.record, Reason.TLS_REQUIRED)
            return
        record = self._record(
            state or ClientState(peer=""), "connect", str(address[0]) if address else "", address[1] if address else 0
        )
        if tunnel is not None:
            record.execution_id, record.tenant = tunnel.record.execution_id, tunnel.record.tenant
        self._deny(record, Reason.NOT_PINNED)
        self.decisions.add(record)

    async def requestheaders(self, flow: http.HTTPFlow):
        state = self._state(flow.client_conn)
        if state.tunnel is not None:
            self._tunnel_request(flow, state, state.tunnel)
        else:
            await self._plain_request(flow, state)

    def _tunnel_request(self, flow: http.HTTPFlow, state: ClientState, tunnel: Tunnel) -> None:
        """A request inside an intercepted CONNECT tunnel."""
        record = self._record(state, "request", flow.request.host, flow.request.port)
        record.method = flow.request.method[: policy.MAX_RECORDED_METHOD_LENGTH]
        record.execution_id, record.tenant = tunnel.record.execution_id, tunnel.record.tenant
        record.claimed_user = tunnel.record.claimed_user
        record.sni = tunnel.record.sni
        record.url = f"https://{tunnel.name}:{tunnel.port}{flow.request.path}"[:MAX_RECORDED_URL_LENGTH]
        if not (tunnel.sni_checked and flow.client_conn.tls_established):
            self._deny(record, Reason.TLS_REQUIRED)
            self.decisions.add(record)
            refuse(flow, 403, Reason.TLS_REQUIRED)
            return
        # Revoked while the tunnel was open (the execution ended).
        refusal = self.admissions.check(record.execution_id, peer_address(flow.client_conn))
        if refusal is not None:
            self._deny(record, refusal)
            self.decisions.add(record)
            refuse(flow, 403, refusal)
            return
        # Inside a tunnel mitmproxy fills request.host from the (pinned)
        # upstream address or the request; the Host header (or :authority)
        # is what the upstream will serve, and both must be the tunnel's.
        request = flow.request
        host_header = request.host_header
        uri_ok = request.port == tunnel.port and (
            request.host == tunnel.address or policy.normalize_host(request.host) == tunnel.name
        )
        header_host, header_port = split_host_header(host_header or "", tunnel.port)
        header_ok = (
            bool(host_header) and header_port == tunnel.port and policy.normalize_host(header_host) == tunnel.name
        )
        if not (uri_ok and header_ok):
            self._deny(record, Reason.REQUEST_HOST_MISMATCH)
            self.decisions.add(record)
            refuse(flow, 403, Reason.REQUEST_HOST_MISMATCH)
            return
        if not self._request_allowed(flow, record):
            return
        record.decision, record.reason = ALLOW, policy.Reason.ALLOWED
        record.resolved_address = tunnel.address
        flow.request.data.host = tunnel.address  # the pinned address: no second lookup
        flow.metadata["egress_record"] = record
        cache_addon.mark(flow, tunnel.name, tunnel.port)  # the package cache may answer it
        state.open_records.append(record)
        self.decisions.add(record)

    def _request_allowed(self, flow: http.HTTPFlow, record: Record) -> bool:
        """GET or HEAD, no body, no upgrade (policy.check_request)."""
        request = flow.request
        decision = policy.check_request(request.method, request.headers.items(multi=True))
        if decision:
            return True
        self._deny(record, decision.reason)
        self.decisions.add(record)
        refuse(flow, 403, decision.reason)
        return False

    async def _plain_request(self, flow: http.HTTPFlow, state: ClientState) -> None:
        request = flow.request
        record = self._record(state, "http", request.host, request.port)
        record.method = request.method[: policy.MAX_RECORDED_METHOD_LENGTH]
        record.url = request.url[:MAX_RECORDED_URL_LENGTH]
        if not self._authenticate(flow, record):
            return
        if not ctx.options.egress_allow_plain_http or request.scheme != "http":
            self._deny(record, Reason.PLAIN_HTTP_REFUSED)
            self.decisions.add(record)
            refuse(flow, 403, Reason.PLAIN_HTTP_REFUSED)
            return
        host_header = request.host_header
        if not host_header:
            self._deny(record, Reason.HOST_HEADER_MISSING)
            self.decisions.add(record)
            refuse(flow, 403, Reason.HOST_HEADER_MISSING)
            return
        header_host, header_port = split_host_header(host_header, 80)
        uri_host = policy.normalize_host(request.host)
        if (
            isinstance(uri_host, policy.Decision)
            or policy.normalize_host(header_host) != uri_host
            or header_port != request.port
        ):
            # An IP-literal or malformed URI host is refused as such below.
            reason = uri_host.reason if isinstance(uri_host, policy.Decision) else Reason.HOST_HEADER_MISMATCH
            self._deny(record, reason)
            self.decisions.add(record)
            refuse(flow, 403, reason)
            return
        if not self._request_allowed(flow, record):
            return
        checked = await self._check_destination(flow, record, request.host, request.port, PLAIN_PORTS)
        if checked is None:
            return
        _, address = checked
        record.decision, record.reason = ALLOW, policy.Reason.ALLOWED
        state.permitted.add((address, request.port))
        request.data.host = address  # the pinned address: no second lookup
        flow.metadata["egress_record"] = record
        state.open_records.append(record)
        self.decisions.add(record)

    def response(self, flow: http.HTTPFlow):
        self._finish_request(flow)

    def error(self, flow: http.HTTPFlow):
        self._finish_request(flow)

    def _finish_request(self, flow: http.HTTPFlow) -> None:
        record = flow.metadata.pop("egress_record", None)
        if record is None:
            return
        record.bytes_up = len(flow.request.raw_content or b"")
        if flow.response is not None:
            record.bytes_down = len(flow.response.raw_content or b"")
        if flow.error is not None and record.decision == ALLOW:
            record.reason = f"{policy.Reason.ALLOWED}; upstream error"
        record.closed = True
        self.decisions.emit(record)

    def client_disconnected(self, client: connection.Client):
        state = self.clients.pop(client.id, None)
        if state is None:
            return
        tunnel = state.tunnel
        if tunnel is not None:
            tunnel.record.bytes_up, tunnel.record.bytes_down = state.bytes_up, state.bytes_down
        for record in state.open_records:
            record.closed = True
            self.decisions.emit(record)
