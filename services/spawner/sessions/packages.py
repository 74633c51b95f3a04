"""A session's packages, installed at creation exactly as an execution's
install step (services/spawner/install_step.py): on the sandbox's own
egress network, with credentials minted for the session and the egress told
its address, the install cache, the install timeout, and a failure read the
way an execution's is (services/spawner/classify.py). The credentials are
revoked as soon as the installer is done, before any of the tenant's code
runs: a session's code never has a way out, whatever it installed."""

from __future__ import annotations

import logging
import threading

from sandbox.common.v1 import execution_pb2 as common
from services.spawner import sandbox
from services.spawner.classify import Facts, classify
from services.spawner.config import SpawnerSettings
from services.spawner.errors import NetworkUnavailable, SessionInstallFailed
from services.spawner.install_step import install_packages
from services.spawner.provision import Provisioner, Sandbox
from services.spawner.sessions.spec import SessionSpec

log = logging.getLogger(__name__)


def install(spec: SessionSpec, box: Sandbox, provisioner: Provisioner, settings: SpawnerSettings) -> int:
    """Installs the session's packages into its started sandbox; the time it
    took (ms). Raises SessionInstallFailed with the execution error code an
    execution's install would have had."""
    network = provisioner.network
    if network is None or box.lease is None or box.container is None:
        raise NetworkUnavailable("packages")
    environment = network.environment(spec.session_key, spec.tenant, box.lease.egress_address)
    timed_out = threading.Event()
    limit_ms = settings.install_timeout_ms

    def time_out() -> None:
        timed_out.set()
        if box.container is not None:
            box.container.kill()

    egress_lost = False
    network.admit_sandbox(provisioner.api, box.container.id, spec.session_key, box.lease.network)
    try:
        outcome = install_packages(
            box,
            provisioner.install_cache,
            spec.language,
            spec.packages,
            allow_sdist=spec.allow_sdist,
            allow_scripts=spec.allow_install_scripts,
            environment=environment,
            timeout_ms=limit_ms,
            on_timeout=time_out,
            killed=timed_out.is_set,
        )
    finally:
        try:  # from now on the egress refuses the session's credentials
            egress_lost = not network.revoke(spec.session_key)
        except Exception as exc:
            log.error("session %s: revoking its egress admission failed: %s", spec.session_key, exc)
            egress_lost = True
    if outcome.ok and not timed_out.is_set():
        return outcome.install_ms
    facts = Facts(
        kill=(common.ERROR_CODE_TIMEOUT, f"package install took longer than {limit_ms} ms")
        if timed_out.is_set()
        else None,
        memory_bytes=spec.memory_bytes,
        install_failed=True,
        install_not_found=outcome.not_found,
        install_output=outcome.output,
        egress_lost=egress_lost,
    )
    _add_sandbox_facts(facts, spec, box, outcome.exit_code)
    if facts.kill is None:
        try:
            facts.egress_denials = tuple(network.denials(spec.session_key))
        except Exception as exc:
            log.error("session %s: cannot read the egress's decisions: %s", spec.session_key, exc)
    verdict = classify(facts)
    raise SessionInstallFailed(common.ErrorCode.Name(verdict.error_code).removeprefix("ERROR_CODE_"), verdict.message)


def _add_sandbox_facts(facts: Facts, spec: SessionSpec, box: Sandbox, exit_code: int) -> None:
    """What the kernel and the engine say of the failed install: the OOM
    killer, a full workspace, the sandbox ending under it."""
    try:
        facts.oom_kills = box.parent.read().oom_kills
    except OSError as exc:
        log.warning("session %s: cannot read its cgroup: %s", spec.session_key, exc)
    facts.workspace_exhausted = box.workspace.exhausted()
    ended = box.ended() if exit_code == sandbox.NO_EXIT_CODE and facts.kill is None else None
    if ended is not None:
        facts.sandbox_ended = ended.exit_code
        facts.engine_oom = ended.oom_killed
