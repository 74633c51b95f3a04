"""A network of its own for every sandbox that may reach the egress.

Each network is a Docker bridge that is `internal` (no route off its subnet),
has IPv6 off and no IPv4 address on the host's side (`inhibit_ipv4`: the host
is not on it, so a sandbox cannot reach the host's services through the
bridge either), and has exactly two members while in use: one sandbox and
the egress container, which the pool connects to every network it makes. A
sandbox therefore reaches nothing but the egress, and no two sandboxes ever
share a network; Docker's isolation rules drop traffic between bridges.

The pool holds one network per execution slot, made at start, and lends each
to one execution at a time. Before a network is lent again the pool checks
with the engine that nobody but the egress is on it (so a sandbox whose
removal failed never meets the next one); a network that fails the check is
retired (removed, or left for the next sweep) and a fresh one is made.

Networks carry this spawner's name and the pool's own token as labels, so a
restarted spawner (or its periodic sweep) removes what an earlier one left:
`reap_networks`, which disconnects every member (the egress, a leftover
sandbox) before it removes a network, and goes on after any failure.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import secrets
import threading
from collections.abc import Callable

import docker

from services.spawner import sandbox

log = logging.getLogger(__name__)

ROLE_NETWORK = "sandbox-network"
LABEL_POOL = "sandbox-mesh.pool"
# The engine's bridge options: no host address on the bridge, and members of
# the one network may talk to each other (the sandbox to the egress).
BRIDGE_OPTIONS = {
    "com.docker.network.bridge.inhibit_ipv4": "true",
    "com.docker.network.bridge.enable_icc": "true",
}
_POOL_TOKEN_BYTES = 4
_NAME_TOKEN_BYTES = 4
# Networks found occupied (and retired) before a lease gives up.
_LEASE_ATTEMPTS = 3

# (what, error, execution id or ""): what is the metric label.
OnFailure = Callable[[str, Exception, str], None]


class NetworkPoolError(RuntimeError):
    """The pool could not lend a usable network (details are logged)."""


@dataclasses.dataclass(frozen=True)
class Lease:
    network: str  # the network's name, what the sandbox joins
    egress_address: str  # the egress's IPv4 address on that network


class NetworkPool:
    def __init__(self, api: docker.APIClient, spawner_name: str, egress_container: str, on_failure: OnFailure):
        self.api = api
        self.spawner_name = spawner_name
        self.egress_container = egress_container
        self.on_failure = on_failure
        self.token = secrets.token_hex(_POOL_TOKEN_BYTES)
        self._lock = threading.Lock()
        self._free: list[str] = []
        self._lent: set[str] = set()
        self._retired: list[str] = []
        self._egress_id = self._find_egress()

    @property
    def labels(self) -> dict[str, str]:
        return {
            sandbox.LABEL_ROLE: ROLE_NETWORK,
            sandbox.LABEL_SPAWNER: self.spawner_name,
            LABEL_POOL: self.token,
        }

    def fill(self, size: int) -> None:
        """Makes networks until `size` are free or lent. Raises
        NetworkPoolError (the engine's words are logged)."""
        while True:
            with self._lock:
                if len(self._free) + len(self._lent) >= size:
                    return
            name = self._create()
            with self._lock:
                self._free.append(name)

    def lease(self) -> Lease:
        """A network no one else is on, with the egress connected. Raises
        NetworkPoolError."""
        for _ in range(_LEASE_ATTEMPTS):
            name = self._take()
            try:
                address = self._egress_address_if_alone(name)
            except Exception:
                self._retire(name)
                raise
            if address is not None:
                return Lease(name, address)
            self._retire(name)
        raise NetworkPoolError(f"no clean sandbox network after {_LEASE_ATTEMPTS} attempts")

    def release(self, lease: Lease) -> None:
        """Back to the pool; call once the sandbox is removed (the next lease
        checks that it is)."""
        with self._lock:
            if lease.network in self._lent:
                self._lent.discard(lease.network)
                self._free.append(lease.network)

    def sweep(self) -> None:
        """Tries again to remove the networks retired so far."""
        with self._lock:
            retired, self._retired = self._retired, []
        for name in retired:
            self._remove_or_keep_retired(name)

    def close(self) -> None:
        """Removes every network of the pool, lent or not (at shutdown, once
        no execution runs); each failure is reported and the rest go on."""
        with self._lock:
            names = self._free + sorted(self._lent) + self._retired
            self._free, self._lent, self._retired = [], set(), []
        for name in names:
            try:
                remove_network(self.api, name)
            except Exception as exc:
                self.on_failure("network", exc, "")

    # ---- the engine ----------------------------------------------------

    def _take(self) -> str:
        """A free network, or a new one when none is free; now lent."""
        with self._lock:
            name = self._free.pop() if self._free else None
            if name is not None:
                self._lent.add(name)
                return name
        name = self._create()
        with self._lock:
            self._lent.add(name)
        return name

    def _find_egress(self) -> str:
        try:
            return self.api.inspect_container(self.egress_container)["Id"]
        except docker.errors.NotFound:
            raise NetworkPoolError(f"no such container: {self.egress_container!r}") from None

    def _create(self) -> str:
        name = f"sandbox-mesh-{self.spawner_name}-{secrets.token_hex(_NAME_TOKEN_BYTES)}"
        try:
            self.api.create_network(
                name,
                driver="bridge",
                internal=True,
                enable_ipv6=False,
                options=BRIDGE_OPTIONS,
                labels=self.labels,
                check_duplicate=True,
            )
        except docker.errors.APIError as exc:
            log.error("cannot create the sandbox network %s: %s", name, exc)
            raise NetworkPoolError("cannot create a sandbox network") from None
        try:
            self.api.connect_container_to_network(self._egress_id, name)
        except docker.errors.APIError as exc:
            log.error("cannot connect the egress to %s: %s", name, exc)
            self._remove_or_keep_retired(name)
            raise NetworkPoolError("cannot connect the egress to a sandbox network") from None
        return name

    def _egress_address_if_alone(self, name: str) -> str | None:
        """The egress's address on the network, or None when someone else is
        on it too. An egress that was recreated since is connected again."""
        try:
            members = self.api.inspect_network(name).get("Containers") or {}
            if set(members) - {self._egress_id}:
                log.error("sandbox network %s still has members %s; retiring it", name, sorted(members))
                return None
            if self._egress_id not in members:
                self._egress_id = self._find_egress()
                self.api.connect_container_to_network(self._egress_id, name)
                members = self.api.inspect_network(name).get("Containers") or {}
        except docker.errors.APIError as exc:
            log.error("cannot check the sandbox network %s: %s", name, exc)
            raise NetworkPoolError("cannot check a sandbox network") from None
        entry = members.get(self._egress_id) or {}
        address = (entry.get("IPv4Address") or "").partition("/")[0]
        if not address:
            raise NetworkPoolError(f"the egress has no address on {name}")
        return address

    def _retire(self, name: str) -> None:
        with self._lock:
            self._lent.discard(name)
        self._remove_or_keep_retired(name)

    def _remove_or_keep_retired(self, name: str) -> None:
        try:
            remove_network(self.api, name)
        except Exception as exc:
            self.on_failure("network", exc, "")
            with self._lock:
                self._retired.append(name)


def remove_network(api: docker.APIClient, name: str) -> None:
    """Disconnects every member (the egress first), then removes the network.
    A network already gone is not an error."""
    try:
        members = api.inspect_network(name).get("Containers") or {}
    except docker.errors.NotFound:
        return
    for container_id in members:
        with contextlib.suppress(docker.errors.NotFound):
            api.disconnect_container_from_network(container_id, name, force=True)
    with contextlib.suppress(docker.errors.NotFound):
        api.remove_network(name)


def reap_networks(api: docker.APIClient, spawner_name: str, current_pool: str | None, on_failure: OnFailure) -> None:
    """Removes this spawner's sandbox networks that are not the current
    pool's; one failure does not stop the others."""
    labels = [f"{sandbox.LABEL_ROLE}={ROLE_NETWORK}", f"{sandbox.LABEL_SPAWNER}={spawner_name}"]
    try:
        networks = api.networks(filters={"label": labels})
    except Exception as exc:
        on_failure("network", exc, "")
        return
    for network in networks:
        if current_pool is not None and (network.get("Labels") or {}).get(LABEL_POOL) == current_pool:
            continue
        try:
            log.warning("reaping sandbox network %s: left by an earlier pool", network["Name"])
            remove_network(api, network["Id"])
        except Exception as exc:
            on_failure("network", exc, "")
