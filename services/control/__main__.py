"""`python -m services.control`: run control until SIGTERM or SIGINT."""

from __future__ import annotations

import logging
import signal
import sys
import threading

from services.control.config import ControlSettings
from services.control.server import ConfigurationError, start


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = ControlSettings()
    try:
        running = start(settings)
    except ConfigurationError as exc:
        logging.error("%s", exc)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    logging.info("stopping: cancelling executions in flight")
    running.stop()
    logging.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
