"""Hello-world latency: spawner `Execute` versus a bare `docker run`.

Measures, as the client sees it (wall time from sending the request to having
the final answer):

  (a) `Execute` of `print("hello")` (or `console.log("hello")` with --node)
      through an in-process spawner on 127.0.0.1, up to the `result` event.
      The spawner stages a workspace, creates and starts a hardened container,
      runs the program as a `docker exec`, then kills and removes the
      container and reads the cgroup before it sends the result.
  (b) the baseline `docker run --rm --network none sandbox-mesh/runtime:local
      python3 -c 'print("hello")'` (or `node -e`) through the docker CLI, up to
      the CLI's exit (which, with --rm, waits for the removal).

The two are interleaved (A, B, A, B, ...) rather than run as two blocks, so
that whatever else the machine does meanwhile (a build, the page cache, CPU
frequency) lands on both series alike and the ratio stays meaningful.
Three warm-up rounds of each are not counted.

    .venv/bin/python bench/bench_execute.py [--iterations N] [--node] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "stubs")]  # also works without `pip install -e`

import docker  # noqa: E402
import grpc  # noqa: E402

from sandbox.common.v1 import execution_pb2 as common  # noqa: E402
from sandbox.spawner.v1 import spawner_pb2 as pb  # noqa: E402
from sandbox.spawner.v1 import spawner_pb2_grpc  # noqa: E402
from services.common.auth import ClientAuthInterceptor  # noqa: E402
from services.spawner.config import SpawnerSettings  # noqa: E402
from services.spawner.server import start  # noqa: E402

IMAGE = "sandbox-mesh/runtime:local"
WARMUP = 3
MAX_ITERATIONS = 500
# language -> (entry file, source, interpreter argv for `docker run`, proto enum)
PROGRAMS = {
    "python": ("main.py", 'print("hello")', ["python3", "-c"], common.LANGUAGE_PYTHON),
    "node": ("main.js", 'console.log("hello")', ["node", "-e"], common.LANGUAGE_NODE),
}


def time_execute(stub, language: str, *, network: bool = False) -> tuple[float, dict[str, float]]:
    """One Execute; returns (seconds, per-phase seconds seen by the client)."""
    entry, source, _, enum = PROGRAMS[language]
    request = pb.ExecuteRequest(
        execution_id=f"bench-{secrets.token_hex(6)}",
        tenant="bench",
        language=enum,
        files=[common.File(path=entry, content=source.encode())],
        entry=entry,
        network=network,
    )
    marks: dict[int, float] = {}
    stdout, result = b"", None
    started = time.perf_counter()
    for event in stub.Execute(request, timeout=60):
        kind = event.WhichOneof("event")
        if kind == "phase":
            marks.setdefault(event.phase.phase, time.perf_counter())
        elif kind == "stdout":
            stdout += event.stdout.data
        elif kind == "result":
            result = event.result
            break
    elapsed = time.perf_counter() - started
    if result is None or result.status != common.EXECUTION_STATUS_COMPLETED or stdout != b"hello\n":
        raise SystemExit(f"Execute did not print hello: {result} stdout={stdout!r}")
    running, finishing = marks[pb.PHASE_RUNNING], marks[pb.PHASE_FINISHING]
    phases = {
        "stage+create+start": running - started,
        "exec": finishing - running,
        "kill+remove+cgroup": started + elapsed - finishing,
    }
    return elapsed, phases


def time_docker_run(language: str) -> float:
    _, source, interpreter, _ = PROGRAMS[language]
    argv = ["docker", "run", "--rm", "--network", "none", IMAGE, *interpreter, source]
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, timeout=60, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0 or done.stdout != b"hello\n":
        raise SystemExit(f"docker run failed ({done.returncode}): {done.stderr.decode()!r}")
    return elapsed


def summary(samples: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples)
    p95 = statistics.quantiles(ms, n=20, method="inclusive")[18] if len(ms) > 1 else ms[0]
    values = {"p50": statistics.median(ms), "p95": p95, "mean": statistics.fmean(ms), "min": ms[0], "max": ms[-1]}
    return {k: round(v, 1) for k, v in values.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=30, help="counted runs of each (max 500)")
    parser.add_argument("--node", action="store_true", help="bench Node instead of Python")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    if not 1 <= args.iterations <= MAX_ITERATIONS:
        parser.error(f"--iterations must be between 1 and {MAX_ITERATIONS}")
    language = "node" if args.node else "python"

    api = docker.APIClient(version="auto")
    engine, info = api.version(), api.info()
    api.close()
    # Where the spawner authenticates calls, sign them as control would.
    secret = secrets.token_hex(32)
    # Older spawners, benchmarked for comparison, have no secret setting.
    auth: dict[str, Any] = {"secret": secret} if "secret" in SpawnerSettings.model_fields else {}
    root = tempfile.mkdtemp(prefix="bench-workspaces-")
    running, execute, docker_run, phases = None, [], [], []
    try:
        running = start(
            SpawnerSettings(
                listen="127.0.0.1:0",
                # No metrics endpoint: its default port is the one a mesh from `make up` publishes.
                metrics_listen="",
                name=f"bench-{secrets.token_hex(4)}",
                workspace_root=root,
                capacity=4,
                **auth,
            )
        )
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=10)
            if auth:
                channel = grpc.intercept_channel(channel, ClientAuthInterceptor(secret.encode()))
            stub = spawner_pb2_grpc.SpawnerStub(channel)
            for i in range(WARMUP + args.iterations):  # A, B, A, B, ...
                a, split = time_execute(stub, language)
                b = time_docker_run(language)
                if i >= WARMUP:
                    execute.append(a)
                    docker_run.append(b)
                    phases.append(split)
    finally:
        if running is not None:
            running.stop(grace_seconds=5)
        shutil.rmtree(root, ignore_errors=True)

    execute_ms, docker_run_ms = summary(execute), summary(docker_run)
    report = {
        "language": language,
        "iterations": args.iterations,
        "warmup": WARMUP,
        "engine": engine.get("Version"),
        "api_version": engine.get("ApiVersion"),
        "cgroup_version": info.get("CgroupVersion"),
        "cpus": os.cpu_count(),
        "execute_ms": execute_ms,
        "docker_run_ms": docker_run_ms,
        "ratio_p50": round(execute_ms["p50"] / docker_run_ms["p50"], 2),
        "ratio_p95": round(execute_ms["p95"] / docker_run_ms["p95"], 2),
        "execute_phase_p50_ms": {k: round(statistics.median(p[k] for p in phases) * 1000, 1) for k in phases[0]},
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(
        f"{language} hello world, {args.iterations} interleaved runs each "
        f"(+{WARMUP} warm-up); Docker {report['engine']} (API {report['api_version']}, "
        f"cgroup v{report['cgroup_version']}), {report['cpus']} CPUs"
    )
    print(f"{'':<12}{'p50 ms':>9}{'p95 ms':>9}{'mean ms':>9}{'min ms':>9}{'max ms':>9}")
    for label, row in (("Execute", execute_ms), ("docker run", docker_run_ms)):
        print(f"{label:<12}" + "".join(f"{row[k]:>9.1f}" for k in ("p50", "p95", "mean", "min", "max")))
    print(f"{'ratio':<12}{report['ratio_p50']:>9.2f}{report['ratio_p95']:>9.2f}   (Execute / docker run)")
    print(
        "Execute p50 by phase, as the client sees it: "
        + ", ".join(f"{k} {v:.1f} ms" for k, v in report["execute_phase_p50_ms"].items())
    )


if __name__ == "__main__":
    main()
