"""The sandbox runtimes a request may ask for: the kernel boundary its
program runs behind. `runc` shares the host's kernel behind seccomp and
dropped capabilities; `gvisor` puts gVisor's user-space kernel between the
program and the host's (docs/security.md). Not to be confused with the
runtimes of contract/runtimes.py, which name the image a program runs in."""

from __future__ import annotations

from services.common.contract.errors import InvalidArgument

DEFAULT = ""  # whatever the service's configured default is
RUNC = "runc"
GVISOR = "gvisor"
# Weakest wall first: a tenant's minimum is a place in this order.
SANDBOX_RUNTIMES: tuple[str, ...] = (RUNC, GVISOR)


def check_sandbox_runtime(value: str, field: str = "runtime") -> str:
    """A requested runtime ("" for the default); InvalidArgument naming
    `field` if it is none of SANDBOX_RUNTIMES."""
    if value and value not in SANDBOX_RUNTIMES:
        offered = ", ".join(repr(r) for r in SANDBOX_RUNTIMES)
        raise InvalidArgument(field, f"unknown runtime {value!r} (one of {offered}; '' for the default)")
    return value


def at_least(runtime: str, minimum: str) -> str:
    """`runtime`, or `minimum` when that is the stronger wall."""
    if SANDBOX_RUNTIMES.index(minimum) > SANDBOX_RUNTIMES.index(runtime):
        return minimum
    return runtime
