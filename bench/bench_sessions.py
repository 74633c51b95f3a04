"""The session figures through control (issue 12; docs/performance.md,
"Sessions"), each beside its baseline in the same run.

  second call: `1+1` in an open Python session after its first call, back
      to back, then as many warm one-shot Executes of `print(1+1)`
  create: CreateSession with a warm container and with limits no warm
      container fits (each closed at once), against `docker run --rm` of
      hello world, interleaved
  memory: what an idle Python session holds (its kernel started, one call
      made), read from the engine, against a plain container idling in
      `python3 -c 'time.sleep(...)'`

    .venv/bin/python bench/bench_sessions.py [--quick] [--json]
    .venv/bin/python bench/bench_sessions.py --target 127.0.0.1:50061 [--tenant demo]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "stubs")]  # also works without `pip install -e`

from bench import calls, session_figures  # noqa: E402
from bench.bench_mesh import measure  # noqa: E402
from bench.mesh import MIB, own_mesh, target_mesh  # noqa: E402
from bench.report import figure_value  # noqa: E402
from bench.stats import Target, fmt, table  # noqa: E402

MAX_ROUNDS = 500
MAX_SESSIONS = 3  # each holds a slot of the own mesh's four


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", help="control's address (the mesh `make up` started); default: an own mesh")
    parser.add_argument("--tenant", default=os.environ.get("SANDBOX_TENANT", "demo"), help="tenant (--target)")
    parser.add_argument("--env-file", default=str(ROOT / ".env"), help="where `make up` keeps the tenant keys")
    parser.add_argument("--quick", action="store_true", help="a short smoke: few rounds")
    parser.add_argument("--rounds", type=int, help="counted second calls (default 50, --quick 10)")
    parser.add_argument("--create-rounds", type=int, help="counted creates of each kind (default 10, --quick 3)")
    parser.add_argument("--sessions", type=int, default=MAX_SESSIONS, help="idle sessions measured at once")
    parser.add_argument("--warm-pool", default="python=2,python+session=1", help="own mesh: SPAWNER_WARM_POOL")
    parser.add_argument("--only", default="", help="comma list of figures: second_call,create,memory")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    args = parser.parse_args()
    args.rounds = args.rounds or (10 if args.quick else 50)
    args.create_rounds = args.create_rounds or (3 if args.quick else 10)
    args.warmup = 2 if args.quick else 5
    for name, value, top in (
        ("--rounds", args.rounds, MAX_ROUNDS),
        ("--create-rounds", args.create_rounds, MAX_ROUNDS),
        ("--sessions", args.sessions, MAX_SESSIONS),
    ):
        if not 0 < value <= top:
            parser.error(f"{name} must be above 0 and at most {top}")
    return args


def run(args: argparse.Namespace, stub, report: dict[str, Any]) -> None:
    wanted = {w for w in args.only.split(",") if w}
    measure(
        report,
        "second_call",
        wanted,
        lambda: session_figures.second_call(stub, rounds=args.rounds, warmup=args.warmup),
    )
    measure(report, "create", wanted, lambda: session_figures.create_latency(stub, rounds=args.create_rounds))
    measure(report, "memory", wanted, lambda: session_figures.idle_memory(stub, sessions=args.sessions))


def print_report(report: dict[str, Any]) -> None:
    print(f"{report['mode']}; {report['cpus']} CPUs, load {report['load_average']}")
    for note in report["notes"]:
        print(f"  {note}")
    rows = []
    for figure, series in (("second_call", ("session_call", "execute")), ("create", ("warm", "cold", "docker_run"))):
        if error := figure_value(report, figure, "error"):
            rows.append([figure, error, "", "", ""])
            continue
        for name in series:
            timed = figure_value(report, figure, "total_ms", name)
            ratio = figure_value(report, figure, "ratio_p50")
            ratio = ratio.get(name) if isinstance(ratio, dict) else (ratio if name == series[0] else None)
            rows.append([f"{figure}: {name}", fmt(timed["p50"]), fmt(timed["p95"]), str(timed["n"]), fmt(ratio, 2)])
    print()
    print(table(["figure (ms)", "p50", "p95", "n", "p50 ratio"], rows))
    memory = report["figures"].get("memory", {})
    print()
    if "error" in memory:
        print(f"memory: {memory['error']}")
    else:
        print(
            table(
                ["memory of one idle (MiB, median)", "working set", "rss"],
                [
                    ["python session", fmt(memory["session_working_set_mib"]), fmt(memory["session_rss_mib"])],
                    [
                        "plain python3 sleeping",
                        fmt(memory["plain_python_working_set_mib"]),
                        fmt(memory["plain_python_rss_mib"]),
                    ],
                ],
            )
        )
    target = Target(
        "second call of 1+1 p50", figure_value(report, "second_call", "total_ms", "session_call", "p50"), "<=", 20
    )
    print()
    row = [target.name, "<= 20 ms", fmt(target.value), target.verdict]
    print(table(["target", "limit", "measured", "verdict"], [row]))


def main() -> None:
    args = parse_args()
    report: dict[str, Any] = {
        "command": " ".join(["bench/bench_sessions.py", *sys.argv[1:]]),
        "mode": f"--target {args.target}" if args.target else "own mesh (in-process control on SQLite + spawner)",
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "notes": [],
        "figures": {},
    }
    try:
        if args.target:
            mesh = target_mesh(args.target, args.tenant, pathlib.Path(args.env_file))
            with mesh.stub() as stub:
                run(args, stub, report)
        else:
            with own_mesh(max_output_bytes=64 * MIB, warm_pool=args.warm_pool, handoff="") as mesh:
                report["notes"].extend(mesh.notes)
                with mesh.stub() as stub:
                    run(args, stub, report)
    finally:
        left = calls.remove_baselines()
        if left:
            report["notes"].append(f"removed {left} container(s) this run left")
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)


if __name__ == "__main__":
    main()
