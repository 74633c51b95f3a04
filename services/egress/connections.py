"""One client connection as the egress addon tracks it (its tunnel, the
addresses pinned for it, its byte counts), and the small pieces of HTTP the
addon's hooks share: refusing a flow, the client's address, Host headers."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Sequence

from mitmproxy import connection, http
from mitmproxy.proxy import commands, events, layer

from services.egress import policy
from services.egress.audit import Record

REALM = "sandbox-egress"
# "65535" at most; a longer port in a Host header is refused as malformed.
MAX_PORT_DIGITS = 5
# mitmproxy reads a request's body before it sends the response an addon set.
# A refused request announcing at most this much is read (and dropped) and
# answered; a larger or chunked one has its connection closed unread, so a
# sandbox cannot make the egress buffer an upload it refused.
MAX_DRAINED_BODY_BYTES = 64 * 1024


@dataclasses.dataclass
class Tunnel:
    name: str
    port: int
    address: str
    record: Record
    sni_checked: bool = False
    refused: bool = False


@dataclasses.dataclass
class ClientState:
    peer: str
    tunnel: Tunnel | None = None
    # (address, port) pairs a passed check pinned for this client connection.
    permitted: set[tuple[str, int]] = dataclasses.field(default_factory=set)
    bytes_up: int = 0
    bytes_down: int = 0
    metered: bool = False
    open_records: list[Record] = dataclasses.field(default_factory=list)


class Metered:
    """Wraps a client connection's top layer and counts the bytes exchanged
    with upstream servers: received from them (down) and sent to them (up)."""

    def __init__(self, inner: layer.Layer, state: ClientState):
        self.inner = inner
        self.state = state
        self.client = inner.context.client

    def handle_event(self, event: events.Event):
        if isinstance(event, events.DataReceived) and event.connection is not self.client:
            self.state.bytes_down += len(event.data)
        for command in self.inner.handle_event(event):
            if isinstance(command, commands.SendData) and command.connection is not self.client:
                self.state.bytes_up += len(command.data)
            yield command

    def __repr__(self) -> str:
        return f"Metered({self.inner!r})"


def drainable(request: http.Request) -> bool:
    """Whether a refused request's body is small enough to read and drop."""
    if request.method == "CONNECT":
        return True  # mitmproxy reads no body for CONNECT
    if "transfer-encoding" in request.headers:
        return False
    try:
        return all(0 <= int(v) <= MAX_DRAINED_BODY_BYTES for v in request.headers.get_all("content-length"))
    except ValueError:
        return False


def refuse(flow: http.HTTPFlow, status: int, reason: str) -> None:
    if not drainable(flow.request):
        flow.kill()  # no response: the connection is closed before the body is read
        return
    headers = {"Content-Type": "text/plain; charset=utf-8", "X-Egress-Reason": reason, "Connection": "close"}
    if status == 407:
        headers["Proxy-Authenticate"] = f'Basic realm="{REALM}"'
    flow.response = http.Response.make(status, f"egress refused: {reason}\n", headers)


def peer_address(client: connection.Client) -> str:
    return str(client.peername[0]) if client.peername else ""


def own_addresses(extra: Sequence[str], listen_host: str) -> set[str]:
    own = {a for a in extra if policy.parse_address(a) is not None}
    if policy.parse_address(listen_host or "") is not None:
        own.add(str(policy.parse_address(listen_host)))
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None):
            own.add(str(info[4][0]).split("%", 1)[0])
    except OSError:
        pass
    return own


def split_host_header(value: str, default_port: int) -> tuple[str, int]:
    value = value.strip()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        host = "[" + host + "]"
        port_text = rest[1:] if rest.startswith(":") else ""
    elif value.count(":") == 1:
        host, _, port_text = value.partition(":")
    else:
        host, port_text = value, ""
    if port_text:
        if not port_text.isdigit() or len(port_text) > MAX_PORT_DIGITS:
            return host, -1
        return host, int(port_text)
    return host, default_port
