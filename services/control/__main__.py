"""`python -m services.control`: run control until SIGTERM or SIGINT, then
drain executions in flight for CONTROL_DRAIN_SECONDS (drain.py)."""

import sys

from pydantic import ValidationError

from services.common.serve import run_until_signalled
from services.control.config import ControlSettings
from services.control.server import ConfigurationError, start

if __name__ == "__main__":
    sys.exit(
        run_until_signalled(
            lambda: start(ControlSettings()),
            lambda running: running.stop(drain_seconds=running.drain_seconds),
            (ConfigurationError, ValidationError),
        )
    )
