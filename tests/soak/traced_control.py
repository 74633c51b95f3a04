"""`python -m tests.soak.traced_control`: control as `python -m
services.control` runs it, with tracemalloc on; SIGUSR1 writes a snapshot to
$SOAK_TRACE_DIR/<n>.snapshot. The soak's --trace-control compares them, to
tell Python objects that pile up from the allocator's own growth."""

from __future__ import annotations

import itertools
import os
import pathlib
import runpy
import signal
import tracemalloc

FRAMES = 8
_taken = itertools.count()


def _snapshot(*_) -> None:
    directory = pathlib.Path(os.environ["SOAK_TRACE_DIR"])
    tracemalloc.take_snapshot().dump(str(directory / f"{next(_taken)}.snapshot"))


if __name__ == "__main__":
    tracemalloc.start(FRAMES)
    signal.signal(signal.SIGUSR1, _snapshot)
    runpy.run_module("services.control", run_name="__main__")
