"""Egress policy: which destinations a sandbox may reach. Pure functions, no I/O.

Three checks on where a connection goes, applied in this order by the addon:

1. ``check_host(host, allowlist)``: the requested name. IP literals are refused
   in every spelling (dotted, decimal, hex, octal, short forms, IPv6, bracketed);
   names are normalised (ASCII case, one trailing dot, IDNA 2008) and must be
   on the allowlist of exact names and ``*.suffix`` wildcards.
2. ``check_port(port, allowed_ports)``.
3. ``check_addresses(addresses, own_addresses, permitted)``: every address the
   name resolves to must be global unicast; loopback, private, link-local (the
   cloud metadata address among them), CGNAT, IPv4-mapped/compatible, NAT64,
   6to4, Teredo, multicast, unspecified, reserved and the proxy's own
   addresses are refused. Operator-``permitted`` networks (a private mirror)
   are exempt from the global-unicast rule only.

And one on what a request does, wherever the egress sees requests (inside
intercepted tunnels, and plain HTTP):

4. ``check_request(method, headers)``: only what package installs need,
   ``GET`` and ``HEAD`` with no request body and no protocol switch. A body
   is announced by ``Content-Length`` (other than 0) or ``Transfer-Encoding``;
   ``Upgrade`` asks for another protocol. ``CONNECT`` and every other method
   are refused. (HTTP/2 must be off where this applies: only in HTTP/1.1
   does a request without those headers certainly carry no body.)

Every check returns a ``Decision`` whose ``reason`` is a stable,
machine-readable string (one of the ``Reason`` constants).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Iterable

import idna

MAX_NAME_LENGTH = 253
MAX_LABEL_LENGTH = 63
# What package installs need from a registry: reading.
ALLOWED_METHODS = frozenset({"GET", "HEAD"})
# A refused method is recorded, cut here (it is whatever the client sent).
MAX_RECORDED_METHOD_LENGTH = 16


class Reason:
    ALLOWED = "allowed"
    # host
    EMPTY_HOST = "empty_host"
    IP_LITERAL = "ip_literal"
    INVALID_HOST = "invalid_host"
    INVALID_IDNA = "invalid_idna"
    NAME_TOO_LONG = "name_too_long"
    LABEL_TOO_LONG = "label_too_long"
    NOT_ALLOWLISTED = "not_allowlisted"
    # port
    PORT_NOT_ALLOWED = "port_not_allowed"
    # resolved address
    UNRESOLVABLE = "unresolvable"
    LOOPBACK = "loopback_address"
    PRIVATE = "private_address"
    LINK_LOCAL = "link_local_address"
    CGNAT = "cgnat_address"
    IPV4_MAPPED = "ipv4_mapped_address"
    IPV4_COMPATIBLE = "ipv4_compatible_address"
    NAT64 = "nat64_address"
    SIX_TO_FOUR = "6to4_address"
    TEREDO = "teredo_address"
    MULTICAST = "multicast_address"
    UNSPECIFIED = "unspecified_address"
    RESERVED = "reserved_address"
    NOT_GLOBAL = "non_global_address"
    OWN_ADDRESS = "proxy_own_address"
    # request
    METHOD_NOT_ALLOWED = "method_not_allowed"
    REQUEST_BODY_REFUSED = "request_body_refused"
    UPGRADE_REFUSED = "upgrade_refused"


@dataclasses.dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    # The normalised host, the port or the address, by check.
    value: str | None = None

    def __bool__(self) -> bool:  # a Decision reads as "allowed?"
        return self.allowed

    def allowed_value(self) -> str:
        """The host, port or address an allowing check settled on."""
        if not self.allowed or self.value is None:
            raise ValueError(f"no value: the check refused ({self.reason})")
        return self.value


def _deny(reason: str, value: str | None = None) -> Decision:
    return Decision(False, reason, value)


# A label of an ASCII (or already punycoded) host name: letters, digits, inner hyphens.
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")
# The WHATWG URL rule: a host whose last label is a number (decimal, 0x-hex,
# octal with a leading 0) is parsed as an IPv4 address by resolvers and
# browsers (`127.1`, `2130706433`, `0x7f.1`, `0177.0.0.1`). No real top-level
# domain is numeric, so any such name is an IP literal.
_NUMERIC_LABEL = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)$")


def normalize_host(host: str) -> str | Decision:
    """The canonical form of ``host`` (lower-case ASCII, IDNA 2008 A-labels, no
    trailing dot), or a refusal. IP literals are refused here, in every form."""
    if not isinstance(host, str) or host == "":
        return _deny(Reason.EMPTY_HOST)
    if len(host) > 4 * MAX_NAME_LENGTH:
        return _deny(Reason.NAME_TOO_LONG)
    if host.startswith("[") or ":" in host:
        return _deny(Reason.IP_LITERAL)  # IPv6, bracketed or with a port/zone
    name = host[:-1] if host.endswith(".") else host
    if name == "":
        return _deny(Reason.EMPTY_HOST)
    if name.isascii():
        name = name.lower()
    else:
        # Strict IDNA 2008 (no UTS 46 mapping): full-width letters, other
        # compatibility characters and mixed case are refused rather than
        # folded onto ASCII, so a look-alike can only ever become an xn-- name,
        # which never equals an ASCII allowlist entry.
        try:
            name = idna.encode(name, uts46=False, std3_rules=True).decode("ascii")
        except (idna.IDNAError, UnicodeError, ValueError):
            return _deny(Reason.INVALID_IDNA)
    labels = name.split(".")
    # Covers every IPv4 address too (its last label is decimal); IPv6 was
    # refused above by its colons.
    if _NUMERIC_LABEL.match(labels[-1]):
        return _deny(Reason.IP_LITERAL)
    for label in labels:
        if len(label) > MAX_LABEL_LENGTH:
            return _deny(Reason.LABEL_TOO_LONG)
        if not _LABEL.match(label):
            return _deny(Reason.INVALID_HOST)
    if len(name) > MAX_NAME_LENGTH:
        return _deny(Reason.NAME_TOO_LONG)
    return name


@dataclasses.dataclass(frozen=True)
class Allowlist:
    """Exact names and ``*.suffix`` wildcards. A wildcard matches names with at
    least one more label than its suffix, never the suffix itself."""

    exact: frozenset[str]
    suffixes: frozenset[str]

    @classmethod
    def parse(cls, entries: Iterable[str]) -> Allowlist:
        exact: set[str] = set()
        suffixes: set[str] = set()
        for raw in entries:
            entry = raw.strip()
            if not entry:
                continue
            wildcard = entry.startswith("*.")
            normal = normalize_host(entry[2:] if wildcard else entry)
            if isinstance(normal, Decision):
                raise ValueError(f"allowlist entry {raw!r} is not a host name ({normal.reason})")
            if "*" in normal:
                raise ValueError(f"allowlist entry {raw!r}: only a leading '*.' is allowed")
            (suffixes if wildcard else exact).add(normal)
        return cls(frozenset(exact), frozenset(suffixes))

    def __contains__(self, name: str) -> bool:
        if name in self.exact:
            return True
        labels = name.split(".")
        return any(".".join(labels[i:]) in self.suffixes for i in range(1, len(labels)))

    def entries(self) -> list[str]:
        return sorted(self.exact) + sorted(f"*.{s}" for s in self.suffixes)

    def __len__(self) -> int:
        return len(self.exact) + len(self.suffixes)


def check_host(host: str, allowlist: Allowlist) -> Decision:
    normal = normalize_host(host)
    if isinstance(normal, Decision):
        return normal
    if normal not in allowlist:
        return _deny(Reason.NOT_ALLOWLISTED, normal)
    return Decision(True, Reason.ALLOWED, normal)


def check_port(port: int, allowed_ports: Iterable[int]) -> Decision:
    if isinstance(port, int) and not isinstance(port, bool) and port in set(allowed_ports):
        return Decision(True, Reason.ALLOWED, str(port))
    return _deny(Reason.PORT_NOT_ALLOWED, str(port))


_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
_TEREDO = ipaddress.ip_network("2001::/32")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_SITE_LOCAL = ipaddress.ip_network("fec0::/10")


def parse_address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """A strictly written address (as resolvers return them), zone ids refused."""
    if not isinstance(value, str) or "%" in value:
        return None
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """CIDRs an operator exempts from the global-unicast rule (a private mirror)."""
    networks = []
    for value in values:
        value = value.strip()
        if value:
            networks.append(ipaddress.ip_network(value, strict=True))
    return tuple(networks)


def check_address(address: str, own_addresses: Iterable[str] = (), permitted: Iterable[Network] = ()) -> Decision:
    """Refuses any address that is not global unicast, and the proxy's own.

    ``permitted`` networks (operator configuration, e.g. a private package
    mirror) are exempt from the global-unicast rule, but never from the
    unspecified, loopback, multicast, link-local and own-address rules."""
    ip = parse_address(address)
    if ip is None:
        return _deny(Reason.UNRESOLVABLE, address)
    text = str(ip)
    if ip.is_unspecified:
        return _deny(Reason.UNSPECIFIED, text)
    if ip.is_loopback:
        return _deny(Reason.LOOPBACK, text)
    if ip.is_multicast:
        return _deny(Reason.MULTICAST, text)
    if ip.is_link_local:
        return _deny(Reason.LINK_LOCAL, text)
    own = {str(a) for a in (parse_address(o) for o in own_addresses) if a is not None}
    if text in own:
        return _deny(Reason.OWN_ADDRESS, text)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return _deny(Reason.IPV4_MAPPED, text)
    if any(ip.version == net.version and ip in net for net in permitted):
        return Decision(True, Reason.ALLOWED, text)
    if isinstance(ip, ipaddress.IPv6Address):
        # Embedded-IPv4 forms reach IPv4 space through translators or tunnels
        # (IPv4-mapped was refused above, before the permitted networks).
        if any(ip in net for net in _NAT64):
            return _deny(Reason.NAT64, text)
        if ip in _SIX_TO_FOUR:
            return _deny(Reason.SIX_TO_FOUR, text)
        if ip in _TEREDO:
            return _deny(Reason.TEREDO, text)
        if ip in _IPV4_COMPATIBLE:
            return _deny(Reason.IPV4_COMPATIBLE, text)
        if ip in _SITE_LOCAL:
            return _deny(Reason.PRIVATE, text)
    elif ip in _CGNAT:
        return _deny(Reason.CGNAT, text)
    if ip.is_private:
        return _deny(Reason.PRIVATE, text)
    if ip.is_reserved:
        return _deny(Reason.RESERVED, text)
    if not ip.is_global:
        return _deny(Reason.NOT_GLOBAL, text)
    return Decision(True, Reason.ALLOWED, text)


def check_addresses(
    addresses: Iterable[str], own_addresses: Iterable[str] = (), permitted: Iterable[Network] = ()
) -> Decision:
    """All resolved addresses must pass (one bad answer refuses the name: a
    resolver mixing public and private answers is an attack, not an accident).
    On success ``value`` is the first address, the one to pin."""
    addresses = list(addresses)
    if not addresses:
        return _deny(Reason.UNRESOLVABLE)
    own, permitted = list(own_addresses), list(permitted)
    for address in addresses:
        decision = check_address(address, own, permitted)
        if not decision.allowed:
            return decision
    return Decision(True, Reason.ALLOWED, str(ipaddress.ip_address(addresses[0])))


def check_request(method: str, headers: Iterable[tuple[str, str]]) -> Decision:
    """``GET`` or ``HEAD``, no body, no upgrade. ``headers`` are (name, value)
    pairs as received, repeated names included. On refusal of a method,
    ``value`` is the method (cut short)."""
    if method not in ALLOWED_METHODS:  # methods are case-sensitive: "get" is not GET
        return _deny(Reason.METHOD_NOT_ALLOWED, str(method)[:MAX_RECORDED_METHOD_LENGTH])
    for name, value in headers:
        name = name.strip().lower()
        if name == "upgrade":
            return _deny(Reason.UPGRADE_REFUSED)
        if name == "transfer-encoding":
            return _deny(Reason.REQUEST_BODY_REFUSED)
        # Any other value, a malformed one included, may announce a body.
        if name == "content-length" and value.strip() != "0":
            return _deny(Reason.REQUEST_BODY_REFUSED)
    return Decision(True, Reason.ALLOWED)
