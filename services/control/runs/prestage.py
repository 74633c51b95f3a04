"""Pre-staging: which earlier run's output files a run starts with, and the
bound they must stay within (PrestageLimits, services/control/config.py).

Over the bound, or with a path the spawner would refuse, nothing is
pre-staged (all or nothing: a half-staged output directory would be worse
than an empty one) and the run goes ahead with a notice.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from sandbox.common.v1 import execution_pb2 as common
from services.common.contract.paths import check_path as path_refusal
from services.control.config import PrestageLimits
from services.control.executions.models import StoredFile


@dataclasses.dataclass(frozen=True)
class Prestage:
    """What a run pre-stages: the source run, its files, or why none."""

    source_run_id: str = ""
    files: tuple[common.File, ...] = ()
    notice: str = ""

    @property
    def total(self) -> int:
        return sum(len(f.content) for f in self.files)

    @property
    def inputs_from_run_id(self) -> str:
        """The run whose outputs were pre-staged: "" when there was none, or
        when its outputs were over the bound (then only the notice says so)."""
        return self.source_run_id if self.files or not self.notice else ""

    def stderr_notice(self) -> bytes:
        """The run's first stderr chunk when nothing could be pre-staged."""
        if not self.notice:
            return b""
        return f"[sandbox] outputs of run {self.source_run_id} not pre-staged: {self.notice}\n".encode()


def judge_prestage(stored: Sequence[StoredFile], limits: PrestageLimits) -> str:
    """Why these files cannot be pre-staged ("" when they can)."""
    total = sum(f.size for f in stored)
    if len(stored) > limits.max_files:
        return f"{len(stored)} files, more than the {limits.max_files} allowed"
    if total > limits.max_bytes:
        return f"{total} bytes, more than the {limits.max_bytes} allowed"
    for f in stored:
        if f.size > limits.max_file_bytes:
            return f"{f.path!r} has {f.size} bytes, more than the {limits.max_file_bytes} allowed per file"
        reason = path_refusal(f.path, max_length=limits.max_path_length)
        if reason:
            return f"{f.path!r} cannot be staged: {reason}"
    return ""
