"""Ends what one sandbox made, in two halves.

`stop` freezes (or, where it cannot, kills) the container's processes
and reads what it used (from its cgroup parent,
once nothing runs in it, and the engine's OOM flag); the execution's result
is complete after it. `remove` takes the container, the cgroup parent and
the workspace away, which is most of the time an execution costs, so the
spawner may run it after the caller has the result (services/spawner/
execution.py). Each step of either runs whatever happened to the ones
before it: a failure of any kind (a Docker error, an OSError, a bug) is
handed to `on_failure`, which logs it with the execution id and counts it,
and the next step goes on. The usage is read even when the kill failed, so it
is charged whatever else failed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable

from services.spawner.cgroups import CgroupParent, CgroupUsage
from services.spawner.sandbox import SandboxContainer
from services.spawner.workspace import Workspace

log = logging.getLogger(__name__)

# How long a sandbox whose processes were killed may take to be seen ended.
ENDING_SECONDS = 2
# (what, error): what is the metric label, "container", "cgroup" or "workspace".
OnFailure = Callable[[str, Exception], None]


@dataclasses.dataclass(frozen=True)
class CleanUpReport:
    usage: CgroupUsage
    engine_oom: bool  # the engine's OOMKilled flag of the container


def stop(container: SandboxContainer | None, parent: CgroupParent, on_failure: OnFailure) -> CleanUpReport:
    engine_oom = False
    if container is not None:
        try:
            # Frozen, the cgroup's own OOM count is the whole story (read
            # below); killed, the engine's flag is read as well.
            if not _froze(parent):
                container.kill()
                engine_oom = container.oom_killed()
        except Exception as exc:
            on_failure("container", exc)
    usage = CgroupUsage()
    try:
        usage = parent.read()
    except Exception as exc:
        on_failure("cgroup", exc)
    return CleanUpReport(usage, engine_oom)


def remove(
    container: SandboxContainer | None,
    workspace: Workspace | None,
    parent: CgroupParent,
    on_failure: OnFailure,
    end_by_signal: bool = False,
) -> None:
    """`end_by_signal`: the frozen sandbox's processes are killed through
    its cgroup (runc sandboxes; a gVisor sandbox is left to the engine)."""
    if container is not None:
        ended = end_by_signal and _ended(parent)
        _attempt("cgroup", parent.thaw, on_failure)  # a frozen process cannot die
        if ended:
            # Ended by itself, the container costs the engine no kill; a
            # container still running after the wait is killed by the removal.
            with contextlib.suppress(Exception):
                container.wait_ended(ENDING_SECONDS)
        _attempt("container", container.remove, on_failure)
    _attempt("cgroup", parent.remove, on_failure)
    if workspace is not None:
        _attempt("workspace", workspace.remove, on_failure)


def clean_up(
    container: SandboxContainer | None,
    workspace: Workspace | None,
    parent: CgroupParent,
    on_failure: OnFailure,
) -> CleanUpReport:
    """Both halves at once."""
    report = stop(container, parent, on_failure)
    remove(container, workspace, parent, on_failure)
    return report


def _ended(parent: CgroupParent) -> bool:
    try:
        return parent.end_frozen()
    except OSError as exc:
        log.warning("cannot kill a frozen sandbox's processes, the engine will: %s", exc)
        return False


def _froze(parent: CgroupParent) -> bool:
    """Freezes the sandbox's processes; False (and the engine kills them
    instead) where the spawner cannot."""
    try:
        parent.freeze()
    except OSError as exc:
        log.warning("cannot freeze a sandbox, killing it through the engine: %s", exc)
        # Whatever did freeze could not die (nor a gVisor sandbox end) before
        # the engine's kill gives up.
        _attempt("cgroup", parent.thaw, lambda what, error: log.warning("cannot thaw a sandbox: %s", error))
        return False
    return True


def _attempt(what: str, action: Callable[[], None], on_failure: OnFailure) -> None:
    try:
        action()
    except Exception as exc:
        on_failure(what, exc)
