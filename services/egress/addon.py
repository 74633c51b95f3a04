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

mitmproxy's ``allow_hosts``/``ignore_hosts`` are not policy here and must stay
empty; the onboarding app must be off; connections are opened lazily.
"""

from __future__ import annotations

import asyncio
import logging
import pathlib
import time
from collections.abc import Sequence
from typing import IO

from mitmproxy import connection, ctx, exceptions, http, tls
from mitmproxy.proxy import layer
from mitmproxy.proxy.server_hooks import ServerConnectionHookData

from services.common.contract import egress_token
from services.egress import policy
from services.egress.admissions import Admissions
from services.egress.audit import ALLOW, DEFAULT_RING_EXECUTIONS, DEFAULT_RING_SIZE, DENY, DecisionLog, Record
from services.egress.connections import (
    ClientState,
    Metered,
    Tunnel,
    own_addresses,
    peer_address,
    refuse,
    split_host_header,
)
from services.egress.grpc_service import serve_decisions
from services.egress.refusal_limit import DEFAULT_BURST, DEFAULT_INTERVAL_SECONDS
from services.egress.resolver import Resolver, parse_hosts

log = logging.getLogger(__name__)

PASSTHROUGH = "passthrough"
INTERCEPT = "intercept"
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
        self.decisions = DecisionLog(stream=decision_stream)
        self.admissions = Admissions()
        self.clients: dict[str, ClientState] = {}
        self.grpc_server = None
        self.grpc_port: int | None = None
        self.summary_task: asyncio.Future | None = None

    # --- options ------------------------------------------------------------

    def load(self, loader):
        loader.add_option("egress_allow_hosts", Sequence[str], [], "Allowed host names: exact names and *.suffix wildcards.")
        loader.add_option("egress_mode", str, PASSTHROUGH, "passthrough (TLS end to end) or intercept (terminate TLS with the egress CA).", choices=[PASSTHROUGH, INTERCEPT])
        loader.add_option("egress_allow_plain_http", bool, False, "Allow plain-HTTP requests to port 80 (Host must equal the request-URI host).")
        loader.add_option("egress_secret_file", str, "", "File holding the HMAC secret for proxy credentials (else the secret the addon was made with).")
        loader.add_option("egress_hosts_file", str, "", "hosts(5)-style file consulted before DNS by the egress's own resolver.")
        loader.add_option("egress_dns", bool, True, "Resolve names missing from egress_hosts_file with the system resolver.")
        loader.add_option("egress_allow_networks", Sequence[str], [], "CIDRs exempt from the global-unicast rule (e.g. a private mirror). Loopback, link-local, multicast and unspecified stay refused.")
        loader.add_option("egress_own_addresses", Sequence[str], [], "Extra addresses of the proxy itself, always refused as destinations.")
        loader.add_option("egress_grpc_listen", str, "", "host:port or unix:PATH of the sandbox.egress.v1.Egress gRPC service; empty to disable (no admissions: every credential refused).")
        loader.add_option("egress_ring_size", int, DEFAULT_RING_SIZE, "Decisions kept in memory per execution.")
        loader.add_option("egress_ring_executions", int, DEFAULT_RING_EXECUTIONS, "Executions whose decisions are kept in memory.")
        loader.add_option("egress_decision_log", str, "", "Append decision JSON lines to this file instead of stdout.")
        loader.add_option("egress_refusal_log_burst", int, DEFAULT_BURST, "Refusal lines written per source and interval; the rest are counted in one summary line.")
        loader.add_option("egress_refusal_log_interval", float, DEFAULT_INTERVAL_SECONDS, "Seconds of one refusal-log interval.")

    def configure(self, updated: set[str]):
        o = ctx.options
        if o.connection_strategy != "lazy":
            raise exceptions.OptionsError("egress: connection_strategy must be 'lazy' (nothing leaves before every check)")
        if o.onboarding:
            raise exceptions.OptionsError("egress: the onboarding app must be off (onboarding=false)")
        if o.allow_hosts or o.ignore_hosts:
            raise exceptions.OptionsError("egress: allow_hosts/ignore_hosts must stay empty; egress_allow_hosts is the policy")
        if o.ssl_insecure:
            raise exceptions.OptionsError("egress: ssl_insecure must stay off")
        if o.egress_mode not in (PASSTHROUGH, INTERCEPT):
            raise exceptions.OptionsError(f"egress_mode must be {PASSTHROUGH!r} or {INTERCEPT!r}")
        if any(not m.startswith("regular") for m in o.mode):
            raise exceptions.OptionsError("egress: only the regular proxy mode is supported")
        if o.egress_mode == INTERCEPT and o.http2:
            raise exceptions.OptionsError(
                "egress: http2 must be off in intercept mode (only HTTP/1.1 headers tell a request without a body)"
            )
        if "egress_allow_hosts" in updated:
            try:
                self.allowlist = policy.Allowlist.parse(o.egress_allow_hosts)
            except ValueError as exc:
                raise exceptions.OptionsError(f"egress_allow_hosts: {exc}") from exc
        if "egress_allow_networks" in updated:
            try:
                self.permitted_networks = policy.parse_networks(o.egress_allow_networks)
            except ValueError as exc:
                raise exceptions.OptionsError(f"egress_allow_networks: {exc}") from exc
        if {"egress_hosts_file", "egress_dns"} & updated:
            hosts = {}
            if o.egress_hosts_file:
                try:
                    hosts = parse_hosts(pathlib.Path(o.egress_hosts_file).read_text())
                except (OSError, ValueError) as exc:
                    raise exceptions.OptionsError(f"egress_hosts_file: {exc}") from exc
            self.resolver = Resolver(hosts, use_system=o.egress_dns)
        if {"egress_own_addresses", "listen_host"} & updated:
            self.own_addresses = own_addresses(o.egress_own_addresses, o.listen_host)
        decision_log_options = {
            "egress_ring_size", "egress_ring_executions", "egress_decision_log",
            "egress_refusal_log_burst", "egress_refusal_log_interval",
        }
        if decision_log_options & updated:
            if o.egress_ring_size < 1 or o.egress_ring_executions < 1:
                raise exceptions.OptionsError("egress ring sizes must be positive")
            if o.egress_refusal_log_burst < 1 or o.egress_refusal_log_interval <= 0:
                raise exceptions.OptionsError("egress refusal-log burst and interval must be positive")
            stream = self.decision_stream
            if o.egress_decision_log:
                stream = open(o.egress_decision_log, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the proxy
            self.decisions = DecisionLog(
                o.egress_ring_size, o.egress_ring_executions, stream,
                refusal_burst=o.egress_refusal_log_burst, refusal_interval_seconds=o.egress_refusal_log_interval,
            )
        if "egress_secret_file" in updated:
            secret = self._secret_arg
            if o.egress_secret_file:
                try:
                    secret = pathlib.Path(o.egress_secret_file).read_bytes().strip()
                except OSError as exc:
                    raise exceptions.OptionsError(f"egress_secret_file: {exc}") from exc
            if not secret or len(secret) < egress_token.MIN_SECRET_BYTES:
                raise exceptions.OptionsError(
                    f"egress: a secret of at least {egress_token.MIN_SECRET_BYTES} bytes is required "
                    "(egress_secret_file or EGRESS_SECRET)"
                )
            self.secret = secret

    # --- gRPC ---------------------------------------------------------------

    async def running(self):
        if self.summary_task is None:
            self.summary_task = asyncio.ensure_future(self._write_refusal_summaries())
        if ctx.options.egress_grpc_listen and self.grpc_server is None:
            assert self.secret is not None  # configure() refuses to go on without one
            self.grpc_server, self.grpc_port = await serve_decisions(
                self.decisions_for, ctx.options.egress_grpc_listen, self.secret, self.admissions
            )
            log.info("egress gRPC service listening on %s", ctx.options.egress_grpc_listen)

    async def done(self):
        if self.summary_task is not None:
            self.summary_task.cancel()
            self.summary_task = None
        self.decisions.flush(self.clock(), everything=True)  # whatever was counted is reported
        if self.grpc_server is not None:
            server, self.grpc_server = self.grpc_server, None
            await server.stop(1)

    async def _write_refusal_summaries(self) -> None:
        """Reports suppressed refusals when their interval is over, also when
        the flood stopped and no further refusal comes to trigger it."""
        while True:
            await asyncio.sleep(ctx.options.egress_refusal_log_interval)
            self.decisions.flush(self.clock())

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
    ) -> str | None:
        """Policy on name and port, own resolution, address checks. Returns the
        address to pin, or None after refusing the flow."""
        decision = policy.check_host(host, self.allowlist)
        if not decision:
            self._deny(record, decision.reason)
            self.decisions.add(record)
            refuse(flow, 403, decision.reason)
            return None
        name = decision.value
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
        record.resolved_address = decision.value
        return decision.value

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
            nextlayer.layer = Metered(nextlayer.layer, state)

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
        address = await self._check_destination(flow, record, host, port, TLS_PORTS)
        if address is None:
            return
        record.decision, record.reason = ALLOW, policy.Reason.ALLOWED
        name = policy.normalize_host(host)
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
        if not sni:
            reason = Reason.SNI_MISSING
        else:
            normal = policy.normalize_host(sni)
            reason = None if normal == tunnel.name else Reason.SNI_MISMATCH
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
        record = self._record(state or ClientState(peer=""), "connect", str(address[0]) if address else "", address[1] if address else 0)
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
        header_ok = bool(host_header) and header_port == tunnel.port and policy.normalize_host(header_host) == tunnel.name
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
            if isinstance(uri_host, policy.Decision):
                reason = uri_host.reason
            else:
                reason = Reason.HOST_HEADER_MISMATCH
            self._deny(record, reason)
            self.decisions.add(record)
            refuse(flow, 403, reason)
            return
        if not self._request_allowed(flow, record):
            return
        address = await self._check_destination(flow, record, request.host, request.port, PLAIN_PORTS)
        if address is None:
            return
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

