"""bench_mesh.py's targets (issue 10) and its plain-text report."""

from __future__ import annotations

from typing import Any

from bench.stats import Target, fmt, table


def figure_value(report: dict[str, Any], *path: str) -> Any:
    """The value at `path` in the report, None where a figure is missing or n/a."""
    value: Any = report["figures"]
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def targets(report: dict[str, Any]) -> list[Target]:
    return [
        Target("warm hello world p50", figure_value(report, "hello", "total_ms", "warm", "p50"), "<=", 60, "ms"),
        Target("warm hello world p50 / docker run p50", figure_value(report, "hello", "ratio_p50", "warm"), "<=", 0.25),
        Target("cold hello world p50 / docker run p50", figure_value(report, "hello", "ratio_p50", "cold"), "<=", 1.0),
        Target(
            "first stdout byte, warm, p50",
            figure_value(report, "hello", "first_stdout_ms", "warm", "p50"),
            "<=",
            30,
            "ms",
        ),
        Target("executions/s at concurrency 4 / docker run", figure_value(report, "throughput", "ratio"), ">=", 1.5),
        Target("stdout streaming", figure_value(report, "streaming", "mb_per_second_p50", "execute"), ">=", 20, "MB/s"),
        Target(
            "numpy+pandas install: first / second",
            figure_value(report, "pip", "install_ratio_first_to_second"),
            ">=",
            3,
        ),
        Target(
            "admissions+finalizations/s, SQLite", figure_value(report, "store", "sqlite", "per_second"), ">=", 300, "/s"
        ),
    ]


def _error(report: dict[str, Any], name: str) -> str | None:
    figure = report["figures"].get(name, {})
    return figure.get("error") if isinstance(figure, dict) else None


def _hello(report: dict[str, Any]) -> str:
    if error := _error(report, "hello"):
        return f"hello world: {error}"
    hello = report["figures"]["hello"]
    rows = []
    for name, label in (("warm", "Execute, warm"), ("cold", "Execute, cold"), ("docker_run", "docker run --rm")):
        total, first = hello["total_ms"][name], hello["first_stdout_ms"][name]
        r50 = hello["ratio_p50"].get(name) if name != "docker_run" else 1.0
        r95 = hello["ratio_p95"].get(name) if name != "docker_run" else 1.0
        rows.append(
            [
                label,
                fmt(total["p50"]),
                fmt(total["p95"]),
                fmt(r50, 2),
                fmt(r95, 2),
                fmt(first["p50"]),
                fmt(first["p95"]),
            ]
        )
    head = ["hello world (ms)", "p50", "p95", "ratio p50", "ratio p95", "1st byte p50", "1st byte p95"]
    return f"Hello world, {hello['rounds']} interleaved rounds (+{hello['warmup']} warm-up)\n" + table(head, rows)


def _throughput(report: dict[str, Any]) -> str:
    if error := _error(report, "throughput"):
        return f"throughput: {error}"
    figure = report["figures"]["throughput"]
    rows = []
    for name, label in (("execute", "Execute"), ("docker_run", "docker run --rm")):
        row = figure[name]
        latency = row["latency_ms"] or {}
        counts = [fmt(row["per_second"], 2), str(row["completed"]), str(row["failed"])]
        rows.append([label, *counts, fmt(latency.get("p50")), fmt(latency.get("p95"))])
    head = ["concurrency " + str(figure["concurrency"]), "per s", "done", "failed", "p50 ms", "p95 ms"]
    text = f"Throughput, {figure['execute']['seconds']:.0f} s each, ratio {fmt(figure['ratio'], 2)}\n"
    text += table(head, rows)
    for name in ("execute", "docker_run"):
        if figure[name]["first_failure"]:
            text += f"\n  first failure ({name}): {figure[name]['first_failure']}"
    return text


def _streaming(report: dict[str, Any]) -> str:
    if error := _error(report, "streaming"):
        return f"streaming: {error}"
    figure = report["figures"]["streaming"]
    rates = figure["mb_per_second_p50"]
    cap = f"{figure['output_cap_bytes']} bytes" if figure["output_cap_bytes"] else "the mesh's own"
    text = (
        f"Streaming {figure['megabytes']} MB of stdout ({figure['rounds']} round(s), output cap "
        f"{cap}): Execute {fmt(rates['execute'])} MB/s, "
        f"docker run {fmt(rates['docker_run'])} MB/s, ratio {fmt(figure['ratio'], 2)}"
    )
    return "\n".join([text, *(f"  {note}" for note in figure["notes"])])


def _pip(report: dict[str, Any]) -> str:
    if error := _error(report, "pip"):
        return f"pip install numpy pandas: {error}"
    figure = report["figures"]["pip"]
    first, second, science = figure["first"], figure["second"], figure["datascience"]
    return (
        f"pip install numpy pandas: first {first['total_s']} s (install {first['install_s']} s), "
        f"second {second['total_s']} s (install {second['install_s']} s), install ratio "
        f"{fmt(figure.get('install_ratio_first_to_second'), 2)}, whole execution ratio "
        f"{fmt(figure['ratio_first_to_second'], 2)}; datascience variant: "
        + (f"{science['total_s']} s" if "total_s" in science else science["error"])
    )


def _runtimes(report: dict[str, Any]) -> str:
    if error := _error(report, "runtimes"):
        return f"runc and gVisor side by side: {error}"
    figure = report["figures"]["runtimes"]
    rows, missing = [], []
    for row in figure["rows"]:
        cells = [row["figure"]]
        for name in ("runc", "gvisor"):
            side = row[name]
            cells += [fmt(side.get("p50")), fmt(side.get("p95"))]
            if "error" in side and f"{row['figure']}: {side['error']}" not in missing:
                missing.append(f"{row['figure']}: {side['error']}")
        rows.append([*cells, fmt(row["ratio_p50"], 2), fmt(row["ratio_p95"], 2)])
    head = ["runtimes", "runc p50", "runc p95", "gvisor p50", "gvisor p95", "ratio p50", "ratio p95"]
    rate = figure["stat_calls_per_second_p50"]
    text = (
        f"runc and gVisor side by side: hello world {figure['rounds']} interleaved rounds "
        f"(+{figure['warmup']} warm-up), loops {figure['loop_rounds']}; ratios gvisor / runc\n"
        + table(head, rows)
        + f"\n  os.stat calls/s (p50): runc {rate['runc']}, gvisor {rate['gvisor']}"
        + f"\n  warm pool as known from {figure['pool']}"
    )
    return "\n".join([text, *(f"  {note}" for note in [*missing, *figure["notes"]])])


def _store(report: dict[str, Any]) -> str:
    if error := _error(report, "store"):
        return f"store: {error}"
    rows = []
    for name in ("sqlite", "postgresql"):
        row = report["figures"]["store"][name]
        if "error" in row:
            rows.append([name, row["error"], "", "", ""])
        else:
            rows.append([name, fmt(row["per_second"]), str(row["executions"]), str(row["threads"])])
            rows[-1].append(fmt(row["pair_p50_ms"], 2))
    head = ["control's store", "admit+finalize/s", "executions", "threads", "pair p50 ms"]
    return table(head, rows)


def print_report(report: dict[str, Any], verdicts: list[Target]) -> None:
    print(
        f"{report['mode']}; Docker {report['engine']} (cgroup v{report['cgroup_version']}), "
        f"{report['cpus']} CPUs, load {report['load_average']}"
    )
    for note in report["notes"]:
        print(f"  {note}")
    for section in (_hello, _throughput, _streaming, _pip, _runtimes, _store):
        print()
        print(section(report))
    if "profile" in report:
        print(f"\nprofile: {report['profile']}")
    print()
    rows = [[t.name, f"{t.op} {t.limit:g} {t.unit}".strip(), fmt(t.value, 2), t.verdict] for t in verdicts]
    print(table(["target", "limit", "measured", "verdict"], rows))
