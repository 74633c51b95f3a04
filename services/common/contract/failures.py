"""What a tenant is told when the spawner, not the program, failed
(SPAWNER_UNAVAILABLE): a fixed sentence for each stage of an execution.

What the engine or the host said (Docker's error text names images, host
paths, engine versions and internals) is logged with the execution id and
never sent. Control records a spawner's SPAWNER_UNAVAILABLE message only
when it is one of these.
"""

from __future__ import annotations

WORKSPACE_NOT_PREPARED = "the sandbox's workspace could not be prepared"
SANDBOX_NOT_STARTED = "the sandbox could not be started"
SANDBOX_FAILED = "the sandbox failed while running"
OUTPUTS_NOT_COLLECTED = "the sandbox's output files could not be collected"
SPAWNER_FAILED = "the spawner failed"
EGRESS_LOST = "the egress restarted or did not answer during the package install; retry"

STABLE_MESSAGES = frozenset(
    {WORKSPACE_NOT_PREPARED, SANDBOX_NOT_STARTED, SANDBOX_FAILED, OUTPUTS_NOT_COLLECTED, SPAWNER_FAILED, EGRESS_LOST}
)


def stable_message(message: str) -> str:
    """`message` when it is one of the fixed sentences, SPAWNER_FAILED otherwise."""
    return message if message in STABLE_MESSAGES else SPAWNER_FAILED
