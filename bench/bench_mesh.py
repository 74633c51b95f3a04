"""The mesh's figures through control, as clients call it, each beside its
baseline in the same run (docs/performance.md, "Through control").

  hello world: warm (default limits: a warm container when the spawner has a
      pool), cold (limits no warm container fits) and
      `docker run --rm --network none sandbox-mesh/runtime:local python3 -c 'print("hello")'`,
      interleaved round by round after warm-up rounds; also the first stdout byte
  throughput: hello worlds per second at concurrency 4 for --duration s,
      then `docker run --rm` at concurrency 4 for as long
  streaming: a program writing --stream-mb MB to stdout, MB/s from the first
      stdout byte to the last, against `docker run` into a pipe
  pip install numpy pandas: first and second time, and the datascience
      variant (only with --target: it needs the mesh's egress)
  control's admission + finalize rate on its store, SQLite and PostgreSQL
  runtimes: runc and gVisor side by side (bench/runtimes.py): hello world
      warm and cold, first stdout byte, a CPU-bound and a syscall-heavy loop,
      pip install of a small wheel (only with --target)

    .venv/bin/python bench/bench_mesh.py [--quick] [--json] [--profile FILE]
    .venv/bin/python bench/bench_mesh.py --target 127.0.0.1:50061 [--tenant demo]

Without --target it starts its own mesh in this process (control on SQLite
and one spawner, on 127.0.0.1:0) and removes everything it made at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "stubs")]  # also works without `pip install -e`

import docker  # noqa: E402
import grpc  # noqa: E402

from bench import calls, figures, runtimes, store_rate  # noqa: E402
from bench.mesh import MIB, Mesh, has_setting, own_mesh, target_mesh  # noqa: E402
from bench.report import print_report, targets  # noqa: E402
from sandbox.control.v1 import control_pb2 as pb  # noqa: E402
from services.spawner.config import SpawnerSettings  # noqa: E402
from tests import postgres  # noqa: E402

MAX_ROUNDS = 500
MAX_DURATION = 300.0
MAX_STREAM_MB = 500
MAX_STORE_EXECUTIONS = 100_000
STORE_THREADS = 4
CONCURRENCY = 4
# The figures that need a mesh (all but "store").
MESH_FIGURES = ("hello", "throughput", "streaming", "pip", "runtimes")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", help="control's address (the mesh `make up` started); default: an own mesh")
    parser.add_argument("--tenant", default=os.environ.get("SANDBOX_TENANT", "demo"), help="tenant (--target)")
    parser.add_argument("--env-file", default=str(ROOT / ".env"), help="where `make up` keeps the tenant keys")
    parser.add_argument("--quick", action="store_true", help="a short smoke: few rounds, 5 s of throughput")
    parser.add_argument("--rounds", type=int, help="counted hello rounds (default 30, --quick 5)")
    parser.add_argument("--duration", type=float, help="seconds of each throughput run (default 30, --quick 5)")
    parser.add_argument("--stream-mb", type=int, default=50, help="MB the streaming program writes")
    parser.add_argument("--store-executions", type=int, help="executions of the store rate (default 2000)")
    parser.add_argument(
        "--warm-pool", default="python=2,python+gvisor=2", help="own mesh: SPAWNER_WARM_POOL, where available"
    )
    parser.add_argument("--handoff", default="", help="own mesh: SPAWNER_HANDOFF (runner|exec), where available")
    parser.add_argument(
        "--only", default="", help="comma list of figures: hello,throughput,streaming,pip,runtimes,store"
    )
    parser.add_argument(
        "--spawner-metrics",
        default=f"127.0.0.1:{os.environ.get('SPAWNER_METRICS_PORT', '9464')}",
        help="--target: the spawner's metrics address (which runtimes its warm pool holds)",
    )
    parser.add_argument("--profile", metavar="FILE", help="own mesh: py-spy record of the warm hello loop")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    args = parser.parse_args()
    args.rounds = args.rounds or (5 if args.quick else 30)
    args.duration = args.duration or (5.0 if args.quick else 30.0)
    args.store_executions = args.store_executions or (300 if args.quick else 2000)
    args.warmup = 1 if args.quick else 3
    args.stream_rounds = 1 if args.quick else 3
    args.runtime_rounds = 3 if args.quick else 15
    args.loop_rounds = 2 if args.quick else 5
    for name, value, top in (
        ("--rounds", args.rounds, MAX_ROUNDS),
        ("--duration", args.duration, MAX_DURATION),
        ("--stream-mb", args.stream_mb, MAX_STREAM_MB),
        ("--store-executions", args.store_executions, MAX_STORE_EXECUTIONS),
    ):
        if not 0 < value <= top:
            parser.error(f"{name} must be above 0 and at most {top}")
    if args.profile and args.target:
        parser.error("--profile needs the in-process mesh (no --target)")
    return args


def measure(report: dict[str, Any], name: str, wanted: set[str], fn: Callable[[], dict]) -> None:
    """Runs one figure; a failure is recorded as its n/a reason, never raised."""
    if wanted and name not in wanted:
        report["figures"][name] = {"error": "n/a (not selected)"}
        return
    print(f"... {name}", file=sys.stderr, flush=True)
    started = time.monotonic()
    try:
        report["figures"][name] = fn()
    except grpc.RpcError as exc:
        report["figures"][name] = {"error": f"n/a ({exc.code().name}: {exc.details()})"}
    except Exception as exc:
        report["figures"][name] = {"error": f"n/a ({type(exc).__name__}: {exc})"}
    print(f"    {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)


def store_figures(args: argparse.Namespace) -> dict:
    bounds = dict(executions=args.store_executions, threads=STORE_THREADS, max_seconds=args.duration * 2)
    result: dict[str, Any] = {"sqlite": store_rate.sqlite_rate(**bounds)}
    try:
        with postgres.temporary_server("bench-pg-", fsync=True, max_connections=100) as base_url:
            result["postgresql"] = store_rate.rate(f"{base_url}/postgres", **bounds)
    except postgres.Unavailable as exc:
        result["postgresql"] = {"error": f"n/a ({exc})"}
    except Exception as exc:
        result["postgresql"] = {"error": f"n/a ({type(exc).__name__}: {exc})"}
    return result


def quota_note(stub) -> str:
    quota = stub.GetQuota(pb.GetQuotaRequest())
    note = f"tenant {quota.tenant}: max_in_flight {quota.max_in_flight}, slots {quota.max_slots} of {quota.mesh_slots}"
    if min(quota.max_in_flight, quota.max_slots) < CONCURRENCY:
        note += f" (fewer than the throughput's concurrency {CONCURRENCY}: raise CONTROL_SLOT_SHARE / quotas)"
    return note


def py_spy() -> str | None:
    beside = pathlib.Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def profile(stub, path: str, rounds: int) -> str:
    """py-spy samples every thread of this process (control's and the
    spawner's included) during a warm hello loop, without pausing it."""
    binary = py_spy()
    if binary is None:
        return "n/a (py-spy not installed: it is in the dev extras, `pip install -e '.[dev]'`)"
    kind = {".svg": "flamegraph", ".json": "speedscope"}.get(pathlib.Path(path).suffix, "raw")
    argv = [binary, "record", "--pid", str(os.getpid()), "--nonblocking", "--rate", "250"]
    argv += ["--format", kind, "--output", path]
    recorder = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(1.0)  # attached
        figures.warm_hello_loop(stub, rounds)
    finally:
        recorder.send_signal(signal.SIGINT)
        try:
            _, err = recorder.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            recorder.kill()
            _, err = recorder.communicate()
    if recorder.returncode not in (0, -signal.SIGINT) or not pathlib.Path(path).exists():
        return f"n/a (py-spy failed: {err.decode(errors='replace').strip()[-200:]})"
    return f"{rounds} warm hello worlds recorded by py-spy ({kind}) in {path}"


def gvisor_problem(args: argparse.Namespace, engine_runtimes: dict[str, Any]) -> str | None:
    """Own mesh: why its spawner cannot run gVisor sandboxes on this engine (None: it can)."""
    fields = SpawnerSettings.model_fields
    if "gvisor_runtime" not in fields:
        return "this tree's spawner has no gVisor runtime"
    name = os.environ.get("SPAWNER_GVISOR_RUNTIME") or fields["gvisor_runtime"].default
    return runtimes.gvisor_problem(engine_runtimes, name)


def runtimes_figure(args: argparse.Namespace, mesh: Mesh, stub) -> dict:
    if args.gvisor_problem:
        raise figures.Failed(args.gvisor_problem)
    if mesh.spawner is not None:
        targets = mesh.spawner.warm_pool_targets if has_setting("warm_pool") else {}
        pool = runtimes.pool_from_settings(
            targets, "the own spawner's SPAWNER_WARM_POOL " + ",".join(mesh.spawner.warm_pool)
        )
        no_pip: str | None = "n/a: the own mesh has no egress (run against `make up` with --target)"
    else:
        pool, no_pip = runtimes.target_pool(args.spawner_metrics), None
    bounds = dict(rounds=args.runtime_rounds, warmup=args.warmup, loop_rounds=args.loop_rounds)
    return runtimes.figure(stub, **bounds, pool=pool, pip_unavailable=no_pip)


def run(args: argparse.Namespace, mesh: Mesh, report: dict[str, Any]) -> None:
    wanted = {w for w in args.only.split(",") if w}
    report["notes"].extend(mesh.notes)
    with mesh.stub() as stub:
        try:
            report["notes"].append(quota_note(stub))
        except Exception as exc:
            report["notes"].append(f"quota unknown ({exc})")
        measure(report, "hello", wanted, lambda: figures.hello(stub, rounds=args.rounds, warmup=args.warmup))
        measure(
            report,
            "throughput",
            wanted,
            lambda: figures.throughput(stub, concurrency=CONCURRENCY, seconds=args.duration),
        )
        cap = mesh.spawner.max_output_bytes if mesh.spawner is not None else None
        measure(
            report,
            "streaming",
            wanted,
            lambda: figures.streaming(stub, megabytes=args.stream_mb, rounds=args.stream_rounds, cap_bytes=cap),
        )
        if mesh.own:
            report["figures"]["pip"] = {"error": "n/a (needs an egress: run against `make up` with --target)"}
        else:
            measure(report, "pip", wanted, lambda: figures.pip_install(stub))
        measure(report, "runtimes", wanted, lambda: runtimes_figure(args, mesh, stub))
        if args.profile:
            print("... profile", file=sys.stderr, flush=True)
            report["profile"] = profile(stub, args.profile, args.rounds)
    measure(report, "store", wanted, lambda: store_figures(args))


def main() -> None:
    args = parse_args()
    api = docker.APIClient(version="auto")
    engine, info = api.version(), api.info()
    api.close()
    report: dict[str, Any] = {
        "command": " ".join(["bench/bench_mesh.py", *sys.argv[1:]]),
        "mode": f"--target {args.target}" if args.target else "own mesh (in-process control on SQLite + spawner)",
        "engine": engine.get("Version"),
        "cgroup_version": info.get("CgroupVersion"),
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "notes": [],
        "figures": {},
    }
    try:
        if args.only == "store":
            # Control's store alone: no mesh to start for it.
            report["mode"] = "control's store alone (no mesh)"
            report["figures"] = {name: {"error": "n/a (not selected)"} for name in MESH_FIGURES}
            measure(report, "store", {"store"}, lambda: store_figures(args))
        elif args.target:
            args.gvisor_problem = None  # the target's spawner says so itself, per call
            run(args, target_mesh(args.target, args.tenant, pathlib.Path(args.env_file)), report)
        else:
            cap = max(64 * MIB, args.stream_mb * 1_000_000 + MIB)
            args.gvisor_problem = gvisor_problem(args, info.get("Runtimes") or {})
            warm_pool = args.warm_pool
            if args.gvisor_problem and warm_pool != runtimes.without_gvisor(warm_pool):
                # Its warm gVisor sandboxes would fail to start all run long.
                warm_pool = runtimes.without_gvisor(warm_pool)
                report["notes"].append(f"no gVisor in the own warm pool: {args.gvisor_problem}")
            with own_mesh(max_output_bytes=cap, warm_pool=warm_pool, handoff=args.handoff) as mesh:
                run(args, mesh, report)
    finally:
        left = calls.remove_baselines()
        if left:
            report["notes"].append(f"removed {left} container(s) of killed `docker run`s")
    verdicts = targets(report)
    report["targets"] = [t.as_dict() for t in verdicts]
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report, verdicts)


if __name__ == "__main__":
    main()
