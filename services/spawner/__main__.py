"""`python -m services.spawner`: run the spawner until SIGTERM or SIGINT."""

from __future__ import annotations

import logging
import signal
import sys
import threading

from services.spawner.config import SpawnerSettings
from services.spawner.server import start
from services.spawner.spawner import ConfigurationError


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = SpawnerSettings()
    try:
        running = start(settings)
    except ConfigurationError as exc:
        logging.error("%s", exc)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    logging.info("stopping: draining executions in flight")
    running.stop(grace_seconds=settings.drain_seconds)
    logging.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
