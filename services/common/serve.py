"""The `python -m services.<name>` loop shared by control and the spawner:
JSON logs with the trace id of each line's call, start, wait for SIGTERM or
SIGINT, stop gracefully."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from typing import TypeVar

from services.common.logs import setup_logging
from services.common.tracing import TraceLogFilter

log = logging.getLogger(__name__)

Running = TypeVar("Running")


def run_until_signalled(
    start: Callable[[], Running], stop: Callable[[Running], None], refusals: tuple[type[Exception], ...]
) -> int:
    """Returns the process exit code: 2 when `start` refuses its
    configuration (one of `refusals`), else 0 after a graceful stop."""
    setup_logging(filters=[TraceLogFilter()])
    try:
        running = start()
    except refusals as exc:
        log.error("%s", exc)
        return 2
    signalled = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: signalled.set())
    signalled.wait()
    log.info("stopping")
    stop(running)
    log.info("stopped")
    return 0
