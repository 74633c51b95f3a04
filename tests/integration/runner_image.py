"""A throw-away runtime image carrying the worktree's runner.py (prestart.py, cellrelay.py, cells.py), for tests
and benchmarks of the runner hand-off; the shared image stays as built."""

from __future__ import annotations

import contextlib
import pathlib
import secrets
import shutil
import tempfile
from collections.abc import Iterator

import docker

RUNTIME_IMAGE = "sandbox-mesh/runtime:local"
RUNTIME_FOLDER = pathlib.Path(__file__).resolve().parents[2] / "images" / "runtime"
RUNNER_FILES = ("runner.py", "prestart.py", "cellrelay.py", "cells.py")
ROLE = "handoff-test"
DOCKERFILE = f"""FROM {RUNTIME_IMAGE}
COPY runner.py prestart.py cellrelay.py cells.py /opt/sandbox/
USER root
RUN python3 -m compileall -q /opt/sandbox
USER 10001:10001
LABEL sandbox-mesh.role={ROLE}
"""


@contextlib.contextmanager
def runner_test_image(api: docker.APIClient) -> Iterator[str]:
    """Builds the image, yields its tag, removes it afterwards."""
    tag = f"sandbox-mesh/runtime-handoff-test:{secrets.token_hex(6)}"
    context = pathlib.Path(tempfile.mkdtemp(prefix="handoff-image-"))
    try:
        for name in RUNNER_FILES:
            shutil.copy(RUNTIME_FOLDER / name, context / name)
            (context / name).chmod(0o644)
        (context / "Dockerfile").write_text(DOCKERFILE)
        for line in api.build(path=str(context), tag=tag, rm=True, forcerm=True, decode=True):
            if "error" in line:
                raise RuntimeError(f"building {tag}: {line['error']}")
    finally:
        shutil.rmtree(context)
    try:
        yield tag
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_image(tag, force=True)
