"""How many refusal lines one source may write to the decision log.

A sandbox can make the egress refuse it as fast as it can open connections.
Each source (its verified execution id, else its address) gets the first
``burst`` refusal lines of every ``interval``; the others are only counted,
and the count is reported once, in a summary, when the interval is over. The
state is bounded: past ``max_sources`` the oldest source's summary is
reported early and its state dropped. No I/O here: the caller writes.
"""

from __future__ import annotations

import collections
import dataclasses

DEFAULT_BURST = 20
DEFAULT_INTERVAL_SECONDS = 10.0


@dataclasses.dataclass
class Window:
    """One source's current interval."""

    start: float
    execution_id: str
    tenant: str
    client: str
    written: int = 0
    suppressed: int = 0


@dataclasses.dataclass(frozen=True)
class Summary:
    """Refusals of one source that were counted and not written."""

    execution_id: str
    tenant: str
    client: str
    suppressed: int
    since: float
    until: float


def _summary(window: Window, until: float) -> Summary:
    return Summary(window.execution_id, window.tenant, window.client, window.suppressed, window.start, until)


class RefusalLimiter:
    def __init__(self, burst: int, interval_seconds: float, max_sources: int):
        if burst < 1 or interval_seconds <= 0 or max_sources < 1:
            raise ValueError("burst, interval and max_sources must be positive")
        self.burst = burst
        self.interval = interval_seconds
        self.max_sources = max_sources
        self.suppressed_total = 0
        self._windows: collections.OrderedDict[str, Window] = collections.OrderedDict()

    def admit(
        self, source: str, now: float, execution_id: str = "", tenant: str = "", client: str = ""
    ) -> tuple[bool, list[Summary]]:
        """Whether this refusal's line may be written, and the summaries due
        (an interval of this source that ended, or an evicted source)."""
        due: list[Summary] = []
        window = self._windows.get(source)
        if window is not None and now - window.start >= self.interval:
            del self._windows[source]
            if window.suppressed:
                due.append(_summary(window, now))
            window = None
        if window is None:
            window = Window(start=now, execution_id=execution_id, tenant=tenant, client=client)
            self._windows[source] = window
            while len(self._windows) > self.max_sources:
                _, oldest = self._windows.popitem(last=False)
                if oldest.suppressed:
                    due.append(_summary(oldest, now))
        else:
            self._windows.move_to_end(source)
        if window.written < self.burst:
            window.written += 1
            return True, due
        window.suppressed += 1
        self.suppressed_total += 1
        return False, due

    def expired(self, now: float, everything: bool = False) -> list[Summary]:
        """The summaries of every interval over by ``now``, or of every
        interval (at shutdown); their state dropped."""
        due = []
        for source, window in list(self._windows.items()):
            if everything or now - window.start >= self.interval:
                del self._windows[source]
                if window.suppressed:
                    due.append(_summary(window, now))
        return due
