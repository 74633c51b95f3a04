"""`python -m services.spawner`: run the spawner until SIGTERM or SIGINT, then
drain executions in flight for SPAWNER_DRAIN_SECONDS."""

import sys

from pydantic import ValidationError

from services.common.serve import run_until_signalled
from services.spawner.config import SpawnerSettings
from services.spawner.server import start
from services.spawner.spawner import ConfigurationError

if __name__ == "__main__":
    sys.exit(
        run_until_signalled(
            lambda: start(SpawnerSettings()),
            lambda running: running.stop(grace_seconds=running.spawner.settings.drain_seconds),
            (ConfigurationError, ValidationError),
        )
    )
