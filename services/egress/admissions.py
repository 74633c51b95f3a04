"""Which executions' proxy credentials the egress accepts, and from where.

A credential (services/common/contract/egress_token.py) proves which
execution it was minted for, but it is a bearer token: copied elsewhere it
would work from anywhere until it expires. The spawner therefore admits an
execution with its sandbox's address once the sandbox has started, and
revokes it when the execution ends. A credential is accepted only while its
execution is admitted and only from that address; anything else is refused
(fail closed, including everything unknown after an egress restart).

Both tables are bounded: the oldest admission is dropped past
``MAX_ADMITTED`` (its execution is refused from then on), the oldest
revocation past ``MAX_REVOKED`` (its credentials are refused all the same,
as not admitted; only re-admitting it becomes possible).
"""

from __future__ import annotations

import collections
import ipaddress
import threading

# Far above the executions in flight behind one egress (a spawner runs at
# most 256 at once).
MAX_ADMITTED = 4096
MAX_REVOKED = 16384


class Refusal:
    NOT_ADMITTED = "credentials_not_admitted"
    REVOKED = "credentials_revoked"
    WRONG_SOURCE = "credentials_wrong_source"


class AdmissionError(ValueError):
    """An Admit the egress will not do (another address, or revoked)."""


def canonical_address(text: str) -> str | None:
    """The address in one spelling (an IPv4-mapped IPv6 address as IPv4), or
    None when ``text`` is not an IP address."""
    if not isinstance(text, str) or "%" in text:
        return None
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return str(address)


class Admissions:
    def __init__(self, max_admitted: int = MAX_ADMITTED, max_revoked: int = MAX_REVOKED):
        self.max_admitted = max_admitted
        self.max_revoked = max_revoked
        self._admitted: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._revoked: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._lock = threading.Lock()

    def admit(self, execution_id: str, address: str) -> None:
        """Raises ValueError for an address that is not one, AdmissionError
        for an execution revoked or admitted with another address."""
        canonical = canonical_address(address)
        if canonical is None:
            raise ValueError(f"not an IP address: {address!r}")
        with self._lock:
            if execution_id in self._revoked:
                raise AdmissionError(f"execution {execution_id} was revoked")
            current = self._admitted.get(execution_id)
            if current is not None and current != canonical:
                raise AdmissionError(f"execution {execution_id} is admitted with another address")
            self._admitted[execution_id] = canonical
            self._admitted.move_to_end(execution_id)
            while len(self._admitted) > self.max_admitted:
                self._admitted.popitem(last=False)

    def revoke(self, execution_id: str) -> bool:
        """Whether the execution was admitted."""
        with self._lock:
            was_admitted = self._admitted.pop(execution_id, None) is not None
            self._revoked[execution_id] = None
            self._revoked.move_to_end(execution_id)
            while len(self._revoked) > self.max_revoked:
                self._revoked.popitem(last=False)
        return was_admitted

    def check(self, execution_id: str, source: str) -> str | None:
        """None when ``execution_id``'s credentials may be used from
        ``source`` (the client's address), else a ``Refusal`` reason."""
        with self._lock:
            admitted = self._admitted.get(execution_id)
            revoked = execution_id in self._revoked
        if admitted is None:
            return Refusal.REVOKED if revoked else Refusal.NOT_ADMITTED
        if canonical_address(source) != admitted:
            return Refusal.WRONG_SOURCE
        return None

    def __len__(self) -> int:
        return len(self._admitted)
