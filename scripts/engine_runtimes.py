"""Registers gVisor with the Docker engine: the two runtimes in daemon.json.

Run by scripts/ensure_gvisor.sh with the system's python3 before any
virtualenv exists, so it uses the standard library only.

    python3 scripts/engine_runtimes.py --daemon-json /etc/docker/daemon.json \\
        --runsc /usr/bin/runsc --engine-runtimes "$(docker info --format '{{json .Runtimes}}')"

prints `changed` when it rewrote the file, `unchanged` when the file already
held both runtimes as they should be (it is then not touched, byte for byte).
Every other key of the file, other runtimes included, is kept. The file is
replaced atomically (a temporary file beside it, then rename), keeping its mode.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import tempfile
from typing import Any

# The names the spawner asks the engine for (SPAWNER_GVISOR_RUNTIME and
# SPAWNER_GVISOR_NETWORK_RUNTIME default to them).
GVISOR_RUNTIME = "runsc"
GVISOR_NETWORK_RUNTIME = "runsc-network"
# ptrace: the KVM platform needs nested virtualisation, which the VMs this
# runs on do not have (runsc then hangs). --network=none for sandboxes
# without a network; --network=host for those on an internal network, where
# "host" is the container's own namespace the engine made, not the host's.
# Neither --oci-seccomp nor --host-uds: runsc 2022 applies an OCI seccomp
# profile to the container's first process only (not to `docker exec`'d
# programs) and its filtering then refuses thread creation; gVisor sandboxes
# use the exec hand-off, so no socket has to cross (docs/security.md).
PLATFORM_ARG = "--platform=ptrace"
NEW_FILE_MODE = 0o644


class DaemonJsonError(Exception):
    """daemon.json exists but is not a JSON object with a "runtimes" object."""


def gvisor_runtimes(runsc_path: str) -> dict[str, dict[str, Any]]:
    return {
        GVISOR_RUNTIME: {"path": runsc_path, "runtimeArgs": [PLATFORM_ARG, "--network=none"]},
        GVISOR_NETWORK_RUNTIME: {"path": runsc_path, "runtimeArgs": [PLATFORM_ARG, "--network=host"]},
    }


def merge_runtimes(
    config: dict[str, Any], wanted: dict[str, dict[str, Any]], defined_elsewhere: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """`config` with each of `wanted` set under "runtimes", everything else kept.

    A name in `defined_elsewhere` (the engine offers it, daemon.json does not
    hold it: a dockerd --add-runtime flag) is left out: the engine refuses a
    runtime defined twice, and would then not start again.
    """
    if not isinstance(config, dict):
        raise DaemonJsonError("its top level is not a JSON object")
    runtimes = config.get("runtimes", {})
    if not isinstance(runtimes, dict):
        raise DaemonJsonError('its "runtimes" is not a JSON object')
    merged_runtimes = dict(runtimes)
    for name, runtime in wanted.items():
        if name in defined_elsewhere:
            continue
        merged_runtimes[name] = runtime
    return {**config, "runtimes": merged_runtimes}


def names_defined_elsewhere(engine_runtimes: dict[str, Any], config: dict[str, Any]) -> frozenset[str]:
    """Runtimes the running engine offers that daemon.json does not define."""
    in_file = config.get("runtimes", {}) if isinstance(config, dict) else {}
    in_file = in_file if isinstance(in_file, dict) else {}
    return frozenset(name for name in engine_runtimes if name not in in_file)


def read_config(path: pathlib.Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        config = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DaemonJsonError(f"it is not valid JSON ({exc})") from exc
    if not isinstance(config, dict):
        raise DaemonJsonError("its top level is not a JSON object")
    return config


def write_atomically(path: pathlib.Path, config: dict[str, Any]) -> None:
    mode = path.stat().st_mode & 0o7777 if path.exists() else NEW_FILE_MODE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(json.dumps(config, indent=2) + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        pathlib.Path(temporary).unlink(missing_ok=True)
        raise


def register(path: pathlib.Path, runsc_path: str, engine_runtimes: dict[str, Any]) -> bool:
    """Writes both gVisor runtimes into daemon.json; True when the file changed."""
    config = read_config(path)
    elsewhere = names_defined_elsewhere(engine_runtimes, config)
    merged = merge_runtimes(config, gvisor_runtimes(runsc_path), elsewhere)
    if merged == config:
        return False
    write_atomically(path, merged)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--daemon-json", required=True, type=pathlib.Path)
    parser.add_argument("--runsc", required=True, help="absolute path of the runsc binary")
    parser.add_argument(
        "--engine-runtimes", default="{}", help="the running engine's: docker info --format '{{json .Runtimes}}'"
    )
    args = parser.parse_args(argv)
    try:
        engine_runtimes = json.loads(args.engine_runtimes or "{}")
    except json.JSONDecodeError:
        engine_runtimes = {}
    if not isinstance(engine_runtimes, dict):
        engine_runtimes = {}
    try:
        changed = register(args.daemon_json, args.runsc, engine_runtimes)
    except (DaemonJsonError, OSError) as exc:
        print(f"{args.daemon_json}: {exc}", file=sys.stderr)
        return 1
    print("changed" if changed else "unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
