"""Prints the non-global addresses that the given registry hosts resolve to
on this machine, comma-separated, as single-address networks.

    python -m services.egress.private_registries host1,host2

Used by `make up`: where registries are reached through a LAN mirror or a
TLS-intercepting gateway, their names resolve to private addresses, which the
egress refuses unless told to accept exactly those (EGRESS_ALLOW_NETWORKS).
"""

from __future__ import annotations

import ipaddress
import socket
import sys

from services.common.settings import split_comma_list


def non_global_addresses(hosts: list[str]) -> list[str]:
    found = set()
    for host in hosts:
        try:
            infos = socket.getaddrinfo(host, 443, type=socket.SOCK_STREAM)
        except socket.gaierror:
            continue
        for info in infos:
            address = ipaddress.ip_address(info[4][0])
            if not address.is_global:
                found.add(str(ipaddress.ip_network(address)))
    return sorted(found)


def main(argv: list[str]) -> int:
    # Wildcards name no host to resolve.
    hosts = [h for h in split_comma_list(argv[1] if len(argv) > 1 else "") if not h.startswith("*")]
    print(",".join(non_global_addresses(hosts)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
