"""One program, two ways into one container: `docker exec` versus the runner
hand-off.

Starts one hardened sandbox container (the spawner's own host config) from a
throw-away image carrying this checkout's runner.py in `serve` mode, connects
to its runner, then times `python3 -c pass`, as the spawner sees it (from
asking for the program to having its exit code):

  (a) `docker exec`: exec create, start with the output streamed, inspect
      for the exit code (services/spawner/sandbox.py's ExecHandle);
  (b) the hand-off: a request line on the runner's socket, frames back up to
      the exit frame (services/spawner/handoff.py).

Rounds are interleaved (A, B, A, B, ...) so that whatever else the machine
does lands on both alike; three warm-up rounds of each are not counted. The
container and the image are removed at the end.

    .venv/bin/python bench/bench_handoff.py [--iterations N]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import statistics
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "stubs")]  # also works without `pip install -e`

import docker  # noqa: E402

from services.spawner import handoff, sandbox  # noqa: E402
from services.spawner.config import SpawnerSettings  # noqa: E402
from tests.integration.runner_image import ROLE, runner_test_image  # noqa: E402

WARMUP = 3
PROGRAM = ["python3", "-c", "pass"]
WORKDIR = f"{sandbox.WORKSPACE}/code"
MIB = 1024 * 1024


def time_exec(container: sandbox.SandboxContainer) -> float:
    began = time.monotonic()
    handle = container.exec(PROGRAM, {}, WORKDIR)
    for _ in handle.stream():
        pass
    code = handle.exit_code()
    elapsed = time.monotonic() - began
    assert code == 0, f"docker exec: exit code {code}"
    return elapsed


def time_handoff(connection: handoff.RunnerConnection) -> float:
    began = time.monotonic()
    program = connection.start(PROGRAM, {}, WORKDIR, None)
    for _ in program.stream():
        pass
    code = program.exit_code()
    elapsed = time.monotonic() - began
    assert code == 0, f"hand-off: exit code {code} ({program.violation})"
    return elapsed


def start_container(api: docker.APIClient, image: str, workspace: pathlib.Path) -> sandbox.SandboxContainer:
    settings = SpawnerSettings(name="bench-handoff", workspace_root=str(workspace.parent), metrics_listen="")
    created = api.create_container(
        image,
        command=handoff.runner_command("python"),
        user=f"{sandbox.SANDBOX_UID}:{sandbox.SANDBOX_UID}",
        working_dir=WORKDIR,
        labels={sandbox.LABEL_ROLE: ROLE},
        host_config=sandbox.host_config(
            api,
            settings,
            workspace=str(workspace),
            limits=sandbox.ContainerLimits(memory_bytes=512 * MIB, cpus=1.0),
            cgroup_parent="",
            network=None,
        ),
        network_disabled=True,
        stop_signal="SIGKILL",
    )
    container = sandbox.SandboxContainer(api, created["Id"])
    container.start()
    return container


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20, help="counted runs of each")
    args = parser.parse_args()
    api = docker.APIClient(version="auto")
    root = pathlib.Path(tempfile.mkdtemp(prefix="bench-handoff-"))
    workspace = root / "ws"
    (workspace / "code").mkdir(parents=True)
    for path in (workspace, workspace / "code"):
        os.chown(path, sandbox.SANDBOX_UID, sandbox.SANDBOX_UID)
    container = None
    try:
        with runner_test_image(api) as image:
            container = start_container(api, image, workspace)
            container_id = container.id
            connection = handoff.connect(
                workspace, 10, lambda: bool(api.inspect_container(container_id)["State"]["Running"])
            )
            exec_times, handoff_times = [], []
            for round_number in range(WARMUP + args.iterations):
                a, b = time_exec(container), time_handoff(connection)
                if round_number >= WARMUP:
                    exec_times.append(a)
                    handoff_times.append(b)
            connection.close()
            container.remove()
            container = None
    finally:
        if container is not None:
            container.remove()
        shutil.rmtree(root)
        api.close()
    exec_median = statistics.median(exec_times) * 1000
    handoff_median = statistics.median(handoff_times) * 1000
    print(f"`{' '.join(PROGRAM)}`, {args.iterations} interleaved rounds each (after {WARMUP} warm-up rounds)")
    print(f"  docker exec  median {exec_median:7.1f} ms   min {min(exec_times) * 1000:7.1f} ms")
    print(f"  hand-off     median {handoff_median:7.1f} ms   min {min(handoff_times) * 1000:7.1f} ms")
    print(f"  saved per program: {exec_median - handoff_median:.1f} ms")


if __name__ == "__main__":
    main()
