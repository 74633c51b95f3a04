"""Name resolution done by the egress itself: a hosts file first (tests, and
operators pinning a mirror), then the system resolver unless turned off."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

from services.egress.policy import Decision, normalize_host, parse_address


def parse_hosts(text: str) -> dict[str, list[str]]:
    """``address name [name ...]`` lines, ``#`` comments; names normalised."""
    table: dict[str, list[str]] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        if len(fields) < 2 or parse_address(fields[0]) is None:
            raise ValueError(f"hosts line {number}: expected 'address name...', got {raw!r}")
        address = str(parse_address(fields[0]))
        for name in fields[1:]:
            normal = normalize_host(name)
            if isinstance(normal, Decision):
                raise ValueError(f"hosts line {number}: {name!r} is not a host name ({normal.reason})")
            addresses = table.setdefault(normal, [])
            if address not in addresses:
                addresses.append(address)
    return table


SystemLookup = Callable[[str], Awaitable[list[str]]]


async def system_lookup(name: str) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(name, None, type=socket.SOCK_STREAM)
    addresses: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = str(sockaddr[0]).split("%", 1)[0]
        if address not in addresses:
            addresses.append(address)
    return addresses


class Resolver:
    def __init__(
        self,
        hosts: dict[str, list[str]] | None = None,
        use_system: bool = True,
        lookup: SystemLookup = system_lookup,
        timeout: float = 5.0,
    ):
        self.hosts = hosts or {}
        self.use_system = use_system
        self.lookup = lookup
        self.timeout = timeout

    async def resolve(self, name: str) -> list[str]:
        """Every address of a normalised name; [] when it does not resolve."""
        if name in self.hosts:
            return list(self.hosts[name])
        if not self.use_system:
            return []
        try:
            return await asyncio.wait_for(self.lookup(name), self.timeout)
        except (TimeoutError, OSError, UnicodeError):
            return []
