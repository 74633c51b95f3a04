"""bench_mesh.py's `runtimes` figure: the same programs on runc and on gVisor
side by side, through control, interleaved round by round (the order of the
two flips every round, so drift hits both alike):

  hello world warm (default limits: a warm sandbox where the mesh's pool has
      one of that runtime) and cold (limits no warm sandbox fits), with the
      first stdout byte of each
  a CPU-bound loop (pure Python arithmetic, about 1 s on runc) and a
      syscall-heavy loop (os.stat, SYSCALL_CALLS times): the loop's own time
      (measured inside the program) and the whole execution
  pip install of one small pure-Python wheel (only with --target: it needs
      the mesh's egress), each counted install a first one for the spawner's
      install cache

Ratios are gvisor / runc. Which runtimes the warm pool holds is read from
the own spawner's settings, or from the spawner's metrics (--target)."""

from __future__ import annotations

import dataclasses
import secrets
import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from bench import calls
from bench.figures import Failed
from bench.stats import ratio, summary_ms

RUNC, GVISOR = "runc", "gvisor"
SANDBOX_RUNTIMES = (RUNC, GVISOR)
CPU_ITERATIONS = 12_000_000  # about 1 s of CPython on runc on this project's 2-vCPU machine
SYSCALL_CALLS = 20_000
PIP_PACKAGE = "six"  # one module in one small py2.py3 wheel
IMPORT_IT = f"import {PIP_PACKAGE}\nprint({PIP_PACKAGE}.__version__)\n"
CPU_LOOP = (
    "import time\nt = time.perf_counter()\ns = 0\n"
    f"for i in range({CPU_ITERATIONS}):\n    s += i * i % 7\n"
    "print(time.perf_counter() - t, s)\n"
)
SYSCALL_LOOP = (
    "import os, time\nt = time.perf_counter()\n"
    f"for _ in range({SYSCALL_CALLS}):\n    os.stat('/')\n"
    "print(time.perf_counter() - t)\n"
)
POOL_METRIC = "sandbox_spawner_warm_pool_ready"
# Engine runtime arguments that let a socket bound inside gVisor appear on
# the host (the runner hand-off's socket in the workspace).


# --- what the bench knows of the mesh (pure) ---------------------------------


@dataclasses.dataclass(frozen=True)
class Pool:
    """The mesh's warm pool entries as (runtime, network "none"|"egress",
    sandbox runtime); None when the bench cannot tell. `source` says whence."""

    keys: frozenset[tuple[str, str, str]] | None
    source: str

    def warm(self, sandbox_runtime: str) -> tuple[bool, str]:
        """Whether to measure a warm Python hello world on `sandbox_runtime`,
        and what to say about it ("" when the pool has such sandboxes)."""
        if self.keys is None:
            return True, f"warm pool unknown ({self.source}): measured with default limits, may be cold"
        if ("python", "none", sandbox_runtime) in self.keys:
            return True, ""
        if not self.keys:
            return True, "the mesh has no warm pool: these calls start cold"
        return False, f"n/a: the mesh's pool has no {sandbox_runtime} entry"


def pool_from_settings(targets: dict[tuple[str, bool, str, bool], int], source: str) -> Pool:
    """From SpawnerSettings.warm_pool_targets: (runtime, network, sandbox runtime, session) -> count
    (sandboxes for sessions left out: executions never take them)."""
    keys = frozenset(
        (r, "egress" if net else "none", s) for (r, net, s, session), n in targets.items() if n and not session
    )
    return Pool(keys, source)


def pool_from_metrics(text: str, source: str) -> Pool:
    """From a spawner's /metrics: every warm pool entry has a ready gauge."""
    keys = set()
    for family in text_string_to_metric_families(text):
        if family.name == POOL_METRIC:
            for sample in family.samples:
                labels = sample.labels
                keys.add((labels.get("runtime", ""), labels.get("network", ""), labels.get("sandbox_runtime", "")))
    return Pool(frozenset(keys), source)


def gvisor_problem(engine_runtimes: dict[str, Any], runtime_name: str) -> str | None:
    """Why gVisor sandboxes cannot run here (engine runtimes as `docker info`
    lists them), None when they can."""
    if runtime_name not in engine_runtimes:
        return f"the engine has no {runtime_name} runtime: the mesh offers no gVisor"
    return None


def without_gvisor(warm_pool: str) -> str:
    """A SPAWNER_WARM_POOL value without its +gvisor entries."""
    return ",".join(e for e in warm_pool.split(",") if e.strip() and GVISOR not in e.split("=")[0].split("+"))


def first_float(head: bytes) -> float:
    """The first number a loop printed (its own time in seconds)."""
    try:
        return float(head.split()[0])
    except (IndexError, ValueError):
        raise Failed(f"the loop printed {head!r}, not its time") from None


def row(figure: str, series: dict[str, Any]) -> dict[str, Any]:
    """One figure on both runtimes: a summary of each (seconds in, ms out) or
    its n/a reason, and the gvisor / runc ratios of p50 and p95."""
    out: dict[str, Any] = {"figure": figure}
    for name in SANDBOX_RUNTIMES:
        value = series.get(name, "n/a")
        out[name] = {"error": value} if isinstance(value, str) else summary_ms(value)
    runc, gvisor = out[RUNC], out[GVISOR]
    out["ratio_p50"] = ratio(gvisor.get("p50"), runc.get("p50"))
    out["ratio_p95"] = ratio(gvisor.get("p95"), runc.get("p95"))
    return out


def in_turn(i: int) -> tuple[str, str]:
    """runc first in even rounds, gVisor first in odd ones."""
    return SANDBOX_RUNTIMES if i % 2 == 0 else SANDBOX_RUNTIMES[::-1]


# --- the calls ---------------------------------------------------------------


def _run(stub, source: str, runtime: str, *, cold: bool = False, timeout_ms: int = 60_000) -> calls.Timed:
    timed = calls.execute(stub, calls.request(source, cold=cold, timeout_ms=timeout_ms, runtime=runtime))
    if not timed.ok:
        raise Failed(f"{runtime}: {timed.describe()} stdout={timed.stdout_head!r}")
    if timed.execution is not None and timed.execution.runtime and timed.execution.runtime != runtime:
        raise Failed(f"asked for {runtime}, ran on {timed.execution.runtime}")
    return timed


def _hello(stub, runtime: str, *, cold: bool) -> calls.Timed:
    timed = _run(stub, calls.HELLO, runtime, cold=cold, timeout_ms=20_000)
    if timed.stdout_head != b"hello\n":
        raise Failed(f"{runtime} hello world printed {timed.stdout_head!r}")
    return timed


def hello_rows(stub, *, rounds: int, warmup: int, pool: Pool, notes: list[str]) -> list[dict[str, Any]]:
    warm_ok, why = {}, {}
    for runtime in SANDBOX_RUNTIMES:
        warm_ok[runtime], why[runtime] = pool.warm(runtime)
        if why[runtime]:
            notes.append(f"warm {runtime}: {why[runtime]}")
    total: dict[str, dict[str, list[float]]] = {k: {r: [] for r in SANDBOX_RUNTIMES} for k in ("warm", "cold")}
    first: dict[str, dict[str, list[float]]] = {k: {r: [] for r in SANDBOX_RUNTIMES} for k in ("warm", "cold")}
    for i in range(warmup + rounds):
        for kind in ("warm", "cold"):
            for runtime in in_turn(i):
                if kind == "warm" and not warm_ok[runtime]:
                    continue
                timed = _hello(stub, runtime, cold=kind == "cold")
                if i >= warmup:
                    total[kind][runtime].append(timed.total)
                    first[kind][runtime].append(timed.first_stdout or timed.total)

    def series(samples: dict[str, list[float]]) -> dict[str, Any]:
        return {r: samples[r] if warm_ok[r] else why[r] for r in SANDBOX_RUNTIMES}

    return [
        row("hello world, warm (ms)", series(total["warm"])),
        row("hello world, cold (ms)", total["cold"]),
        row("first stdout byte, warm (ms)", series(first["warm"])),
        row("first stdout byte, cold (ms)", first["cold"]),
    ]


def loop_rows(stub, *, rounds: int) -> tuple[list[dict[str, Any]], dict[str, float | None]]:
    """The CPU-bound and the syscall-heavy loop, default limits (warm where the pool has one)."""
    loops = {"cpu": CPU_LOOP, "syscalls": SYSCALL_LOOP}
    inside: dict[str, dict[str, list[float]]] = {k: {r: [] for r in SANDBOX_RUNTIMES} for k in loops}
    whole: dict[str, dict[str, list[float]]] = {k: {r: [] for r in SANDBOX_RUNTIMES} for k in loops}
    for i in range(rounds):
        for name, source in loops.items():
            for runtime in in_turn(i):
                timed = _run(stub, source, runtime)
                inside[name][runtime].append(first_float(timed.stdout_head))
                whole[name][runtime].append(timed.total)
    cpu = f"CPU loop, {CPU_ITERATIONS // 1_000_000}M iterations"
    stat = f"{SYSCALL_CALLS} os.stat calls"
    rows = [
        row(f"{cpu}: in the program (ms)", inside["cpu"]),
        row(f"{cpu}: whole execution (ms)", whole["cpu"]),
        row(f"{stat}: in the program (ms)", inside["syscalls"]),
        row(f"{stat}: whole execution (ms)", whole["syscalls"]),
    ]
    stat_p50 = {r: rows[2][r].get("p50") for r in SANDBOX_RUNTIMES}
    per_second = {r: round(SYSCALL_CALLS / (p / 1000)) if p else None for r, p in stat_p50.items()}
    return rows, per_second


def _install(stub, runtime: str, version: str) -> calls.Timed:
    req = calls.request(IMPORT_IT, timeout_ms=60_000, packages=(PIP_PACKAGE,), runtime=runtime)
    req.packages[0].version = version
    timed = calls.execute(stub, req, timeout=300)
    if not timed.ok:
        raise Failed(f"pip install {PIP_PACKAGE} on {runtime}: {timed.describe()}")
    return timed


def pip_rows(stub, *, rounds: int, notes: list[str]) -> list[dict[str, Any]]:
    """One install not counted (the egress's cache then has the wheel for
    every counted one), then per round one install on each runtime. Each
    counted install excludes a version nobody published, unique to it: the
    same wheel, but requirements the spawner's install cache (keyed by their
    exact text) has never seen, so every one is a first install."""
    _install(stub, RUNC, "")
    install: dict[str, list[float]] = {r: [] for r in SANDBOX_RUNTIMES}
    whole: dict[str, list[float]] = {r: [] for r in SANDBOX_RUNTIMES}
    for i in range(rounds):
        for runtime in in_turn(i):
            timed = _install(stub, runtime, f"!=0.0.{secrets.randbelow(10**9)}")
            assert timed.execution is not None
            install[runtime].append(timed.execution.usage.install_ms / 1000)
            whole[runtime].append(timed.total)
    notes.append(
        f"pip install {PIP_PACKAGE}: every counted install is a first one (a requirement of its own, "
        "so the spawner's install cache never has it); the egress's cache has the wheel"
    )
    return [
        row(f"pip install {PIP_PACKAGE}: the install (ms)", install),
        row(f"pip install {PIP_PACKAGE}: whole execution (ms)", whole),
    ]


def figure(stub, *, rounds: int, warmup: int, loop_rounds: int, pool: Pool, pip_unavailable: str | None) -> dict:
    """The `runtimes` figure; `pip_unavailable` is why the pip rows are n/a (own mesh)."""
    if not calls.has_request_field("runtime"):
        raise Failed("control's ExecuteRequest has no `runtime` field in this tree")
    notes: list[str] = []
    rows = hello_rows(stub, rounds=rounds, warmup=warmup, pool=pool, notes=notes)
    loops, stat_per_second = loop_rows(stub, rounds=loop_rounds)
    rows += loops
    if pip_unavailable:
        rows.append(row(f"pip install {PIP_PACKAGE} (ms)", {r: pip_unavailable for r in SANDBOX_RUNTIMES}))
    else:
        rows += pip_rows(stub, rounds=loop_rounds, notes=notes)
    return {
        "rounds": rounds,
        "warmup": warmup,
        "loop_rounds": loop_rounds,
        "pool": pool.source,
        "rows": rows,
        "stat_calls_per_second_p50": stat_per_second,
        "notes": notes,
    }


def read_metrics(address: str, timeout: float = 3.0) -> str:
    """A spawner's /metrics text (loopback: the port `make up` publishes)."""
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=timeout) as response:
        return response.read().decode()


def target_pool(address: str) -> Pool:
    try:
        return pool_from_metrics(read_metrics(address), f"the spawner's metrics at {address}")
    except OSError as exc:
        return Pool(None, f"no spawner metrics at {address}: {exc}")
