"""Removes what one execution made (its container, cgroup parent and
workspace) and reads what it used.

Each step runs whatever happened to the ones before it: a failure of any kind
(a Docker error, an OSError, a bug) is handed to `on_failure`, which logs it
with the execution id and counts it, and the next step goes on. The usage is
read from the cgroup parent once the container is dead and before the parent
is removed, so it is charged whatever else failed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from services.spawner.cgroups import CgroupParent, CgroupUsage
from services.spawner.sandbox import SandboxContainer
from services.spawner.workspace import Workspace

# (what, error): what is the metric label, "container", "cgroup" or "workspace".
OnFailure = Callable[[str, Exception], None]


@dataclasses.dataclass(frozen=True)
class CleanUpReport:
    usage: CgroupUsage
    engine_oom: bool  # the engine's OOMKilled flag of the container


def clean_up(
    container: SandboxContainer | None,
    workspace: Workspace | None,
    parent: CgroupParent,
    on_failure: OnFailure,
) -> CleanUpReport:
    engine_oom = False
    if container is not None:
        try:
            container.kill()
            engine_oom = container.oom_killed()
        except Exception as exc:
            on_failure("container", exc)
        _attempt("container", container.remove, on_failure)
    usage = CgroupUsage()
    try:
        usage = parent.read()
    except Exception as exc:
        on_failure("cgroup", exc)
    _attempt("cgroup", parent.remove, on_failure)
    if workspace is not None:
        _attempt("workspace", workspace.remove, on_failure)
    return CleanUpReport(usage, engine_oom)


def _attempt(what: str, action: Callable[[], None], on_failure: OnFailure) -> None:
    try:
        action()
    except Exception as exc:
        on_failure(what, exc)
