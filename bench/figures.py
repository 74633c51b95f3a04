"""The figures of bench_mesh.py, each measured beside its baseline in the
same run. Every loop is bounded in count and in time."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from bench import calls
from bench.stats import percentile, ratio, summary_ms

MAX_CALLS = 20_000  # in one throughput run, whatever its duration
PACKAGES = ("numpy", "pandas")
IMPORT_THEM = "import numpy, pandas\nprint(numpy.__version__, pandas.__version__)\n"


class Failed(Exception):
    """A call did not do what the figure needs; the figure is then n/a."""


def _hello_ok(timed: calls.Timed, what: str) -> calls.Timed:
    if not timed.ok or timed.stdout_head != b"hello\n":
        raise Failed(f"{what} did not print hello: {timed.describe()} stdout={timed.stdout_head!r}")
    return timed


def hello(stub, *, rounds: int, warmup: int) -> dict:
    """Hello world warm (default limits: a warm container when the mesh has
    a pool), cold (limits no warm container fits) and `docker run --rm`,
    interleaved round by round; total time and first stdout byte of each."""
    series: dict[str, list[calls.Timed]] = {"warm": [], "cold": [], "docker_run": []}
    for i in range(warmup + rounds):
        warm = _hello_ok(calls.execute(stub, calls.request(calls.HELLO)), "warm Execute")
        cold = _hello_ok(calls.execute(stub, calls.request(calls.HELLO, cold=True)), "cold Execute")
        base = _hello_ok(calls.docker_run(calls.HELLO), "docker run")
        if i >= warmup:
            series["warm"].append(warm)
            series["cold"].append(cold)
            series["docker_run"].append(base)
    total = {k: summary_ms([t.total for t in v]) for k, v in series.items()}
    first = {k: summary_ms([t.first_stdout or t.total for t in v]) for k, v in series.items()}
    return {
        "rounds": rounds,
        "warmup": warmup,
        "total_ms": total,
        "first_stdout_ms": first,
        "ratio_p50": {k: ratio(total[k]["p50"], total["docker_run"]["p50"]) for k in ("warm", "cold")},
        "ratio_p95": {k: ratio(total[k]["p95"], total["docker_run"]["p95"]) for k in ("warm", "cold")},
    }


def warm_hello_loop(stub, rounds: int) -> None:
    """Warm hello worlds back to back (what --profile records)."""
    for _ in range(rounds):
        _hello_ok(calls.execute(stub, calls.request(calls.HELLO)), "warm Execute")


def _for_a_while(call: Callable[[], calls.Timed], *, concurrency: int, seconds: float) -> dict:
    """`concurrency` threads calling back to back until `seconds` have passed
    (a call under way then is finished, and counted only if it ended in time)."""
    lock = threading.Lock()
    done: list[float] = []
    failures: list[str] = []
    started = time.perf_counter()
    deadline = started + seconds

    def worker() -> None:
        while time.perf_counter() < deadline:
            with lock:
                if len(done) + len(failures) >= MAX_CALLS:
                    return
            try:
                timed = call()
                ok, why = timed.ok and timed.stdout_head == b"hello\n", timed.describe()
            except Exception as exc:
                ok, why = False, f"{type(exc).__name__}: {exc}"
            with lock:
                if not ok:
                    failures.append(why)
                elif time.perf_counter() <= deadline:
                    done.append(timed.total)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 180)
    return {
        "completed": len(done),
        "failed": len(failures),
        "first_failure": failures[0] if failures else "",
        "seconds": seconds,
        "per_second": round(len(done) / seconds, 2),
        "latency_ms": summary_ms(done) if done else None,
    }


def throughput(stub, *, concurrency: int, seconds: float) -> dict:
    """Executions/s at `concurrency` through control, then `docker run --rm`
    at the same concurrency for the same time."""
    mesh = _for_a_while(
        lambda: calls.execute(stub, calls.request(calls.HELLO)), concurrency=concurrency, seconds=seconds
    )
    base = _for_a_while(lambda: calls.docker_run(calls.HELLO), concurrency=concurrency, seconds=seconds)
    return {
        "concurrency": concurrency,
        "execute": mesh,
        "docker_run": base,
        "ratio": ratio(mesh["per_second"], base["per_second"]),
    }


def _mb_per_second(timed: calls.Timed) -> float | None:
    """Bytes over the time from the first stdout byte to the last one."""
    if timed.first_stdout is None or timed.last_stdout is None or timed.last_stdout <= timed.first_stdout:
        return None
    return timed.stdout_bytes / 1e6 / (timed.last_stdout - timed.first_stdout)


def streaming(stub, *, megabytes: int, rounds: int, cap_bytes: int | None) -> dict:
    """A program writing `megabytes` MB to stdout through control, and the
    same through `docker run` into a pipe read to the end; interleaved."""
    total = megabytes * 1_000_000
    source = calls.streaming_program(total)
    rows: dict[str, list[float]] = {"execute": [], "docker_run": []}
    notes = []
    for _ in range(rounds):
        mesh = calls.execute(stub, calls.request(source, timeout_ms=120_000), timeout=180)
        if mesh.stdout_bytes != total:
            # A mesh whose output cap is below `total` kills the run (OUTPUT_LIMIT):
            # the rate up to the cap is still a rate, but say so.
            notes.append(f"Execute streamed {mesh.stdout_bytes} of {total} bytes ({mesh.describe()})")
        base = calls.docker_run(source, timeout=180)
        if base.stdout_bytes != total:
            raise Failed(f"docker run streamed {base.stdout_bytes} of {total} bytes")
        for name, timed in (("execute", mesh), ("docker_run", base)):
            value = _mb_per_second(timed)
            if value is not None:
                rows[name].append(value)
    if not rows["execute"] or not rows["docker_run"]:
        raise Failed("no stdout arrived: " + "; ".join(notes))
    best = {k: round(percentile(v, 50), 1) for k, v in rows.items()}
    return {
        "megabytes": megabytes,
        "rounds": rounds,
        "output_cap_bytes": cap_bytes,
        "mb_per_second_p50": best,
        "ratio": ratio(best["execute"], best["docker_run"]),
        "notes": notes[:3],
    }


def pip_install(stub) -> dict:
    """numpy + pandas installed twice (the first fills the egress's and the
    spawner's install caches, when this mesh never installed them today; the
    second finds them), and the datascience variant importing them with
    nothing to install."""
    result: dict[str, object] = {}
    for name in ("first", "second"):
        timed = calls.execute(stub, calls.request(IMPORT_THEM, timeout_ms=60_000, packages=PACKAGES), timeout=400)
        if not timed.ok:
            raise Failed(f"{name} install: {timed.describe()}")
        assert timed.execution is not None
        result[name] = {
            "total_s": round(timed.total, 2),
            "install_s": round(timed.execution.usage.install_ms / 1000, 2),
        }
    first, second = result["first"], result["second"]
    assert isinstance(first, dict) and isinstance(second, dict)
    # The target is the install's (the spawner's install_ms); the whole
    # execution's ratio also carries the imports and the sandbox's start.
    result["install_ratio_first_to_second"] = ratio(first["install_s"], second["install_s"])
    result["ratio_first_to_second"] = ratio(first["total_s"], second["total_s"])
    if calls.has_request_field("variant"):
        timed = calls.execute(stub, calls.request(IMPORT_THEM, variant="datascience", timeout_ms=60_000), timeout=120)
        result["datascience"] = {"total_s": round(timed.total, 2)} if timed.ok else {"error": timed.describe()}
    else:
        result["datascience"] = {"error": "n/a (not available: control's ExecuteRequest has no `variant`)"}
    return result
