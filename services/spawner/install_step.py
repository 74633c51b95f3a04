"""The install step of a sandbox: the requested packages installed into its
workspace through the egress, or restored from the install cache. One step
for an execution (services/spawner/execution.py) and for a session's
packages at creation (services/spawner/sessions/packages.py), so both get
the same installer, cache, timeout and reading of a failure.

The installer's output is kept (a bounded tail) for the error message,
never streamed as the program's output.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable

import docker

from services.common.contract.packages import requirement
from services.common.contract.requests import Package
from services.spawner import install, sandbox
from services.spawner.handoff import HandoffError
from services.spawner.install_cache import InstallCache
from services.spawner.provision import Sandbox

OUTPUT_TAIL_BYTES = 4096  # of the installer's output, kept
MESSAGE_CHARS = 1000  # of those, quoted in the error message


@dataclasses.dataclass
class InstallOutcome:
    exit_code: int = 0  # sandbox.NO_EXIT_CODE when it never finished (killed)
    install_ms: int = 0
    not_found: bool = False  # the installer says a package does not exist
    output: str = ""  # the end of the installer's output, when it failed

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def install_packages(
    box: Sandbox,
    cache: InstallCache | None,
    language: str,
    packages: tuple[Package, ...],
    *,
    allow_sdist: bool,
    allow_scripts: bool,
    environment: dict[str, str],
    timeout_ms: int,
    on_timeout: Callable[[], object],
    killed: Callable[[], bool],
) -> InstallOutcome:
    """Installs `packages` into the started sandbox's workspace. `environment`
    carries the egress proxy and the credentials; `on_timeout` kills the
    sandbox (from a timer thread) and `killed` says whether something did."""
    requirements = [requirement(language, p.name, p.version) for p in packages]
    argv = install.install_command(language, requirements, allow_sdist=allow_sdist, allow_scripts=allow_scripts)
    destination = box.workspace.deps / install.INSTALLED[language]
    key = ""
    if cache is not None and box.container is not None and not (allow_sdist or allow_scripts):
        key = cache.key(box.container.image_id(), language, requirements)  # no package code runs
        started = time.monotonic()
        if cache.restore(key, destination):
            box.workspace.hand_over()
            return InstallOutcome(install_ms=int((time.monotonic() - started) * 1000))
    timer = threading.Timer(timeout_ms / 1000, on_timeout)
    timer.daemon = True
    outcome = InstallOutcome()
    started = time.monotonic()
    tail = bytearray()
    timer.start()
    handle = None
    try:
        try:
            handle = box.start_program(
                argv, {**environment, **install.install_environment()}, sandbox.WORKSPACE, stdin=False
            )
            for _, data in handle.stream():
                tail += data
                del tail[:-OUTPUT_TAIL_BYTES]
        except (docker.errors.APIError, HandoffError):
            if not killed():
                raise
        outcome.exit_code = sandbox.exit_code_of(handle, True if killed() else None)
    finally:
        timer.cancel()
        outcome.install_ms = int((time.monotonic() - started) * 1000)
    if cache is not None and key and outcome.ok and not killed():
        cache.store(key, destination)  # before any program runs
    if not outcome.ok and not killed():
        output = tail.decode(errors="replace").strip()
        outcome.not_found = install.looks_not_found(output)
        outcome.output = output[-MESSAGE_CHARS:]
    return outcome
