"""Which sandbox runtime an admitted execution gets: what it asked for, or
the configured default, raised to gVisor for an untrusted tenant; refused
(FAILED_PRECONDITION) when no spawner of the mesh offers it."""

from __future__ import annotations

from collections.abc import Callable

from services.common.contract.sandbox_runtimes import GVISOR, RUNC, at_least
from services.control.errors import RuntimeUnavailable

# What the spawners offer, and what "" means there (their Info; the
# spawner pool's cached answers).
Offered = Callable[[], tuple[frozenset[str], str]]


class RuntimePolicy:
    def __init__(self, default: str, untrusted_tenants: frozenset[str], offered: Offered):
        self.default = default
        self.untrusted_tenants = untrusted_tenants
        self.offered = offered

    def minimum(self, tenant: str) -> str:
        return GVISOR if tenant in self.untrusted_tenants else RUNC

    def resolve(self, tenant: str, requested: str) -> str:
        """The runtime to run in (checked `requested`, "" for the default);
        raises RuntimeUnavailable when the mesh does not offer it. With no
        spawner reachable there is nothing to judge by: the execution waits
        in the queue like any other, and a spawner refuses it if need be."""
        offered, spawners_default = self.offered()
        asked = requested or self.default or spawners_default or RUNC
        runtime = at_least(asked, self.minimum(tenant))
        if offered and runtime not in offered:
            raise RuntimeUnavailable(runtime, sorted(offered), raised=runtime != asked)
        return runtime
